import Foundation
import Kernels

/// The ranks of a data-parallel job: under Open MPI's `mpirun -np N`, N processes that each
/// run the same programs on their share of every batch and sum their gradients; otherwise one
/// rank, and every collective is a no-op. Calls are made from the main thread only.
public enum World {
    /// Joins the job (MPI_Init under `mpirun`; nothing otherwise) and returns the number of
    /// ranks. Safe to call again.
    @discardableResult
    public static func start() throws -> Int {
        var message = [CChar](repeating: 0, count: 512)
        let n = la_mpi_start(&message, message.count)
        guard n > 0 else { throw RuntimeError(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        return Int(n)
    }

    /// This process's rank, 0 ..< `size`.
    public static var rank: Int { Int(la_mpi_rank()) }
    /// Ranks in the job (1 without `mpirun`).
    public static var size: Int { Int(la_mpi_size()) }
    /// Rank 0: the one that writes metrics, checkpoints and the progress line.
    public static var isMain: Bool { rank == 0 }
    /// Ranks on this machine (for the default thread count per rank).
    public static var localSize: Int { Int(la_mpi_local_size()) }
    /// Wall-clock seconds spent summing over ranks so far.
    public static var allReduceSeconds: Double { la_mpi_allreduce_seconds() }

    /// Floats summed per all-reduce call: 25 MiB buckets, PyTorch DDP's default bucket size.
    public static let bucketFloats = 25 << 18

    /// `buffer[0..<count] = Σ over ranks`, in buckets of `bucketFloats`.
    public static func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard size > 1 else { return }
        var start = 0
        while start < count {
            let n = min(bucketFloats, count - start)
            let rc = la_mpi_allreduce_sum_f32(buffer + start, n)
            guard rc == 0 else { throw RuntimeError("MPI_Allreduce failed on rank \(rank) (error \(rc))") }
            start += n
        }
    }

    /// Element-wise sums over ranks of `values` (every rank passes the same count).
    public static func sum(_ values: [Double]) throws -> [Double] {
        guard size > 1, !values.isEmpty else { return values }
        var out = values
        let rc = out.withUnsafeMutableBufferPointer { la_mpi_allreduce_sum_f64($0.baseAddress, $0.count) }
        guard rc == 0 else { throw RuntimeError("MPI_Allreduce failed on rank \(rank) (error \(rc))") }
        return out
    }

    /// Element-wise sums over ranks of `values` in single precision.
    public static func sum(_ values: [Float]) throws -> [Float] {
        guard size > 1, !values.isEmpty else { return values }
        var out = values
        try out.withUnsafeMutableBufferPointer { p in
            if let base = p.baseAddress { try sum(base, count: p.count) }
        }
        return out
    }

    /// Rank 0's `value` on every rank (so all ranks take the same branch).
    public static func mainValue(_ value: Double) throws -> Double {
        try sum([isMain ? value : 0] as [Double])[0]
    }

    /// True on every rank when it is true on any.
    public static func any(_ flag: Bool) throws -> Bool {
        try sum([flag ? 1 : 0] as [Double])[0] > 0
    }

    /// Ends every rank now with `code`, after printing `message` prefixed with this rank.
    public static func abort(_ message: String, code: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("llama-align rank \(rank) of \(size): \(message)\n".utf8))
        la_mpi_abort(code)
        exit(code)
    }

    /// Leaves the job cleanly (MPI_Finalize). Call once, at the end of the process.
    public static func finish() { la_mpi_finish() }
}

extension World {
    /// This rank's share of `items`: those at positions `rank`, `rank + size`, … (all of them
    /// with one rank).
    public static func share<T>(_ items: [T]) -> [T] {
        guard size > 1 else { return items }
        return items.enumerated().compactMap { $0.offset % size == rank ? $0.element : nil }
    }

    /// Whether position `index` of a sharded list belongs to this rank.
    public static func owns(_ index: Int) -> Bool { size <= 1 || index % size == rank }
}

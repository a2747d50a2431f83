import Foundation
import Kernels
@_exported import ProgramABI

/// Errors from calling compiled programs.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One compiled program of the `Kernels` target, callable by name with named buffers and sizes.
public final class CompiledProgram: @unchecked Sendable {
    public let manifest: ProgramManifest
    private let info: UnsafePointer<la_program_info>
    private var arena: AlignedBuffer?
    /// The profiling buffer the C fills (see `la_tock`); nil keeps timing off.
    private var profileBuffer: [Double]?

    /// One kernel's totals while profiling.
    public struct KernelCounter: Sendable, Equatable {
        public var nanoseconds: Double
        public var calls: Double
    }

    /// Per-kernel time and calls (indexed like `manifest.kernels`) while profiling, else nil.
    public var counters: [KernelCounter]? {
        profileBuffer.map { p in
            (0..<kernelCount).map { k in
                KernelCounter(nanoseconds: p[Int(LA_PROF_KERNELS) + 2 * k], calls: p[Int(LA_PROF_KERNELS) + 2 * k + 1])
            }
        }
    }

    /// Calls per kernel while profiling (zeros when it is off).
    public var kernelCalls: [Double] { counters?.map(\.calls) ?? Array(repeating: 0, count: kernelCount) }

    /// One recorded kernel call: which kernel, and its start and end in nanoseconds (monotonic clock).
    public struct KernelEvent: Sendable, Equatable {
        public var kernel: Int
        public var start: Double
        public var end: Double
    }

    /// Kernel calls recorded while profiling (up to the capacity given to `setProfiling`).
    public var events: [KernelEvent] {
        guard let p = profileBuffer else { return [] }
        let base = Int(LA_PROF_KERNELS) + 2 * kernelCount, size = Int(LA_PROF_EVENT_SIZE)
        return (0..<Int(p[Int(LA_PROF_RECORDED)])).map { i in
            KernelEvent(kernel: Int(p[base + size * i]), start: p[base + size * i + 1], end: p[base + size * i + 2])
        }
    }

    /// Where the arena and the profiling buffer go in the argument slots.
    private let arenaSlot: Int
    private let profileSlot: Int

    init(info: UnsafePointer<la_program_info>, manifest: ProgramManifest) {
        self.info = info
        self.manifest = manifest
        arenaSlot = manifest.fields.first { $0.kind == .arena }?.slot ?? 0
        profileSlot = manifest.fields.first { $0.kind == .profile }?.slot ?? 0
    }

    /// Every program in the Kernels target's manifest.
    public static let manifests: [ProgramManifest] = {
        (try? ManifestFile.parse(String(cString: la_manifest_json)).programs) ?? []
    }()

    /// Loads `family.program` (e.g. `llama.decode`). A program with bf16 products (`*_bf16`)
    /// is refused on a CPU without AVX-512 BF16: its kernels would stop the process on an
    /// illegal instruction.
    public static func load(_ name: String) throws -> CompiledProgram {
        guard let m = manifests.first(where: { $0.name == name }) else {
            throw RuntimeError("no compiled program named '\(name)' (have: \(manifests.map(\.name).joined(separator: ", ")))")
        }
        if m.needsBF16, !MatrixKernels.current.hasBF16 {
            throw RuntimeError("program '\(name)' multiplies in bf16 and this CPU has no AVX-512 BF16 "
                + "(\(MatrixKernels.current.cpu)); use its float32 program")
        }
        for i in 0..<Int(la_program_count) {
            guard let p = la_program_at(Int32(i)) else { continue }
            if String(cString: p.pointee.name) == name { return CompiledProgram(info: p, manifest: m) }
        }
        throw RuntimeError("program '\(name)' is in the manifest but not in the program table")
    }

    public var kernelCount: Int { Int(info.pointee.n_kernels) }

    /// Turns per-kernel timing on (zeroing the counters, recording up to `events` calls) or off.
    public func setProfiling(_ on: Bool, events: Int = 0) {
        guard on else { profileBuffer = nil; return }
        var b = [Double](repeating: 0, count: Int(LA_PROF_KERNELS) + 2 * kernelCount + Int(LA_PROF_EVENT_SIZE) * max(events, 0))
        b[Int(LA_PROF_CAPACITY)] = Double(max(events, 0))
        profileBuffer = b
    }

    /// The argument slots of one call, bound once: a program run many times with the same
    /// buffers (decode, one call per token) changes only its sizes between calls, and running
    /// it allocates nothing unless the arena must grow.
    public struct Arguments: Sendable {
        fileprivate var slots: [Int]
        fileprivate let sizeSlots: [String: Int]

        /// Binds size `name` (ignored when the program has no such size).
        public mutating func setSize(_ name: String, _ value: Int) {
            if let slot = sizeSlots[name] { slots[slot] = value }
        }
    }

    /// Binds the arguments of a call. `buffers` maps every parameter, input and output name to
    /// memory of the right size; `sizes` binds every size symbol.
    public func bind(buffers: [String: UnsafeMutableRawPointer], sizes: [String: Int]) throws -> Arguments {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        var sizeSlots: [String: Int] = [:]
        for f in manifest.fields {
            switch f.kind {
            case .param, .input, .output:
                guard let p = buffers[f.name] else { throw RuntimeError("\(manifest.name): no buffer for '\(f.name)'") }
                slots[f.slot] = Int(bitPattern: p)
            case .size:
                guard let v = sizes[f.name] else { throw RuntimeError("\(manifest.name): size '\(f.name)' is not bound") }
                slots[f.slot] = v
                sizeSlots[f.name] = f.slot
            default: break
            }
        }
        return Arguments(slots: slots, sizeSlots: sizeSlots)
    }

    /// Runs the program. `buffers` maps every parameter, input and output name to memory of
    /// the right size; `sizes` binds every size symbol. The arena is allocated and kept.
    public func run(buffers: [String: UnsafeMutableRawPointer], sizes: [String: Int]) throws {
        var arguments = try bind(buffers: buffers, sizes: sizes)
        run(&arguments)
    }

    /// Runs the program with bound arguments (the arena grows if these sizes need more).
    public func run(_ arguments: inout Arguments) {
        reserveArena(arguments)
        arguments.slots[arenaSlot] = Int(bitPattern: arena?.raw)
        if profileBuffer != nil {
            profileBuffer!.withUnsafeMutableBufferPointer { p in
                arguments.slots[profileSlot] = Int(bitPattern: p.baseAddress)
                arguments.slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
            }
            arguments.slots[profileSlot] = 0
        } else {
            arguments.slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
        }
    }

    /// Allocates the arena for calls with these arguments' sizes, if the one held is smaller
    /// (arena sizes grow with every size, so binding the largest sizes once covers all calls).
    public func reserveArena(_ arguments: Arguments) {
        let need = arguments.slots.withUnsafeBytes { info.pointee.arena_floats($0.baseAddress) }
        if arena == nil || arena.map({ $0.byteCount < need * 4 }) ?? true { arena = AlignedBuffer(floats: need) }
    }

    /// Floats of the arena one call at `sizes` needs (a size the program lacks counts as 0).
    public func arenaFloats(sizes: [String: Int]) -> Int {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        for f in manifest.fields where f.kind == .size { slots[f.slot] = sizes[f.name] ?? 0 }
        return slots.withUnsafeBytes { info.pointee.arena_floats($0.baseAddress) }
    }

    /// Bytes of the arena currently held.
    public var arenaBytes: Int { arena?.byteCount ?? 0 }

    /// Per-kernel FLOPs and bytes of one call at these sizes.
    public func costs(sizes: [String: Int]) -> (flops: [Double], bytes: [Double]) {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        for f in manifest.fields where f.kind == .size { slots[f.slot] = sizes[f.name] ?? 0 }
        var fl = [Double](repeating: 0, count: kernelCount), by = fl
        slots.withUnsafeBytes { s in
            fl.withUnsafeMutableBufferPointer { f in
                by.withUnsafeMutableBufferPointer { b in info.pointee.costs(s.baseAddress, f.baseAddress, b.baseAddress) }
            }
        }
        return (fl, by)
    }
}

extension CompiledProgram {
    /// Floats of the per-call buffers a caller allocates for this program at `sizes`: its
    /// outputs and its inputs named `prefix…` (kept activations).
    public func callerFloats(sizes: [String: Int], prefix: String = "saved_") throws -> Int {
        try manifest.fields.filter { $0.kind == .output || ($0.kind == .input && $0.name.hasPrefix(prefix)) }
            .reduce(0) { $0 + (try $1.elementCount(sizes)) }
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte-level helpers shared by the checkpoint readers and writers. All reads are
/// bounds-checked by the callers; these functions assume the ranges they get are valid.
enum BinaryIO {
    /// The whole file, memory-mapped when the platform allows, or a `CheckpointError`.
    static func readFile(_ path: String) throws -> Data {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError(path, "no such file")
        }
        guard !isDir.boolValue else { throw CheckpointError(path, "is a directory, expected a file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw CheckpointError(path, "cannot read file (\(error.localizedDescription))")
        }
    }

    /// Little-endian `UInt32` at byte `offset` of `data` (relative to `data.startIndex`).
    static func uint32(_ data: Data, at offset: Int) -> UInt32 {
        data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    /// Little-endian `UInt64` at byte `offset` of `data` (relative to `data.startIndex`).
    static func uint64(_ data: Data, at offset: Int) -> UInt64 {
        data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    /// `count` little-endian float32 values starting at byte `offset` of `data`.
    static func floats(_ data: Data, at offset: Int, count: Int) -> [Float] {
        guard count > 0 else { return [] }
        return data.withUnsafeBytes { raw in
            [Float](unsafeUninitializedCapacity: count) { buf, done in
                #if _endian(little)
                let src = UnsafeRawBufferPointer(rebasing: raw[offset ..< offset + 4 * count])
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: src)
                #else
                for i in 0 ..< count {
                    let bits = raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self)
                    buf[i] = Float(bitPattern: UInt32(littleEndian: bits))
                }
                #endif
                done = count
            }
        }
    }

    /// `count` little-endian 16-bit words starting at byte `offset` of `data`.
    static func uint16s(_ data: Data, at offset: Int, count: Int) -> [UInt16] {
        guard count > 0 else { return [] }
        return data.withUnsafeBytes { raw in
            [UInt16](unsafeUninitializedCapacity: count) { buf, done in
                #if _endian(little)
                let src = UnsafeRawBufferPointer(rebasing: raw[offset ..< offset + 2 * count])
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: src)
                #else
                for i in 0 ..< count {
                    buf[i] = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 2 * i, as: UInt16.self))
                }
                #endif
                done = count
            }
        }
    }

    /// Appends `values` as little-endian float32.
    static func append(_ values: [Float], to data: inout Data) {
        #if _endian(little)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        #else
        append(values.map(\.bitPattern), to: &data)
        #endif
    }

    /// Appends `values` as little-endian 32-bit words.
    static func append(_ values: [UInt32], to data: inout Data) {
        let le = values.map(\.littleEndian)
        le.withUnsafeBytes { data.append(contentsOf: $0) }
    }

    /// Appends `values` as little-endian 16-bit words.
    static func append(_ values: [UInt16], to data: inout Data) {
        let le = values.map(\.littleEndian)
        le.withUnsafeBytes { data.append(contentsOf: $0) }
    }

    /// Appends a little-endian `UInt64`.
    static func append(_ value: UInt64, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    /// Writes `data` to `path` atomically: into a temporary file in the same directory,
    /// then renamed over `path`, so readers never see a partial file.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        do {
            try data.write(to: tmp)
            try sync(tmp.path)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError(path, "cannot write (\(error.localizedDescription))")
        }
        if rename(tmp.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError(path, "cannot move the finished file into place (\(reason))")
        }
        try? sync(dir.path)
    }

    /// `fsync` of a file or folder, so what was written survives a power loss before a rename
    /// makes it visible.
    static func sync(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError(path, "cannot open to sync (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw CheckpointError(path, "cannot sync to disk (\(String(cString: strerror(errno))))") }
    }

    /// `sync` of every file directly in `folder`, then of the folder.
    static func syncFolder(_ folder: String) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            let p = (folder as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { try sync(p) }
        }
        try sync(folder)
    }

    /// Product of `shape`, or nil on a negative dimension or overflow.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { return nil }
            n = p
        }
        return n
    }
}

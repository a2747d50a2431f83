import Foundation

/// Reads a GGUF file's header, metadata and tensor table from its bytes, checking every
/// count, length and offset against what is left before using it (see `GGUFFile`).
struct GGUFParser {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var at = 0

    /// Largest `n_dims` ggml has (`GGML_MAX_DIMS`).
    static let maxDims = 4

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    func fail(_ problem: String) -> CheckpointError { CheckpointError(path, problem) }

    /// Checks that `n` more bytes exist for `what`.
    func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= bytes.count - at else {
            throw fail("truncated: \(what()) needs \(n) bytes at byte \(at), the file has \(bytes.count)")
        }
    }

    mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 {
        try need(1, what()); defer { at += 1 }
        return bytes[at]
    }

    mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 {
        try need(2, what()); defer { at += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }

    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 {
        try need(4, what()); defer { at += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }

    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 {
        try need(8, what()); defer { at += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// A uint64 count that must fit what is left at `minBytes` each.
    mutating func count(_ what: @autoclosure () -> String, minBytes: Int) throws -> Int {
        let n = try u64(what())
        let left = UInt64(bytes.count - at)
        guard n <= left / UInt64(max(minBytes, 1)) else {
            throw fail("\(what()) is \(n), but only \(left) bytes are left at byte \(at) (at least \(minBytes) each)")
        }
        return Int(n)
    }

    /// A GGUF string: uint64 length, then the bytes (invalid UTF-8 is replaced).
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let n = try count("the length of \(what())", minBytes: 1)
        defer { at += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at ..< at + n]), as: UTF8.self)
    }

    /// The whole file: header, metadata, tensor table, and the checks on the data layout.
    mutating func file(data: Data) throws -> GGUFFile {
        guard bytes.count >= 4, bytes[0] == 0x47, bytes[1] == 0x47, bytes[2] == 0x55, bytes[3] == 0x46 else {
            throw fail("not a GGUF file (the first 4 bytes are not 'GGUF')")
        }
        at = 4
        let version = try u32("the version")
        if version > 0xFFFF && version.byteSwapped <= 3 { throw fail("big-endian GGUF files are not supported") }
        guard version == 2 || version == 3 else { throw fail("GGUF version \(version) is not supported (2 or 3)") }
        // A tensor entry takes at least 8 + 4 + 4 + 8 bytes, a metadata entry at least 8 + 4 + 1.
        let tensorCount = try count("the tensor count", minBytes: 24)
        let kvCount = try count("the metadata count", minBytes: 13)
        var keys: [String] = [], metadata: [String: GGUFValue] = [:]
        for i in 0..<kvCount {
            let key = try string("metadata key \(i)")
            let value = try self.value(key: key)
            guard metadata[key] == nil else { throw fail("metadata key '\(key)' appears twice") }
            keys.append(key)
            metadata[key] = value
        }
        let alignment = try Self.alignment(metadata, fail: fail)
        var infos: [GGUFFile.TensorInfo] = []
        var names = Set<String>()
        for i in 0..<tensorCount {
            let info = try tensorInfo(i)
            guard names.insert(info.name).inserted else { throw fail("tensor '\(info.name)' appears twice") }
            infos.append(info)
        }
        let (padded, overflow) = at.addingReportingOverflow((alignment - at % alignment) % alignment)
        guard !overflow else { throw fail("the tensor table ends at an impossible offset") }
        infos = try place(infos, dataOffset: padded, alignment: alignment)
        return GGUFFile(path: path, version: version, keys: keys, metadata: metadata, tensors: infos,
                        alignment: alignment, dataOffset: padded, data: data)
    }

    /// `general.alignment`: a power of two that is a uint32 (32 when absent).
    static func alignment(_ metadata: [String: GGUFValue], fail: (String) -> CheckpointError) throws -> Int {
        guard let v = metadata["general.alignment"] else { return 32 }
        guard case .uint32(let a) = v, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
            throw fail("general.alignment is \(v), expected a uint32 power of two up to 2^20")
        }
        return Int(a)
    }

    /// One metadata value of type code read from the file, for `key`.
    mutating func value(key: String) throws -> GGUFValue {
        let code = try u32("the value type of '\(key)'")
        guard code != 9 else {
            let elementCode = try u32("the element type of '\(key)'")
            guard elementCode != 9 else { throw fail("metadata '\(key)': arrays of arrays are not supported") }
            guard let size = Self.minimumSize(elementCode) else {
                throw fail("metadata '\(key)': unknown array element type \(elementCode)")
            }
            let n = try count("the element count of '\(key)'", minBytes: size)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for i in 0..<n { items.append(try scalar(elementCode, what: "'\(key)'[\(i)]")) }
            return .array(typeCode: elementCode, items)
        }
        guard Self.minimumSize(code) != nil else { throw fail("metadata '\(key)': unknown value type \(code)") }
        return try scalar(code, what: "'\(key)'")
    }

    /// Bytes a value of type `code` takes at least (a string: its length field), nil for an unknown type.
    static func minimumSize(_ code: UInt32) -> Int? {
        switch code {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8
        default: nil
        }
    }

    /// A non-array value of type `code` (known to be valid).
    mutating func scalar(_ code: UInt32, what: @autoclosure () -> String) throws -> GGUFValue {
        switch code {
        case 0: return .uint8(try u8(what()))
        case 1: return .int8(Int8(bitPattern: try u8(what())))
        case 2: return .uint16(try u16(what()))
        case 3: return .int16(Int16(bitPattern: try u16(what())))
        case 4: return .uint32(try u32(what()))
        case 5: return .int32(Int32(bitPattern: try u32(what())))
        case 6: return .float32(Float(bitPattern: try u32(what())))
        case 7: return .bool(try u8(what()) != 0)
        case 8: return .string(try string(what()))
        case 10: return .uint64(try u64(what()))
        case 11: return .int64(Int64(bitPattern: try u64(what())))
        default: return .float64(Double(bitPattern: try u64(what())))
        }
    }

    /// Tensor table entry `i` (its offset still relative to the data section).
    mutating func tensorInfo(_ i: Int) throws -> GGUFFile.TensorInfo {
        let name = try string("the name of tensor \(i)")
        let nDims = try u32("the dimension count of tensor '\(name)'")
        guard nDims >= 1, nDims <= Self.maxDims else {
            throw fail("tensor '\(name)' has \(nDims) dimensions, expected 1 to \(Self.maxDims)")
        }
        var dims: [Int] = []
        for d in 0..<Int(nDims) {
            let n = try u64("size \(d) of tensor '\(name)'")
            guard let v = Int(exactly: n), v <= Int(Int32.max) else {
                throw fail("tensor '\(name)' has size \(n) in dimension \(d), which is too large")
            }
            dims.append(v)
        }
        guard let count = BinaryIO.elementCount(dims) else { throw fail("tensor '\(name)' with sizes \(dims) is too large") }
        let type = GGMLType(rawValue: try u32("the type of tensor '\(name)'"))
        let offset = try u64("the offset of tensor '\(name)'")
        guard let off = Int(exactly: offset) else { throw fail("tensor '\(name)' has offset \(offset), past any file") }
        var byteCount: Int? = nil
        if type.blockBytes != nil {
            guard let b = type.byteCount(elements: count), dims[0] % type.blockSize == 0 else {
                throw fail("tensor '\(name)' (\(type)) has a row of \(dims[0]) elements, not a multiple of its block of \(type.blockSize)")
            }
            byteCount = b
        }
        return .init(name: name, dims: dims, type: type, offset: off, count: count, byteCount: byteCount)
    }

    /// The entries with absolute offsets, after checking that each is aligned, lies inside the
    /// file and overlaps no other (the sizes of types this reader does not decode are unknown).
    func place(_ infos: [GGUFFile.TensorInfo], dataOffset: Int, alignment: Int) throws -> [GGUFFile.TensorInfo] {
        var placed: [GGUFFile.TensorInfo] = []
        for var t in infos {
            guard t.offset % alignment == 0 else {
                throw fail("tensor '\(t.name)' has offset \(t.offset), not a multiple of the alignment \(alignment)")
            }
            let (start, overflow) = dataOffset.addingReportingOverflow(t.offset)
            guard !overflow else { throw fail("tensor '\(t.name)' has offset \(t.offset), past the end of the file") }
            if let b = t.byteCount {
                guard start <= bytes.count, b <= bytes.count - start else {
                    throw fail("tensor '\(t.name)' (\(t.type), \(b) bytes at data offset \(t.offset)) ends past the end of the file (\(bytes.count) bytes); the file is truncated or the offset is wrong")
                }
            }
            t.offset = start
            placed.append(t)
        }
        let sorted = placed.filter { $0.byteCount != nil }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + (a.byteCount ?? 0) > b.offset {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap in the file")
        }
        return placed
    }
}

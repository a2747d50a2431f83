import Foundation

/// Builds a GGUF v3 file: metadata in the order added, then the tensor table, then the data of
/// each tensor at the next multiple of `alignment` (zero padding), as `GGUFFile` describes.
public struct GGUFWriter {
    /// Data alignment; written as `general.alignment` only when it is not GGUF's default 32.
    public var alignment = 32
    private(set) var metadata: [(key: String, value: GGUFValue)] = []
    private(set) var tensors: [(name: String, dims: [Int], type: GGMLType, bytes: [UInt8])] = []

    public init() {}

    /// Adds a metadata entry (arrays hold one element type; use `.array(typeCode:_)`).
    public mutating func add(_ key: String, _ value: GGUFValue) {
        metadata.append((key, value))
    }

    /// Adds a tensor with ggml sizes `dims` (innermost first) whose data is `bytes` in `type`'s encoding.
    public mutating func addTensor(_ name: String, dims: [Int], type: GGMLType, bytes: [UInt8]) {
        tensors.append((name, dims, type, bytes))
    }

    /// Adds `values` (row-major, rows of `dims[0]`) encoded as `type`: F32, F16, BF16, Q8_0 or Q4_0.
    /// Q8_0/Q4_0 need rows of a multiple of 32 elements.
    public mutating func addTensor(_ name: String, dims: [Int], type: GGMLType, values: [Float]) {
        addTensor(name, dims: dims, type: type, bytes: Self.encode(values, as: type))
    }

    /// `values` in the encoding of `type` (F32, F16, BF16, Q8_0, Q4_0).
    public static func encode(_ values: [Float], as type: GGMLType) -> [UInt8] {
        var out: [UInt8] = []
        switch type {
        case .f32:
            out.reserveCapacity(4 * values.count)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        case .f16, .bf16:
            out.reserveCapacity(2 * values.count)
            for v in values {
                let h = type == .f16 ? HalfFloat.f16FromFloat(v) : HalfFloat.bf16FromFloat(v)
                out.append(UInt8(h & 0xFF)); out.append(UInt8(h >> 8))
            }
        case .q8_0:
            out.reserveCapacity(values.count / 32 * 34)
            values.withUnsafeBufferPointer { GGUFBlocks.appendQ8_0($0, to: &out) }
        case .q4_0:
            out.reserveCapacity(values.count / 32 * 18)
            values.withUnsafeBufferPointer { GGUFBlocks.appendQ4_0($0, to: &out) }
        default:
            preconditionFailure("GGUFWriter cannot encode \(type)")
        }
        return out
    }

    /// The whole file.
    public func encoded() -> Data {
        var out = Data()
        out.append(contentsOf: Array("GGUF".utf8))
        append(UInt32(3), to: &out)
        append(UInt64(tensors.count), to: &out)
        var entries = metadata
        if alignment != 32 && !entries.contains(where: { $0.key == "general.alignment" }) {
            entries.append(("general.alignment", .uint32(UInt32(alignment))))
        }
        append(UInt64(entries.count), to: &out)
        for (key, value) in entries {
            appendString(key, to: &out)
            append(value.typeCode, to: &out)
            appendValue(value, to: &out)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += padded(t.bytes.count)
        }
        for (t, off) in zip(tensors, offsets) {
            appendString(t.name, to: &out)
            append(UInt32(t.dims.count), to: &out)
            for d in t.dims { append(UInt64(d), to: &out) }
            append(t.type.rawValue, to: &out)
            append(UInt64(off), to: &out)
        }
        out.append(Data(count: padded(out.count) - out.count))
        for t in tensors {
            out.append(contentsOf: t.bytes)
            out.append(Data(count: padded(t.bytes.count) - t.bytes.count))
        }
        return out
    }

    /// Writes the file to `path` atomically.
    public func write(to path: String) throws {
        try BinaryIO.writeAtomically(encoded(), to: path)
    }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private func append<T: FixedWidthInteger>(_ v: T, to out: inout Data) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private func appendString(_ s: String, to out: inout Data) {
        let utf8 = Array(s.utf8)
        append(UInt64(utf8.count), to: &out)
        out.append(contentsOf: utf8)
    }

    private func appendValue(_ value: GGUFValue, to out: inout Data) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): append(UInt8(v ? 1 : 0), to: &out)
        case .string(let s): appendString(s, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let code, let items):
            append(code, to: &out)
            append(UInt64(items.count), to: &out)
            for item in items { appendValue(item, to: &out) }
        }
    }
}

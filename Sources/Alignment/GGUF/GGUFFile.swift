import Foundation

/// A GGUF file (versions 2 and 3, little-endian) as read: its metadata and the table of its
/// tensors, with the bytes kept (memory-mapped) and decoded per tensor on request.
///
/// Layout: magic `GGUF`, uint32 version, uint64 tensor count, uint64 metadata count; the
/// metadata as (string key, uint32 value type, value); per tensor a string name, uint32 n_dims,
/// n_dims uint64 sizes `ne` (innermost first), uint32 ggml type and a uint64 offset; then, from
/// the next multiple of `general.alignment` (32 by default), the tensor data, each tensor at its
/// offset from there (a multiple of the alignment). A string is a uint64 length and UTF-8 bytes.
/// Every count, length and offset is checked against the file before it is used.
public struct GGUFFile: Sendable {
    /// One entry of the tensor table.
    public struct TensorInfo: Sendable, Equatable {
        public var name: String
        /// ggml's sizes, innermost (contiguous) first: a `[rows, cols]` matrix has `dims == [cols, rows]`.
        public var dims: [Int]
        public var type: GGMLType
        /// Byte offset of the tensor's data from the start of the file.
        public var offset: Int
        /// Number of elements.
        public var count: Int
        /// Bytes of data, nil when the type is not one this reader decodes.
        public var byteCount: Int?
        /// Elements in a row (`dims[0]`; 1 for a scalar).
        public var cols: Int { dims.first ?? 1 }
        /// Rows: the product of the outer sizes.
        public var rows: Int { cols == 0 ? 0 : count / cols }
    }

    /// The file named in errors.
    public let path: String
    public let version: UInt32
    /// Metadata keys in file order, and their values.
    public let keys: [String]
    public let metadata: [String: GGUFValue]
    /// The tensor table in file order.
    public let tensors: [TensorInfo]
    /// `general.alignment` (32 when absent).
    public let alignment: Int
    /// Where the tensor data starts.
    public let dataOffset: Int
    let data: Data
    let index: [String: Int]

    /// Reads the GGUF file at `path` (memory-mapped); errors are `CheckpointError`s naming it.
    public static func read(path: String) throws -> GGUFFile {
        try parse(BinaryIO.readFile(path), path: path)
    }

    /// Parses the contents `data` of a GGUF file; `path` names it in errors.
    public static func parse(_ data: Data, path: String) throws -> GGUFFile {
        try data.withUnsafeBytes { raw in
            var r = GGUFParser(bytes: raw, path: path)
            return try r.file(data: data)
        }
    }

    init(path: String, version: UInt32, keys: [String], metadata: [String: GGUFValue], tensors: [TensorInfo],
         alignment: Int, dataOffset: Int, data: Data) {
        self.path = path; self.version = version; self.keys = keys; self.metadata = metadata
        self.tensors = tensors; self.alignment = alignment; self.dataOffset = dataOffset; self.data = data
        index = Dictionary(tensors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The tensor table entry named `name`, nil when absent.
    public func tensor(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The entry named `name`, decodable, or an error naming it (absent, or a type this reader does not decode).
    func decodable(_ name: String) throws -> (TensorInfo, Int) {
        guard let t = tensor(name) else { throw CheckpointError(path, "no tensor '\(name)'") }
        guard let bytes = t.byteCount else {
            let supported = GGMLType.readable.map(\.description).joined(separator: ", ")
            throw CheckpointError(path, "tensor '\(name)' has type \(t.type) (ggml type \(t.type.rawValue)), which is not supported (supported: \(supported))")
        }
        return (t, bytes)
    }

    /// The values of tensor `name` as Float, row-major (innermost size fastest): F32 as stored,
    /// F16 and BF16 widened, Q8_0 and Q4_0 dequantized as ggml does.
    public func floats(_ name: String) throws -> [Float] {
        let (t, bytes) = try decodable(name)
        return data.withUnsafeBytes { all in
            let raw = UnsafeRawBufferPointer(rebasing: all[t.offset ..< t.offset + bytes])
            switch t.type {
            case .f32: return BinaryIO.floats(data, at: t.offset, count: t.count)
            case .f16: return raw.littleEndianWords().map(HalfFloat.floatFromF16)
            case .bf16: return raw.littleEndianWords().map(HalfFloat.floatFromBF16)
            default:
                let (scales, values) = GGUFBlocks.unpack(t.type, raw)
                return GGUFBlocks.dequantize(scales: scales, values: values)
            }
        }
    }

    /// Tensor `name` (Q8_0 or Q4_0) unpacked as scales and small integers; an error for any other type.
    public func quantized(_ name: String) throws -> GGUFQuantizedTensor {
        let (t, bytes) = try decodable(name)
        guard t.type == .q8_0 || t.type == .q4_0 else {
            throw CheckpointError(path, "tensor '\(name)' has type \(t.type), not a quantized type (Q8_0 or Q4_0)")
        }
        let (scales, values) = data.withUnsafeBytes { all in
            GGUFBlocks.unpack(t.type, UnsafeRawBufferPointer(rebasing: all[t.offset ..< t.offset + bytes]))
        }
        return GGUFQuantizedTensor(type: t.type, rows: t.rows, cols: t.cols, scales: scales, values: values)
    }

    /// The stored bytes of tensor `name`, as they are in the file.
    public func rawBytes(_ name: String) throws -> Data {
        let (t, bytes) = try decodable(name)
        return data.subdata(in: data.startIndex + t.offset ..< data.startIndex + t.offset + bytes)
    }
}

/// A Q8_0 or Q4_0 tensor of a GGUF file, unpacked: element (r, c) of the `[rows, cols]`
/// matrix is `scales[r·cols/32 + c/32] · Float(values[r·cols + c])`, exactly ggml's value.
/// `values` are `q` for Q8_0 (−128…127) and `q − 8` for Q4_0 (−8…7); a scale is the block's
/// fp16 `d` as a Float.
public struct GGUFQuantizedTensor: Sendable, Equatable {
    public var type: GGMLType
    public var rows: Int
    public var cols: Int
    /// Elements sharing one scale (32 for both types).
    public var groupSize: Int { GGUFBlocks.blockSize }
    /// `rows × cols/32` scales, row-major.
    public var scales: [Float]
    /// `rows × cols` integers, row-major.
    public var values: [Int8]

    /// The Float values, as ggml dequantizes them.
    public func dequantized() -> [Float] { GGUFBlocks.dequantize(scales: scales, values: values) }
}

extension UnsafeRawBufferPointer {
    /// The bytes as little-endian 16-bit words (copied; the data need not be aligned).
    func littleEndianWords() -> [UInt16] {
        (0..<(count / 2)).map { UInt16(self[2 * $0]) | UInt16(self[2 * $0 + 1]) << 8 }
    }
}

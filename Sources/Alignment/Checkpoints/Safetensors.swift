import Foundation

/// Reading and writing the safetensors format: an 8-byte little-endian header length, a
/// JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
/// then the raw little-endian tensor bytes (offsets are relative to the end of the header).
///
/// Reading maps the file and validates the header completely before any tensor is decoded;
/// F32, F16 and BF16 tensors decode to `[Float]`.
public enum Safetensors {
    /// Element types this module can decode and encode.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32"
        case f16 = "F16"
        case bf16 = "BF16"

        /// Bytes per element.
        public var byteSize: Int { self == .f32 ? 4 : 2 }
    }

    /// A tensor's shape and values (row-major).
    public struct Tensor: Sendable, Equatable {
        public var shape: [Int]
        public var values: [Float]

        public init(shape: [Int], values: [Float]) {
            self.shape = shape
            self.values = values
        }
    }

    /// One header entry. `byteRange` is relative to the start of the data section.
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        /// The dtype string as written in the file ("F32", "BF16", "I64", ...).
        public let dtype: String
        public let shape: [Int]
        public let byteRange: Range<Int>

        /// Number of elements (product of `shape`; 1 for a scalar).
        public var count: Int { shape.reduce(1, *) }
    }

    /// Bytes per element of every dtype the safetensors format defines; decoding is limited
    /// to `DType`, but the others are still validated so a file can be inspected.
    static let knownSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// An opened, validated safetensors file whose tensors are decoded on request.
    public struct File: Sendable {
        public let path: String
        /// The `__metadata__` map (string values only).
        public let metadata: [String: String]
        /// Header entries by name.
        public let tensors: [String: TensorInfo]
        let bytes: Data
        let dataStart: Int

        /// Tensor names in sorted order.
        public var names: [String] { tensors.keys.sorted() }

        /// The values of tensor `name` as `Float`, converting F16/BF16.
        public func floats(_ name: String) throws -> [Float] {
            guard let info = tensors[name] else { throw CheckpointError(path, "no tensor named '\(name)'") }
            let start = dataStart + info.byteRange.lowerBound
            switch DType(rawValue: info.dtype) {
            case .f32:
                return BinaryIO.floats(bytes, at: start, count: info.count)
            case .f16:
                return BinaryIO.uint16s(bytes, at: start, count: info.count).map(HalfFloat.floatFromF16)
            case .bf16:
                return BinaryIO.uint16s(bytes, at: start, count: info.count).map(HalfFloat.floatFromBF16)
            case nil:
                throw CheckpointError(path, "tensor '\(name)' has dtype \(info.dtype), which cannot be read as floats (supported: F32, F16, BF16)")
            }
        }

        /// Shape and values of tensor `name`.
        public func tensor(_ name: String) throws -> Tensor {
            guard let info = tensors[name] else { throw CheckpointError(path, "no tensor named '\(name)'") }
            return Tensor(shape: info.shape, values: try floats(name))
        }
    }

    /// Opens and validates the safetensors file at `path` (memory-mapped).
    public static func open(path: String) throws -> File {
        let bytes = try BinaryIO.readFile(path)
        return try parse(bytes, path: path)
    }

    /// Every tensor of the file at `path`, decoded to `Float`.
    public static func read(path: String) throws -> [String: Tensor] {
        let file = try open(path: path)
        var out: [String: Tensor] = [:]
        for name in file.names { out[name] = try file.tensor(name) }
        return out
    }

    /// Validates the header of `bytes` (the contents of `path`) and returns the opened file.
    public static func parse(_ bytes: Data, path: String) throws -> File {
        guard bytes.count >= 8 else {
            throw CheckpointError(path, "truncated: \(bytes.count) bytes, too short for the 8-byte safetensors header length")
        }
        let headerLength = BinaryIO.uint64(bytes, at: 0)
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw CheckpointError(path, "header length \(headerLength) runs beyond the end of the file (\(bytes.count) bytes); not a safetensors file or truncated")
        }
        let n = Int(headerLength)
        let dataStart = 8 + n
        let dataLength = bytes.count - dataStart
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8 ..< dataStart))
        } catch {
            throw CheckpointError(path, "malformed JSON header (\(n) bytes): \(error.localizedDescription)")
        }
        guard let root = json as? [String: Any] else {
            throw CheckpointError(path, "malformed header: the JSON header is not an object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: TensorInfo] = [:]
        for (name, value) in root {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw CheckpointError(path, "malformed header: __metadata__ is not an object")
                }
                for (k, v) in m { if let s = v as? String { metadata[k] = s } }
                continue
            }
            tensors[name] = try parseEntry(name: name, value: value, dataLength: dataLength, path: path)
        }
        // Tensors may not share bytes.
        let ordered = tensors.values.sorted { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }
        var previous: TensorInfo?
        for info in ordered where !info.byteRange.isEmpty {
            if let p = previous, info.byteRange.lowerBound < p.byteRange.upperBound {
                throw CheckpointError(path, "tensor '\(info.name)' data_offsets [\(info.byteRange.lowerBound), \(info.byteRange.upperBound)] overlap tensor '\(p.name)' [\(p.byteRange.lowerBound), \(p.byteRange.upperBound)]")
            }
            previous = info
        }
        return File(path: path, metadata: metadata, tensors: tensors, bytes: bytes, dataStart: dataStart)
    }

    private static func parseEntry(name: String, value: Any, dataLength: Int, path: String) throws -> TensorInfo {
        func fail(_ problem: String) -> CheckpointError { CheckpointError(path, "tensor '\(name)': \(problem)") }
        guard let entry = value as? [String: Any] else { throw fail("header entry is not an object") }
        guard let dtype = entry["dtype"] as? String else { throw fail("missing or non-string dtype") }
        guard let size = knownSizes[dtype] else {
            throw fail("unknown dtype \(dtype) (expected one of \(knownSizes.keys.sorted().joined(separator: ", ")))")
        }
        guard let rawShape = entry["shape"] as? [Any], let shape = integers(rawShape), shape.allSatisfy({ $0 >= 0 }) else {
            throw fail("shape is not a list of non-negative integers")
        }
        guard let rawOffsets = entry["data_offsets"] as? [Any], let offsets = integers(rawOffsets), offsets.count == 2 else {
            throw fail("data_offsets is not a pair of integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= dataLength else {
            throw fail("data_offsets [\(begin), \(end)] are out of range (the data section has \(dataLength) bytes)")
        }
        guard let count = BinaryIO.elementCount(shape) else { throw fail("shape \(shape) has too many elements") }
        let (needed, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, needed == end - begin else {
            let need = overflow ? "more than the file holds" : "\(needed) bytes"
            throw fail("data_offsets [\(begin), \(end)] span \(end - begin) bytes but \(dtype) \(shape) needs \(need)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin ..< end)
    }

    /// The values of `list` if all are integers (JSON numbers without fraction).
    private static func integers(_ list: [Any]) -> [Int]? {
        var out: [Int] = []
        out.reserveCapacity(list.count)
        for v in list {
            if let i = v as? Int {
                out.append(i)
            } else if let d = v as? Double, d.rounded() == d, abs(d) < 0x1p62 {
                out.append(Int(d))
            } else {
                return nil
            }
        }
        return out
    }
}

/// A `[rows, cols]` matrix of quantized values with one scale per group of `groupSize` values
/// along each row: value `[r, c] = values[r, c] · scales[r, c / groupSize]`.
///
/// Scales are stored as `Float` but are always exactly representable in fp16 (ggml stores
/// them as fp16). In memory `q8_0` keeps one int8 per value; `q4_0` packs two values per
/// byte as `q + 8`, each run of 32 values in 16 bytes (byte j: value j in the low nibble,
/// value j + 16 in the high one) — the layout the compiled kernels read (`DType.q4`).
public struct QuantizedMatrix: Sendable, Equatable {
    public let type: QuantType
    public let rows: Int, cols: Int
    public let groupSize: Int
    /// `rows × cols / groupSize`, row-major.
    public let scales: [Float]
    /// The stored bytes: `rows × cols` int8 (`q8_0`) or `rows × cols / 2` packed nibbles (`q4_0`).
    public let packed: [UInt8]

    /// A matrix from unpacked values (`rows × cols` signed: −128…127 for `q8_0`, −8…7 for
    /// `q4_0`) and scales (`rows × cols / groupSize`).
    public init(type: QuantType, rows: Int, cols: Int, groupSize: Int, scales: [Float], values: [Int8]) throws {
        try QuantizedMatrix.check(type: type, rows: rows, cols: cols, groupSize: groupSize)
        guard scales.count == rows * cols / groupSize else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)]: \(scales.count) scales, expected \(rows * cols / groupSize)")
        }
        guard values.count == rows * cols else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)]: \(values.count) values, expected \(rows * cols)")
        }
        if let bad = values.first(where: { !type.range.contains(Int($0)) }) {
            throw QuantizationError("\(type.rawValue): value \(bad) is outside \(type.range)")
        }
        self.type = type; self.rows = rows; self.cols = cols; self.groupSize = groupSize
        self.scales = scales
        packed = type == .q8_0 ? values.map { UInt8(bitPattern: $0) } : QuantizedMatrix.pack4(values)
    }

    /// A matrix from its stored form (`packed` as `packed` describes it).
    public init(type: QuantType, rows: Int, cols: Int, groupSize: Int, scales: [Float], packed: [UInt8]) throws {
        try QuantizedMatrix.check(type: type, rows: rows, cols: cols, groupSize: groupSize)
        let bytes = type == .q8_0 ? rows * cols : rows * cols / 2
        guard scales.count == rows * cols / groupSize, packed.count == bytes else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)] group \(groupSize): \(scales.count) scales and \(packed.count) bytes, "
                                    + "expected \(rows * cols / groupSize) and \(bytes)")
        }
        self.type = type; self.rows = rows; self.cols = cols; self.groupSize = groupSize
        self.scales = scales; self.packed = packed
    }

    /// Quantizes `x` (`rows × cols`, row-major) group by group (`Quantizer`).
    public init(quantizing x: [Float], type: QuantType, rows: Int, cols: Int, groupSize: Int = 32) throws {
        try QuantizedMatrix.check(type: type, rows: rows, cols: cols, groupSize: groupSize)
        guard x.count == rows * cols else {
            throw QuantizationError("\(rows) × \(cols) matrix expected, got \(x.count) values")
        }
        let (scales, values) = Quantizer.quantize(x, type: type, groupSize: groupSize)
        try self.init(type: type, rows: rows, cols: cols, groupSize: groupSize, scales: scales, values: values)
    }

    /// The unpacked values, `rows × cols`.
    public var values: [Int8] {
        type == .q8_0 ? packed.map { Int8(bitPattern: $0) } : QuantizedMatrix.unpack4(packed)
    }

    /// `values · scales`, `rows × cols` f32 (exact: an integer times an fp16 number).
    public func dequantized() -> [Float] {
        let v = values
        var out = [Float](repeating: 0, count: rows * cols)
        for i in 0..<out.count { out[i] = Float(v[i]) * scales[i / groupSize] }
        return out
    }

    static func check(type: QuantType, rows: Int, cols: Int, groupSize: Int) throws {
        guard rows >= 0, cols > 0, groupSize > 0, groupSize % 32 == 0 else {
            throw QuantizationError("group size \(groupSize) for a [\(rows), \(cols)] matrix: expected a positive multiple of 32 (32, 64 or 128)")
        }
        guard cols % groupSize == 0 else {
            throw QuantizationError("rows of \(cols) values do not split into groups of \(groupSize) (no padding is done); choose a group size dividing \(cols)")
        }
    }

    /// Two values a byte, `q + 8`; each run of 32 in 16 bytes (value j low, j + 16 high).
    static func pack4(_ v: [Int8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count / 2)
        for run in stride(from: 0, to: v.count, by: 32) {
            for j in 0..<16 {
                let lo = UInt8(Int(v[run + j]) + 8), hi = UInt8(Int(v[run + j + 16]) + 8)
                out[run / 2 + j] = lo | (hi << 4)
            }
        }
        return out
    }

    static func unpack4(_ p: [UInt8]) -> [Int8] {
        var out = [Int8](repeating: 0, count: p.count * 2)
        for run in stride(from: 0, to: out.count, by: 32) {
            for j in 0..<16 {
                let b = p[run / 2 + j]
                out[run + j] = Int8(Int(b & 15) - 8)
                out[run + j + 16] = Int8(Int(b >> 4) - 8)
            }
        }
        return out
    }
}

/// A quantization error: bad shapes, group sizes or files.
public struct QuantizationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

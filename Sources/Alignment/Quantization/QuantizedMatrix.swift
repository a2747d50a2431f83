/// A `[rows, cols]` matrix of quantized values with one scale per group of `groupSize` values
/// along each row: value `[r, c] = values[r, c] · scales[r, c / groupSize]`. When `groupSize`
/// does not divide `cols`, a row's last group is short (its scale comes from its own values:
/// the row is padded with zeros, which change no absmax), so there are `⌈cols / G⌉` scales a row.
///
/// Scales are stored as `Float` but are always exactly representable in fp16 (ggml stores
/// them as fp16). In memory (`packed`) each row is padded to `paddedCols = ⌈cols / G⌉·G`
/// values (zeros); `q8_0` keeps one int8 per value; `q4_0` packs two values per byte as
/// `q + 8`, each run of 32 values in 16 bytes (byte j: value j in the low nibble, value j + 16
/// in the high one) — the layout the compiled kernels read (`DType.q4`).
public struct QuantizedMatrix: Sendable, Equatable {
    public let type: QuantType
    public let rows: Int, cols: Int
    public let groupSize: Int
    /// `rows × groupsPerRow`, row-major.
    public let scales: [Float]
    /// The stored bytes: `rows × paddedCols` int8 (`q8_0`) or `rows × paddedCols / 2` packed nibbles (`q4_0`).
    public let packed: [UInt8]

    /// Scales a row: `⌈cols / groupSize⌉`.
    public var groupsPerRow: Int { (cols + groupSize - 1) / groupSize }
    /// A stored row's length in values: `groupsPerRow · groupSize`.
    public var paddedCols: Int { groupsPerRow * groupSize }

    /// A matrix from unpacked values (`rows × cols` signed: −128…127 for `q8_0`, −8…7 for
    /// `q4_0`) and scales (`rows × ⌈cols / groupSize⌉`).
    public init(type: QuantType, rows: Int, cols: Int, groupSize: Int, scales: [Float], values: [Int8]) throws {
        try QuantizedMatrix.check(type: type, rows: rows, cols: cols, groupSize: groupSize)
        let groups = (cols + groupSize - 1) / groupSize, padded = groups * groupSize
        guard scales.count == rows * groups else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)]: \(scales.count) scales, expected \(rows * groups)")
        }
        guard values.count == rows * cols else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)]: \(values.count) values, expected \(rows * cols)")
        }
        if let bad = values.first(where: { !type.range.contains(Int($0)) }) {
            throw QuantizationError("\(type.rawValue): value \(bad) is outside \(type.range)")
        }
        self.type = type; self.rows = rows; self.cols = cols; self.groupSize = groupSize
        self.scales = scales
        var rowsPadded = [Int8](repeating: 0, count: rows * padded)
        for r in 0..<rows { for c in 0..<cols { rowsPadded[r * padded + c] = values[r * cols + c] } }
        packed = type == .q8_0 ? rowsPadded.map { UInt8(bitPattern: $0) } : QuantizedMatrix.pack4(rowsPadded)
    }

    /// A matrix from its stored form (`packed` as `packed` describes it).
    public init(type: QuantType, rows: Int, cols: Int, groupSize: Int, scales: [Float], packed: [UInt8]) throws {
        try QuantizedMatrix.check(type: type, rows: rows, cols: cols, groupSize: groupSize)
        let groups = (cols + groupSize - 1) / groupSize
        let bytes = type == .q8_0 ? rows * groups * groupSize : rows * groups * groupSize / 2
        guard scales.count == rows * groups, packed.count == bytes else {
            throw QuantizationError("\(type.rawValue) [\(rows), \(cols)] group \(groupSize): \(scales.count) scales and \(packed.count) bytes, "
                                    + "expected \(rows * groups) and \(bytes)")
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
        if let i = x.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError("value \(i) (row \(i / cols), column \(i % cols)) is \(x[i]); only finite numbers can be quantized")
        }
        let (scales, values) = Quantizer.quantize(x, type: type, groupSize: groupSize, cols: cols)
        try self.init(type: type, rows: rows, cols: cols, groupSize: groupSize, scales: scales, values: values)
    }

    /// The unpacked values, `rows × cols`.
    public var values: [Int8] {
        let all = type == .q8_0 ? packed.map { Int8(bitPattern: $0) } : QuantizedMatrix.unpack4(packed)
        let padded = paddedCols
        if padded == cols { return all }
        var out = [Int8](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { out[r * cols + c] = all[r * padded + c] } }
        return out
    }

    /// `values · scales`, `rows × cols` f32 (exact: an integer times an fp16 number).
    public func dequantized() -> [Float] {
        let v = values, groups = groupsPerRow
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols { out[r * cols + c] = Float(v[r * cols + c]) * scales[r * groups + c / groupSize] }
        }
        return out
    }

    static func check(type: QuantType, rows: Int, cols: Int, groupSize: Int) throws {
        guard rows >= 0, cols > 0, groupSize > 0, groupSize % 32 == 0 else {
            throw QuantizationError("group size \(groupSize) for a [\(rows), \(cols)] matrix: expected a positive multiple of 32 (32, 64 or 128)")
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

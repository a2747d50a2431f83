import Foundation

/// ggml's Q8_0 and Q4_0 blocks, encoded and decoded exactly as ggml's reference code
/// (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`, `dequantize_row_*`) and the `gguf`
/// Python package do. A block holds 32 consecutive elements of a row.
///
///     Q8_0 (34 bytes): d = amax/127, id = 1/d (0 when d = 0), q[j] = roundf(x[j]·id);
///                      bytes: fp16 d, then q[0…31] as int8.          x = d·q
///     Q4_0 (18 bytes): m = the element of largest |x| (the first one on ties), with its sign;
///                      d = m/−8, id = 1/d (0 when d = 0), q[j] = min(15, (int8)(x[j]·id + 8.5));
///                      bytes: fp16 d, then 16 bytes: low nibble q[j], high nibble q[j+16].
///                                                                    x = d·(q − 8)
///
/// The scale is rounded to fp16 when stored, after the values were computed with the float32 d.
/// Inputs must be finite (callers check); non-finite inputs give some block without trapping.
public enum GGUFBlocks {
    /// Elements per block.
    public static let blockSize = 32

    /// Appends the Q8_0 blocks of `x` (a multiple of 32 elements) to `out`.
    public static func appendQ8_0(_ x: UnsafeBufferPointer<Float>, to out: inout [UInt8]) {
        precondition(x.count % blockSize == 0, "Q8_0 needs a multiple of 32 elements")
        for start in stride(from: 0, to: x.count, by: blockSize) {
            var amax: Float = 0
            for j in 0..<blockSize { amax = max(amax, abs(x[start + j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            appendF16(d, to: &out)
            for j in 0..<blockSize {
                let q = clamped((x[start + j] * id).rounded(.toNearestOrAwayFromZero), -128, 127)
                out.append(UInt8(bitPattern: Int8(q)))
            }
        }
    }

    /// Appends the Q4_0 blocks of `x` (a multiple of 32 elements) to `out`.
    public static func appendQ4_0(_ x: UnsafeBufferPointer<Float>, to out: inout [UInt8]) {
        precondition(x.count % blockSize == 0, "Q4_0 needs a multiple of 32 elements")
        let half = blockSize / 2
        for start in stride(from: 0, to: x.count, by: blockSize) {
            var amax: Float = 0, m: Float = 0
            for j in 0..<blockSize where amax < abs(x[start + j]) {
                amax = abs(x[start + j]); m = x[start + j]
            }
            let d = m / -8
            let id: Float = d != 0 ? 1 / d : 0
            appendF16(d, to: &out)
            for j in 0..<half {
                // (int8_t)(v + 8.5f) truncates toward zero; then min(15, ·).
                let lo = min(15, clamped((x[start + j] * id + 8.5).rounded(.towardZero), 0, 127))
                let hi = min(15, clamped((x[start + half + j] * id + 8.5).rounded(.towardZero), 0, 127))
                out.append(UInt8(lo) | UInt8(hi) << 4)
            }
        }
    }

    /// The blocks of `type` (Q8_0 or Q4_0) in `raw` unpacked: one scale (the fp16 d as a Float)
    /// per block and one integer per element, `q` for Q8_0 (−128…127), `q − 8` for Q4_0 (−8…7),
    /// so that element i is `scales[i / 32] · values[i]`.
    public static func unpack(_ type: GGMLType, _ raw: UnsafeRawBufferPointer) -> (scales: [Float], values: [Int8]) {
        precondition(type == .q8_0 || type == .q4_0, "unpack takes Q8_0 or Q4_0")
        let bytes = type == .q8_0 ? 34 : 18
        let blocks = raw.count / bytes
        var scales = [Float](repeating: 0, count: blocks)
        var values = [Int8](repeating: 0, count: blocks * blockSize)
        for b in 0..<blocks {
            let at = b * bytes
            scales[b] = HalfFloat.floatFromF16(UInt16(raw[at]) | UInt16(raw[at + 1]) << 8)
            if type == .q8_0 {
                for j in 0..<blockSize { values[b * blockSize + j] = Int8(bitPattern: raw[at + 2 + j]) }
            } else {
                for j in 0..<(blockSize / 2) {
                    let byte = raw[at + 2 + j]
                    values[b * blockSize + j] = Int8(byte & 0x0F) - 8
                    values[b * blockSize + j + blockSize / 2] = Int8(byte >> 4) - 8
                }
            }
        }
        return (scales, values)
    }

    /// ggml's dequantization of unpacked blocks: element i is `scales[i / 32] · Float(values[i])`.
    public static func dequantize(scales: [Float], values: [Int8]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for i in 0..<values.count { out[i] = scales[i / blockSize] * Float(values[i]) }
        return out
    }

    /// `v` limited to `lo…hi`, NaN as 0 (only a non-finite input can give one).
    static func clamped(_ v: Float, _ lo: Float, _ hi: Float) -> Int {
        v.isNaN ? 0 : Int(min(hi, max(lo, v)))
    }

    static func appendF16(_ v: Float, to out: inout [UInt8]) {
        let h = HalfFloat.f16FromFloat(v)
        out.append(UInt8(h & 0xFF))
        out.append(UInt8(h >> 8))
    }
}

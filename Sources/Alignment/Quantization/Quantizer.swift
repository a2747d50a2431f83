import Foundation

/// ggml's reference quantizers (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`), per group
/// of `G` consecutive values:
/// - `q8_0`: `amax = max|x|`, `d = amax / 127`, `id = d ≠ 0 ? 1/d : 0`, `q = roundf(x·id)`
///   (half away from zero); the stored scale is `fp16(d)`.
/// - `q4_0`: `m` = the value of largest magnitude (sign kept), `d = m / −8`, `id` as above,
///   `q = min(15, Int8(x·id + 8.5)) − 8` (truncated); the stored scale is `fp16(d)`.
/// The quantized value is `q · fp16(d)`, so the error of a value is at most `|d|/2 + |q|·|d − fp16(d)|`
/// for `q8_0` and `|d| + |q|·|d − fp16(d)|` for `q4_0` (the top of the range clips at 7).
public enum Quantizer {
    /// Scales (fp16-exact, `⌈cols / groupSize⌉` a row) and values of `x` (rows of `cols`); a
    /// row's last group is short when `groupSize` does not divide `cols` (as if padded with zeros).
    public static func quantize(_ x: [Float], type: QuantType, groupSize: Int, cols: Int) -> (scales: [Float], values: [Int8]) {
        let perRow = (cols + groupSize - 1) / groupSize, rows = cols > 0 ? x.count / cols : 0
        var scales = [Float](repeating: 0, count: rows * perRow)
        var values = [Int8](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xs in
            for g in 0..<(rows * perRow) {
                let (r, j) = (g / perRow, g % perRow)
                let lo = r * cols + j * groupSize, hi = r * cols + min(cols, (j + 1) * groupSize)
                switch type {
                case .q8_0:
                    var amax: Float = 0
                    for i in lo..<hi { amax = max(amax, abs(xs[i])) }
                    let d = amax / 127
                    let id: Float = d != 0 ? 1 / d : 0
                    scales[g] = fp16(d)
                    for i in lo..<hi { values[i] = Int8(roundf(xs[i] * id)) }
                case .q4_0:
                    var amax: Float = 0, m: Float = 0
                    for i in lo..<hi where amax < abs(xs[i]) { amax = abs(xs[i]); m = xs[i] }
                    let d = m / -8
                    let id: Float = d != 0 ? 1 / d : 0
                    scales[g] = fp16(d)
                    for i in lo..<hi {
                        let q = min(15, Int(Int8(truncatingIfNeeded: Int(xs[i] * id + 8.5))))
                        values[i] = Int8(q - 8)
                    }
                }
            }
        }
        return (scales, values)
    }

    /// `v` rounded to the nearest fp16 value (ties to even), as a Float.
    public static func fp16(_ v: Float) -> Float { HalfFloat.floatFromF16(HalfFloat.f16FromFloat(v)) }
}

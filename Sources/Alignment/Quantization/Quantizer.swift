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
    /// Scales (fp16-exact) and values of `x`, whose length `groupSize` divides.
    public static func quantize(_ x: [Float], type: QuantType, groupSize: Int) -> (scales: [Float], values: [Int8]) {
        let groups = x.count / groupSize
        var scales = [Float](repeating: 0, count: groups)
        var values = [Int8](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xs in
            for g in 0..<groups {
                let lo = g * groupSize, hi = lo + groupSize
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

/// Relative difference `max|a−b| / max(max|b|, tiny)`.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var num: Float = 0, den: Float = 1e-12
    for (x, y) in zip(a, b) { num = max(num, abs(x - y)); den = max(den, abs(y)) }
    return num / den
}

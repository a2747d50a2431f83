import TensorGraph

/// How tokens are placed: RoPE tables (`[T, HD2]`, or `[B, T, HD2]` for per-row positions)
/// and an optional extra 1/0 attention mask `[B, 1, 1, T, T]` on top of the causal one.
public struct TokenLayout {
    public var cos: Tensor
    public var sin: Tensor
    public var allowed: Tensor?

    /// Every row at positions `start ..< start+seq` (declares the scalar input `rope_theta`).
    static func sequential(_ b: GraphBuilder, seq: Dim, start: Dim) -> TokenLayout {
        let theta = b.input(LlamaDims.Constant.ropeTheta.rawValue, [])
        let (cos, sin) = b.ropeTables(seq: seq, half: LlamaDims.half, start: start, theta: theta)
        return TokenLayout(cos: cos, sin: sin)
    }

    /// RoPE at these positions: `x [B, T, heads, HD]` → the same shape.
    func rope(_ x: Tensor) -> Tensor {
        x.builder.rope(x, cos: cos, sin: sin)
    }
}

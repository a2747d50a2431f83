import TensorGraph

/// RMSNorm over the last axis with a learned scale: `y = x · w / sqrt(mean(x²) + eps)`.
struct RMSNorm {
    /// `[D]`; inside the layer loop, the current layer's slice of a per-layer parameter.
    let weight: Tensor
    /// The scalar `norm_eps` input every norm of the model shares.
    let eps: Tensor

    /// Declares the parameter `name` (`[D]`, or `[L, D]` stacked over the layers when `perLayer`).
    init(_ b: GraphBuilder, _ name: String, eps: Tensor, perLayer: Bool = false) {
        typealias D = LlamaDims
        weight = b.param(name, perLayer ? [D.layers, D.dim] : [D.dim], perLayer: perLayer)
        self.eps = eps
    }

    /// `x [..., D]` → `[..., D]`, one fused kernel (with the residual add that feeds it).
    func callAsFunction(_ x: Tensor) -> Tensor {
        x.builder.rmsNorm(x, weight, eps: eps)
    }
}

import TensorGraph

/// A linear map without bias (PyTorch's `Linear(bias=False)`): `y = x · Wᵀ`.
struct Linear {
    /// `[out, in]`; inside the layer loop, the current layer's slice of a per-layer parameter.
    let weight: Tensor

    /// Declares the parameter `name` (`[out, in]`, or `[L, out, in]` stacked over the layers
    /// when `perLayer`; the layer loop then sees one layer's `[out, in]`).
    init(_ b: GraphBuilder, _ name: String, out: Dim, in: Dim, perLayer: Bool = false) {
        weight = b.param(name, perLayer ? [LlamaDims.layers, out, `in`] : [out, `in`], perLayer: perLayer)
    }

    /// `x [..., in]` → `[..., out]`: one product over the flattened leading axes
    /// (`[B, T, in]` is viewed as `[B·T, in]`; a matrix is used as it is).
    func callAsFunction(_ x: Tensor) -> Tensor {
        let lead = Array(x.shape.dropLast())
        let rows = x.reshape([lead.elementCount, x.shape[x.rank - 1]])
        return rows.matmul(weight, transB: true).reshape(lead + [weight.shape[0]])
    }
}

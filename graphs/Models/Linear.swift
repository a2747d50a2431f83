import TensorGraph

/// A linear map without bias (PyTorch's `Linear(bias=False)`): `y = x · Wᵀ`.
struct Linear {
    /// `[out, in]`; inside the layer loop, the current layer's slice of a per-layer parameter.
    let weight: Tensor
    /// The group scales `[out, in / G]` of a quantized weight (`WeightQuant`); nil for f32.
    let scales: Tensor?

    /// Declares the parameter `name` (`[out, in]`, or `[L, out, in]` stacked over the layers
    /// when `perLayer`; the layer loop then sees one layer's `[out, in]`). With `quant`, the
    /// weight holds quantized values and `<name>_scales` its group scales.
    init(_ b: GraphBuilder, _ name: String, out: Dim, in: Dim, perLayer: Bool = false, quant: WeightQuant? = nil) {
        let lead: [Dim] = perLayer ? [LlamaDims.layers] : []
        weight = b.param(name, lead + [out, quant.map { _ in WeightQuant.padded(`in`) } ?? `in`], quant?.dtype ?? .f32, perLayer: perLayer)
        scales = quant.map { _ in b.param(WeightQuant.scalesName(name), lead + [out, WeightQuant.groups(`in`)], perLayer: perLayer) }
    }

    /// `x [..., in]` → `[..., out]`: one product over the flattened leading axes
    /// (`[B, T, in]` is viewed as `[B·T, in]`; a matrix is used as it is).
    func callAsFunction(_ x: Tensor) -> Tensor {
        let lead = Array(x.shape.dropLast())
        let rows = x.reshape([lead.elementCount, x.shape[x.rank - 1]])
        if let scales { return x.builder.quantizedMatmul(rows, weight, scales: scales).reshape(lead + [weight.shape[0]]) }
        return rows.matmul(weight, transB: true).reshape(lead + [weight.shape[0]])
    }
}

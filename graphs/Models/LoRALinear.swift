import TensorGraph

/// The LoRA adapters of a model: whether the projections carry them, and their names.
///
/// Every projection of a decoder layer (`wq wk wv wo w1 w2 w3`, Hugging Face's
/// `q_proj k_proj v_proj o_proj gate_proj down_proj up_proj`) gets an adapter pair stacked over
/// the layers — `lora_a_<w>` `[L, R, in]` and `lora_b_<w>` `[L, out, R]` — and a scalar input
/// `lora_scale_<w>` (α/r, or α/√r with rsLoRA). A module the run does not target gets scale 0
/// (and zero adapters the optimizer keeps frozen), so one compiled program serves every choice of
/// `target_modules`.
public enum LoRA {
    /// The adapted projections, in the order the layer declares them.
    public static let modules = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
    /// The rank `R` of every adapter.
    public static let rank = Dim.sym("R")

    /// `lora_a_<module>`: the down projection `[L, R, in]`.
    public static func aName(_ module: String) -> String { "lora_a_\(module)" }
    /// `lora_b_<module>`: the up projection `[L, out, R]`.
    public static func bName(_ module: String) -> String { "lora_b_\(module)" }
    /// `lora_scale_<module>`: the scalar `s` of `W·x + s·B(A·x)`.
    public static func scaleName(_ module: String) -> String { "lora_scale_\(module)" }
}

/// A linear map without bias (`Linear`), optionally with a LoRA adapter:
/// `y = x · Wᵀ + s · (x · Aᵀ) · Bᵀ` (`A` `[R, in]`, `B` `[out, R]`, `s` a scalar input).
/// The adapter's path is two thin products, so the `[out, in]` update `B·A` is never formed.
struct LoRALinear {
    /// The frozen base map.
    let base: Linear
    /// `A` `[R, in]` and `B` `[out, R]` (this layer's slices) and the scale, when adapted.
    let adapter: (a: Tensor, b: Tensor, scale: Tensor)?

    /// Declares `name` like `Linear`; with `lora`, also `lora_a_<name>`, `lora_b_<name>` (per
    /// layer like the weight) and the scalar input `lora_scale_<name>`.
    init(_ b: GraphBuilder, _ name: String, out: Dim, in: Dim, perLayer: Bool = false, lora: Bool = false, quant: WeightQuant? = nil) {
        base = Linear(b, name, out: out, in: `in`, perLayer: perLayer, quant: quant)
        guard lora else { adapter = nil; return }
        let lead: [Dim] = perLayer ? [LlamaDims.layers] : []
        adapter = (a: b.param(LoRA.aName(name), lead + [LoRA.rank, `in`], perLayer: perLayer),
                   b: b.param(LoRA.bName(name), lead + [out, LoRA.rank], perLayer: perLayer),
                   scale: b.input(LoRA.scaleName(name), []))
    }

    /// The base weight `[out, in]`.
    var weight: Tensor { base.weight }
    /// The adapter's parameters (`A`, `B`), none without one.
    var adapterParameters: [Tensor] { adapter.map { [$0.a, $0.b] } ?? [] }

    /// `x [..., in]` → `[..., out]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        let y = base(x)
        guard let adapter else { return y }
        let bld = x.builder
        return bld.scope("lora") {
            let lead = Array(x.shape.dropLast())
            let rows = x.reshape([lead.elementCount, x.shape[x.rank - 1]])
            let down = rows.matmul(adapter.a, transB: true)
            let up = down.matmul(adapter.b, transB: true).reshape(lead + [adapter.b.shape[0]])
            return y + bld.broadcast(adapter.scale, to: up.shape) * up
        }
    }
}

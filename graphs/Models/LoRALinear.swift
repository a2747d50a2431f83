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
    /// `lora_dropout_key_<module>`: the per-layer int32 keys `[L]` of the module's dropout mask
    /// (training programs with dropout: `lm_step_lora_dropout`, `dpo_step_lora_dropout`).
    public static func dropoutKeyName(_ module: String) -> String { "lora_dropout_key_\(module)" }
    /// `lora_dropout`: the scalar dropout probability `p` (< 1) of those programs.
    public static let dropoutRateName = "lora_dropout"
}

/// A linear map without bias (`Linear`), optionally with a LoRA adapter:
/// `y = x · Wᵀ + (s · (x · Aᵀ)) · Bᵀ` (`A` `[R, in]`, `B` `[out, R]`, `s` a scalar input).
/// The adapter's path is two thin products, so the `[out, in]` update `B·A` is never formed.
/// With dropout (training), the adapter reads `dropout(x)` instead of `x`, as PEFT does:
/// `y = x · Wᵀ + s · (d(x) · Aᵀ) · Bᵀ`, `d(x) = x ⊙ [p ≤ u] / (1 − p)` with `u` uniform in
/// [0, 1) drawn from the layer's `lora_dropout_key_<w>` and the element's index (`random`),
/// so the backward stage, which rebuilds the layer, draws the same mask.
struct LoRALinear {
    /// The projection's name (`wq`, …, `w3`).
    let name: String
    /// The frozen base map.
    let base: Linear
    /// `A` `[R, in]` and `B` `[out, R]` (this layer's slices) and the scale, when adapted.
    let adapter: (a: Tensor, b: Tensor, scale: Tensor)?
    /// The layer's dropout key (int32 scalar) and the rate `p`, when the adapter input drops out.
    let dropout: (key: Tensor, rate: Tensor)?

    /// Declares `name` like `Linear`; with `lora`, also `lora_a_<name>`, `lora_b_<name>` (per
    /// layer like the weight) and the scalar input `lora_scale_<name>`; with `dropout` (and
    /// `lora`), the keys `lora_dropout_key_<name>` (`[L]` int32, per layer) and the rate
    /// `lora_dropout`; with `quant`, the base weight holds that type.
    init(_ b: GraphBuilder, _ name: String, out: Dim, in: Dim, perLayer: Bool = false, lora: Bool = false, dropout: Bool = false,
         quant: WeightQuant? = nil) {
        self.name = name
        base = Linear(b, name, out: out, in: `in`, perLayer: perLayer, quant: quant)
        self.dropout = lora && dropout
            ? (key: b.input(LoRA.dropoutKeyName(name), perLayer ? [LlamaDims.layers] : [], .i32, perLayer: perLayer),
               rate: b.input(LoRA.dropoutRateName, []))
            : nil
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

    /// `x [..., in]` → `[..., out]`. `keep` sees the adapter's scaled down projection
    /// `s·(x·Aᵀ)` `[N, R]` as `lora_<name>` (kept, the backward stage reads it instead of
    /// recomputing the product that reads all of `x`).
    func callAsFunction(_ x: Tensor, keep: KeptActivations = .none) -> Tensor {
        let y = base(x)
        guard let adapter else { return y }
        let bld = x.builder
        return bld.scope("lora") {
            let lead = Array(x.shape.dropLast())
            var rows = x.reshape([lead.elementCount, x.shape[x.rank - 1]])
            if let dropout {
                rows = bld.scope("dropout") {
                    let u = bld.uniform(key: dropout.key, rows.shape)
                    let kept = bld.broadcast(dropout.rate, to: rows.shape).le(u)
                    return rows * kept * bld.broadcast(1.0 / (1.0 - dropout.rate), to: rows.shape)
                }
            }
            // The scale multiplies the thin `[N, R]` product, not the `[N, out]` one: the backward
            // then hands `dy` to the products unscaled (no `[N, out]` pass, and `dy` keeps the
            // layout its producer wrote for the base product's input gradient).
            let down = rows.matmul(adapter.a, transB: true)
            let scaled = keep(KeptActivations.adapterName(name), down * bld.broadcast(adapter.scale, to: down.shape))
            let up = scaled.matmul(adapter.b, transB: true).reshape(lead + [adapter.b.shape[0]])
            return y + up
        }
    }
}

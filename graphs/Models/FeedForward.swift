import TensorGraph

/// SwiGLU feed-forward: `W2 (silu(W1 x) ⊙ W3 x)` (Hugging Face's gate, down and up projections).
struct FeedForward {
    /// `[F, D]`, `[D, F]`, `[F, D]`: the current layer's slices of the per-layer `w1`, `w2`, `w3`.
    let w1, w2, w3: LoRALinear

    /// Declares `w1`, `w2`, `w3` (`[L, …]`), each with its LoRA adapter when `lora`; called
    /// inside the layer loop.
    init(_ b: GraphBuilder, lora: Bool = false, dropout: Bool = false, quant: WeightQuant? = nil) {
        typealias D = LlamaDims
        w1 = LoRALinear(b, "w1", out: D.hidden, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        w2 = LoRALinear(b, "w2", out: D.dim, in: D.hidden, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        w3 = LoRALinear(b, "w3", out: D.hidden, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
    }

    /// The parameters in declaration order.
    var parameters: [Tensor] { [w1.weight, w2.weight, w3.weight] }
    /// The LoRA adapters' parameters (`A`, `B` of `w1`, `w2`, `w3`); none without LoRA.
    var adapterParameters: [Tensor] { [w1, w2, w3].flatMap(\.adapterParameters) }

    /// `x [B, T, D]` → `[B, T, D]`; `keep` sees the two `[B, T, F]` projections (`gate`, `up`).
    func callAsFunction(_ x: Tensor, keep: KeptActivations = .none) -> Tensor {
        let b = x.builder
        return b.scope("ffn") {
            let gate = b.scope("gate_up") { b.silu(keep("gate", w1(x, keep: keep))) * keep("up", w3(x, keep: keep)) }
            return w2(gate, keep: keep)
        }
    }
}

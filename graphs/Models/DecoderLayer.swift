import TensorGraph

/// One pre-norm decoder layer: `h = x + attention(norm(x)); out = h + feedForward(norm(h))`.
///
/// Its parameters are stacked over the layers on a leading axis (`[L, …]`, llama2.c's order);
/// the layer is built inside the layer loop (a repeated stage), which sees one layer's slices.
struct DecoderLayer {
    /// `attn_norm` `[D]`.
    let attentionNorm: RMSNorm
    /// `wq`, `wk`, `wv`, `wo`.
    let attention: Attention
    /// `ffn_norm` `[D]`.
    let ffnNorm: RMSNorm
    /// `w1`, `w2`, `w3`.
    let feedForward: FeedForward

    /// Declares the layer's parameters in the order of `parameters`; `eps` is `norm_eps`.
    /// With `lora`, every projection also carries its LoRA adapter (`LoRALinear`), read through
    /// dropout with `dropout` (training); with `prefix`, attention puts the trained prefix ahead
    /// of the row (`PrefixKV`); with `quant`, the projections hold that weight type.
    init(_ b: GraphBuilder, eps: Tensor, lora: Bool = false, dropout: Bool = false, prefix: Bool = false, quant: WeightQuant? = nil) {
        attentionNorm = RMSNorm(b, "attn_norm", eps: eps, perLayer: true)
        attention = Attention(b, lora: lora, dropout: dropout, prefix: prefix, quant: quant)
        ffnNorm = RMSNorm(b, "ffn_norm", eps: eps, perLayer: true)
        feedForward = FeedForward(b, lora: lora, dropout: dropout, quant: quant)
    }

    /// The trained parameters of an adapted layer: LoRA's `A`, `B` per projection, or the
    /// prefix's `prefix_kv`; none for the plain model.
    var adapterParameters: [Tensor] { attention.adapterParameters + feedForward.adapterParameters }

    /// `attn_norm`, `wq`, `wk`, `wv`, `wo`, `ffn_norm`, `w1`, `w2`, `w3` (this layer's slices).
    var parameters: [Tensor] {
        [attentionNorm.weight] + attention.parameters + [ffnNorm.weight] + feedForward.parameters
    }

    /// `x [B, T, D]` → `[B, T, D]`. `cache`: this layer's KV cache (prefill, decode);
    /// `keep` marks the activations a training graph keeps for the backward pass (the
    /// residual `h` `[B, T, D]` and those of attention and the feed-forward).
    func callAsFunction(_ x: Tensor, layout: TokenLayout, cache: KVCache? = nil, keep: KeptActivations = .none) -> Tensor {
        let h = keep("h", x + attention(attentionNorm(x), layout: layout, cache: cache, keep: keep))
        return h + feedForward(ffnNorm(h), keep: keep)
    }
}

import TensorGraph

/// Causal self-attention with RoPE: `KVH` key/value heads, each shared by `REP` query heads
/// (multi-head when `REP = 1`, grouped-query otherwise), optionally through a KV cache.
struct Attention {
    /// `[D, D]`: the current layer's slice of the per-layer `wq`.
    let wq: LoRALinear
    /// `[KVD, D]` each (`KVD = KVH·HD`).
    let wk, wv: LoRALinear
    /// `[D, D]`.
    let wo: LoRALinear
    /// This layer's trained prefix keys and values, when prefix tuning.
    let prefix: PrefixKV?

    /// Declares `wq`, `wk`, `wv`, `wo` (`[L, …]`), each with its LoRA adapter when `lora` (reading
    /// its input through dropout with `dropout`; of type `quant` when given), then `prefix_kv`
    /// with `prefix`; called inside the layer loop.
    init(_ b: GraphBuilder, lora: Bool = false, dropout: Bool = false, prefix: Bool = false, quant: WeightQuant? = nil) {
        typealias D = LlamaDims
        wq = LoRALinear(b, "wq", out: D.dim, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        wk = LoRALinear(b, "wk", out: D.kvDim, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        wv = LoRALinear(b, "wv", out: D.kvDim, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        wo = LoRALinear(b, "wo", out: D.dim, in: D.dim, perLayer: true, lora: lora, dropout: dropout, quant: quant)
        self.prefix = prefix ? PrefixKV(b) : nil
    }

    /// The parameters in declaration order.
    var parameters: [Tensor] { [wq.weight, wk.weight, wv.weight, wo.weight] }
    /// The LoRA adapters' parameters (`A`, `B` of `wq`, `wk`, `wv`, `wo`) and the prefix
    /// (`prefix_kv`); none for the plain model.
    var adapterParameters: [Tensor] { [wq, wk, wv, wo].flatMap(\.adapterParameters) + (prefix.map { [$0.table] } ?? []) }

    /// `x [B, T, D]` → `[B, T, D]`, queries and keys rotated for the positions of `layout`.
    /// With `cache`, this call's keys and values are written at positions `P ..< P+T` and the
    /// queries attend over `0 ..< S`. `keep` sees `q` `[B, T, H, HD]`, `k` and `v`
    /// `[B, T, KVH, HD]`, the rows' log-sum-exp `lse` `[B, H, T]` and the heads' output `attn`
    /// `[B, T, H, HD]`. With a prefix (and no
    /// cache) the queries, at positions `P ..< P+T` in `layout`, attend over the prefix's `P`
    /// keys and values and then the row's own (causally).
    func callAsFunction(_ x: Tensor, layout: TokenLayout, cache: KVCache? = nil, keep: KeptActivations = .none) -> Tensor {
        typealias D = LlamaDims
        let b = x.builder
        return b.scope("attention") {
            let (bs, t) = (x.shape[0], x.shape[1])
            let q = keep("q", layout.rope(wq(x, keep: keep).reshape([bs, t, D.heads, D.headDim])))
            var k = keep("k", layout.rope(wk(x, keep: keep).reshape([bs, t, D.kvHeads, D.headDim])))
            var v = keep("v", wv(x, keep: keep).reshape([bs, t, D.kvHeads, D.headDim]))
            var start: Dim = 0
            if let cache {
                (k, v) = cache.update(keys: k, values: v)
                start = D.start
            } else if let prefix {
                (k, v) = prefix.prepend(keys: k, values: v)
                start = Prefix.length
            }
            // Fused causal attention (`[B, T, H, HD]`): the forward kernel stores the output and
            // each row's log-sum-exp, the backward recomputes the probabilities from both.
            let mask = layout.allowed.map { b.attentionMask($0, batch: bs, seq: t, keys: k.shape[1]) }
            let lse = b.scope("attention") { keep("lse", b.attentionLogSumExp(q: q, k: k, v: v, start: start, allowed: mask)) }
            let out = b.scope("attention") { keep("attn", b.attentionOutput(q: q, k: k, v: v, logSumExp: lse, start: start, allowed: mask)) }
            return wo(out.reshape([bs, t, D.dim]), keep: keep)
        }
    }
}

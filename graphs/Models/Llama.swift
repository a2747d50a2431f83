import TensorGraph

/// The weights of one decoder layer (the current layer's slices inside the layer loop).
public struct LlamaLayer {
    public var attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3: Tensor

    /// Internal parameter names, in the order of `all`.
    public static let names = ["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"]
    public var all: [Tensor] { [attnNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3] }

    public init(_ b: GraphBuilder) {
        typealias D = LlamaDims
        let l = D.layers
        attnNorm = b.param("attn_norm", [l, D.dim], perLayer: true)
        wq = b.param("wq", [l, D.dim, D.dim], perLayer: true)
        wk = b.param("wk", [l, D.kvDim, D.dim], perLayer: true)
        wv = b.param("wv", [l, D.kvDim, D.dim], perLayer: true)
        wo = b.param("wo", [l, D.dim, D.dim], perLayer: true)
        ffnNorm = b.param("ffn_norm", [l, D.dim], perLayer: true)
        w1 = b.param("w1", [l, D.hidden, D.dim], perLayer: true)
        w2 = b.param("w2", [l, D.dim, D.hidden], perLayer: true)
        w3 = b.param("w3", [l, D.hidden, D.dim], perLayer: true)
    }
}

/// `x · Wᵀ` for `x [B, T, in]` and `W [out, in]` (PyTorch's Linear without bias).
func linear(_ x: Tensor, _ w: Tensor) -> Tensor {
    let s = x.shape
    let rows = x.reshape([s[0] * s[1], s[2]])
    return rows.matmul(w, transB: true).reshape([s[0], s[1], w.shape[0]])
}

/// A KV cache for one layer: `[B, C, KVH, HD]` buffers that the program writes into.
struct LayerCache {
    var k: Tensor
    var v: Tensor
}

/// Where a training graph keeps a block's activations for its backward pass: given a name and
/// a value, returns the value to use from then on (saved into, or read back from, a buffer).
typealias Keep = (_ name: String, _ value: Tensor) -> Tensor

/// The activations a block keeps (`Keep` names), with their shapes: the matmul outputs the
/// backward pass needs, so it recomputes only cheap elementwise values and the attention
/// scores.
func keptActivations() -> [(name: String, shape: Shape)] {
    typealias D = LlamaDims
    return [("q", [D.batch, D.seq, D.heads, D.headDim]), ("k", [D.batch, D.seq, D.kvHeads, D.headDim]),
            ("v", [D.batch, D.seq, D.kvHeads, D.headDim]), ("attn", [D.batch, D.seq, D.dim]), ("h", [D.batch, D.seq, D.dim]),
            ("gate", [D.batch, D.seq, D.hidden]), ("up", [D.batch, D.seq, D.hidden])]
}

/// SwiGLU feed-forward: `W2 (silu(W1 x) ⊙ W3 x)`.
func feedForward(_ b: GraphBuilder, _ x: Tensor, _ p: LlamaLayer, keep: Keep? = nil) -> Tensor {
    let keep = keep ?? { $1 }
    return b.scope("ffn") {
        let gate = b.scope("gate_up") { b.silu(keep("gate", linear(x, p.w1))) * keep("up", linear(x, p.w3)) }
        return linear(gate, p.w2)
    }
}

/// How tokens are placed: RoPE tables (`[T, half]`, or `[B, T, half]` for per-row positions)
/// and an optional extra 1/0 attention mask `[B, 1, 1, T, T]` on top of the causal one.
public struct TokenLayout {
    public var cos: Tensor
    public var sin: Tensor
    public var allowed: Tensor?
}

/// Multi-head / grouped-query self-attention with RoPE, optionally through a KV cache.
func selfAttention(_ b: GraphBuilder, _ x: Tensor, _ p: LlamaLayer, layout: TokenLayout, cache: LayerCache?, keep: Keep? = nil) -> Tensor {
    let (cos, sin) = (layout.cos, layout.sin)
    let keep = keep ?? { $1 }
    typealias D = LlamaDims
    return b.scope("attention") {
        let (bs, t) = (x.shape[0], x.shape[1])
        let q = keep("q", b.rope(linear(x, p.wq).reshape([bs, t, D.heads, D.headDim]), cos: cos, sin: sin))
        var k = keep("k", b.rope(linear(x, p.wk).reshape([bs, t, D.kvHeads, D.headDim]), cos: cos, sin: sin))
        var v = keep("v", linear(x, p.wv).reshape([bs, t, D.kvHeads, D.headDim]))
        var start: Dim = 0
        if let cache {
            // Write this call's keys/values at positions P..<P+T, then attend over 0..<S.
            let kc = b.writeSlice(cache.k, k, axis: 1, start: D.start)
            let vc = b.writeSlice(cache.v, v, axis: 1, start: D.start)
            k = kc.slice(axis: 1, start: 0, length: D.span)
            v = vc.slice(axis: 1, start: 0, length: D.span)
            start = D.start
        }
        let out = keep("attn", b.causalAttention(q: q, k: k, v: v, kvHeads: D.kvHeads, rep: D.rep, start: start, allowed: layout.allowed))
        return linear(out, p.wo)
    }
}

/// One pre-norm decoder block: `h = x + attn(norm(x)); out = h + ffn(norm(h))`.
/// `keep` marks the activations a training graph keeps for the backward pass.
func block(_ b: GraphBuilder, _ x: Tensor, _ p: LlamaLayer, eps: Tensor, layout: TokenLayout, cache: LayerCache?, keep: Keep? = nil) -> Tensor {
    let h = (keep ?? { $1 })("h", x + selfAttention(b, b.rmsNorm(x, p.attnNorm, eps: eps), p, layout: layout, cache: cache, keep: keep))
    return h + feedForward(b, b.rmsNorm(h, p.ffnNorm, eps: eps), p, keep: keep)
}

/// Builders for the LLaMA programs.
public enum LlamaPrograms {
    /// Which KV-cache behaviour a program has.
    public enum Mode: Sendable { case forward, prefill, decode }

    /// `forward`: logits `[B, T, V]` for an id matrix `[B, T]` (positions 0..<T).
    /// `prefill`: the same through a KV cache at positions `P ..< P+T` (S = P + T).
    /// `decode`: prefill with T = 1.
    public static func build(_ mode: Mode) throws -> Program {
        typealias D = LlamaDims
        let name = switch mode { case .forward: "forward"; case .prefill: "prefill"; case .decode: "decode" }
        let b = GraphBuilder(name)
        let t: Dim = mode == .decode ? 1 : D.seq
        let ids = b.input("ids", [D.batch, t], .i32)
        let eps = b.input("norm_eps", [])
        let theta = b.input("rope_theta", [])
        let embed = b.param("embed", [D.vocab, D.dim])
        let finalNorm = b.param("final_norm", [D.dim])
        let lmHead = b.param("lm_head", [D.vocab, D.dim])
        let start: Dim = mode == .forward ? 0 : D.start
        let (cos, sin) = b.ropeTables(seq: t, half: D.half, start: start, theta: theta)
        let x0 = b.scope("embed") { b.gather(embed, ids) }
        let x = b.repeated("layer", count: D.layers, carry: [x0]) { carry in
            let p = LlamaLayer(b)
            var cache: LayerCache?
            if mode != .forward {
                let shape: Shape = [D.layers, D.batch, D.cacheLen, D.kvHeads, D.headDim]
                cache = LayerCache(k: b.input("k_cache", shape, perLayer: true, mutable: true),
                                   v: b.input("v_cache", shape, perLayer: true, mutable: true))
            }
            return [block(b, carry[0], p, eps: eps, layout: TokenLayout(cos: cos, sin: sin), cache: cache)]
        }[0]
        let logits = b.scope("lm_head") { linear(b.rmsNorm(x, finalNorm, eps: eps), lmHead) }
        b.output("logits", logits)
        return try b.build()
    }

    /// Every program of the LLaMA family, in emission order.
    public static func all() throws -> [Program] {
        try [build(.forward), build(.prefill), build(.decode)]
    }
}

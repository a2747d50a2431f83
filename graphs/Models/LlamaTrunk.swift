import TensorGraph

/// The LLaMA trunk every program runs: token embedding → `L` decoder layers → final RMSNorm.
///
/// The layers are one repeated stage (the emitted C's `for (l = 0; l < L; l++)` loop) whose
/// carried value is the residual stream `[B, T, D]`. Training runs the same stage saving what
/// its backward stage (`layersBackward`, the reversed loop) reads back.
struct LlamaTrunk {
    /// `embed` `[V, D]`.
    let embedding: Embedding
    /// `final_norm` `[D]`; its `eps` is the scalar input `norm_eps` every norm shares.
    let norm: RMSNorm
    /// Whether the layers' projections carry LoRA adapters (`LoRALinear`); their backward
    /// stage then differentiates only with respect to the adapters.
    let lora: Bool
    /// Whether the adapters read their input through dropout (`LoRALinear`; training only).
    let dropout: Bool
    /// Whether every layer attends over a trained prefix first (`PrefixKV`); the backward
    /// stage then differentiates only with respect to `prefix_kv`.
    let prefix: Bool
    /// The layers' projections' weight type (`WeightQuant`); nil for f32.
    let quant: WeightQuant?

    /// Declares `norm_eps`, `embed` and `final_norm`.
    init(_ b: GraphBuilder, lora: Bool = false, dropout: Bool = false, prefix: Bool = false, quant: WeightQuant? = nil) {
        let eps = b.input(LlamaDims.Constant.normEps.rawValue, [])
        embedding = Embedding(b)
        norm = RMSNorm(b, "final_norm", eps: eps)
        self.lora = lora
        self.dropout = lora && dropout
        self.prefix = prefix
        self.quant = quant
    }

    /// Whether only adapters (LoRA's or the prefix) train, the base model being frozen.
    var adapted: Bool { lora || prefix }

    /// `ids [B, T]` (int32) → the normalized hidden states `[B, T, D]`, or `[NS, D]` for the
    /// rows listed in `scored`. `cached`: attend through the per-layer KV cache (prefill, decode).
    func callAsFunction(_ ids: Tensor, layout: TokenLayout, cached: Bool = false, scored: Tensor? = nil) -> Tensor {
        finalNorm(layers(embedding(ids), layout: layout, cached: cached), rows: scored)
    }

    /// The decoder layers: `x [B, T, D]` → `[B, T, D]`. `keep` (training) also receives each
    /// layer's input as `x`, saved for the backward stage.
    func layers(_ x0: Tensor, layout: TokenLayout, cached: Bool = false, keep: KeptActivations = .none) -> Tensor {
        let b = x0.builder
        return b.repeated("layer", count: LlamaDims.layers, carry: [x0]) { carry in
            // Saving the input records a write into `saved_x`; the layer goes on from the carry
            // (the compiler keeps the carry in that slot).
            _ = keep("x", carry[0])
            let layer = DecoderLayer(b, eps: norm.eps, lora: lora, dropout: dropout, prefix: prefix, quant: quant)
            let cache = cached ? KVCache(b) : nil
            return [layer(carry[0], layout: layout, cache: cache, keep: keep)]
        }[0]
    }

    /// The final norm of `x [B, T, D]`, or of the rows `scored` (`[NS]` flat indices `b·T + t`)
    /// gathered first so that only they reach the vocabulary: `[NS, D]`. It is filed under the
    /// `lm_head` scope with the projection that follows it (kernel names, profiles).
    func finalNorm(_ x: Tensor, rows scored: Tensor? = nil) -> Tensor {
        typealias D = LlamaDims
        let b = x.builder
        return b.scope("lm_head") {
            guard let scored else { return norm(x) }
            return norm(b.gather(x.reshape([D.batch * D.seq, D.dim]), scored))
        }
    }

    /// Back through the layers, last first: `dy` is the loss's gradient `[B, T, D]` at the
    /// last layer's output. Each layer is rebuilt from its saved input with its kept
    /// activations read back, its parameters' gradients are added into their `grad_*`
    /// buffers (`[L, …]`), and the result is the gradient at the embedding's output. With
    /// `lora` or `prefix` only the adapters (or `prefix_kv`) are differentiated: the frozen
    /// weights get no gradient buffers and no weight-gradient products.
    func layersBackward(_ dy: Tensor, layout: TokenLayout) throws -> Tensor {
        let b = dy.builder
        return try b.repeated("layer_backward", count: LlamaDims.layers, reversed: true, carry: [dy]) { dy in
            let (x, keep) = KeptActivations.restoring(b)
            let layer = DecoderLayer(b, eps: norm.eps, lora: lora, dropout: dropout, prefix: prefix)
            let y = layer(x, layout: layout, keep: keep)
            let trained = adapted ? layer.adapterParameters : layer.parameters
            let g = try b.gradients(of: y, seed: dy[0], wrt: [x] + trained)
            for (param, grad) in zip(trained, g.dropFirst()) {
                b.accumulate(into: param.gradientBuffer, grad)
            }
            return [g[0]]
        }[0]
    }
}

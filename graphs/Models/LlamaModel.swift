import TensorGraph

/// The LLaMA causal language model: the trunk and the vocabulary projection `lm_head`
/// (`[V, D]`; for a tied model the runtime passes the embedding buffer as `lm_head`).
struct LlamaModel {
    let trunk: LlamaTrunk
    let lmHead: Linear

    /// Declares `norm_eps`, `embed`, `final_norm` and `lm_head`; with `lora`, the layers'
    /// projections carry LoRA adapters (declared inside the layer loop), read through dropout
    /// with `dropout` (training programs only); with `prefix`, every layer attends over the
    /// trained `prefix_kv` first. With `quant`, the layers' projections hold that type and
    /// `lm_head` is `q8_0`.
    init(_ b: GraphBuilder, lora: Bool = false, dropout: Bool = false, prefix: Bool = false, quant: WeightQuant? = nil) {
        trunk = LlamaTrunk(b, lora: lora, dropout: dropout, prefix: prefix, quant: quant)
        lmHead = Linear(b, "lm_head", out: LlamaDims.vocab, in: LlamaDims.dim, quant: quant.map { _ in .q8_0 })
    }

    /// `ids [B, T]` (int32) → logits `[B, T, V]`, or `[NS, V]` for the rows listed in `scored`
    /// (flat indices `b·T + t`). `cached`: through the per-layer KV cache.
    func callAsFunction(_ ids: Tensor, layout: TokenLayout, cached: Bool = false, scored: Tensor? = nil) -> Tensor {
        head(trunk(ids, layout: layout, cached: cached, scored: scored))
    }

    /// Logits of normalized hidden states: `[..., D]` → `[..., V]`.
    func head(_ h: Tensor) -> Tensor {
        h.builder.scope("lm_head") { lmHead(h) }
    }

    /// A training step: the trunk runs saving each layer's input and kept activations, `loss`
    /// turns the logits of the scored rows (`[NS, V]`; `scored` holds flat indices `b·T + t`)
    /// into the scalar loss, and its gradient is back-propagated and *added* into the `grad_*`
    /// buffers (so micro-batches accumulate), each layer rebuilt from what it saved. With LoRA
    /// (`trunk.lora`) or a prefix (`trunk.prefix`) only the adapters or `prefix_kv` get
    /// gradients: the embedding, the norms and `lm_head` are frozen, so the head's backward is
    /// the gradient at the hidden states alone.
    func trainingStep(_ ids: Tensor, layout: TokenLayout, scored: Tensor, loss: (Tensor) throws -> Tensor) throws {
        let b = ids.builder
        let x = trunk.layers(trunk.embedding(ids), layout: layout, keep: .saving)
        let logits = head(trunk.finalNorm(x, rows: scored))
        let value = try b.scope("lm_head") { try loss(logits) }
        if trunk.adapted {
            let g = try b.scope("lm_head_backward") { try b.gradients(of: value, wrt: [x]) }
            _ = try trunk.layersBackward(g[0], layout: layout)
            return
        }
        let g = try b.scope("lm_head_backward") { try b.gradients(of: value, wrt: [x, trunk.norm.weight, lmHead.weight]) }
        b.accumulate(into: trunk.norm.weight.gradientBuffer, g[1])
        b.accumulate(into: lmHead.weight.gradientBuffer, g[2])
        trunk.embedding.accumulateGradient(try trunk.layersBackward(g[0], layout: layout), ids: ids)
    }
}

extension Tensor {
    /// The buffer a parameter's gradient is added into: the mutable input `grad_<name>` with
    /// the parameter's declared shape (`[L, …]` and sliced per layer for a per-layer one).
    var gradientBuffer: Tensor {
        guard let d = declaration else { preconditionFailure("gradientBuffer of a value that is not a parameter") }
        return builder.input(LlamaTrainingPrograms.gradName(d.name), d.shape, perLayer: d.perLayer, mutable: true)
    }
}

import TensorGraph

/// The LLaMA causal language model: the trunk and the vocabulary projection `lm_head`
/// (`[V, D]`; for a tied model the runtime passes the embedding buffer as `lm_head`).
struct LlamaModel {
    let trunk: LlamaTrunk
    let lmHead: Linear

    /// Declares `norm_eps`, `embed`, `final_norm` and `lm_head`; with `lora`, the layers'
    /// projections carry LoRA adapters (declared inside the layer loop); with `prefix`, every
    /// layer attends over the trained `prefix_kv` first.
    init(_ b: GraphBuilder, lora: Bool = false, prefix: Bool = false) {
        trunk = LlamaTrunk(b, lora: lora, prefix: prefix)
        lmHead = Linear(b, "lm_head", out: LlamaDims.vocab, in: LlamaDims.dim)
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

    /// A training step with all scored rows' logits at once (DPO, whose loss is not a sum over
    /// rows): the trunk runs saving each layer's input and kept activations, `loss`
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

    /// A training step over chunks of scored rows. The trunk runs saving each layer's input
    /// and kept activations; then a repeated stage `lm_chunk` runs `NC` times: it reads the
    /// next `CR` scored rows (`scored` `[NC, CR]`, flat indices `b·T + t`, sliced per chunk),
    /// projects them onto the vocabulary (`[CR, V]` logits: the only logits ever in memory),
    /// and `chunk` turns them into the chunk's scalar loss (first) and `statistics` more
    /// scalars; the loss's gradient is taken at once, `lm_head`'s and `final_norm`'s added into
    /// their `grad_*` buffers and the hidden states' summed over chunks. Then the summed
    /// gradient goes back through the layers, each rebuilt from what it saved. With LoRA
    /// (`trunk.lora`) or a prefix (`trunk.prefix`) only the adapters or `prefix_kv` get
    /// gradients: the head's backward is the gradient at the hidden states alone.
    /// Returns the loss and statistics summed over the chunks.
    func trainingStep(_ ids: Tensor, layout: TokenLayout, statistics: Int,
                      chunk: (Tensor) throws -> [Tensor]) throws -> [Tensor] {
        typealias D = LlamaDims
        let b = ids.builder
        let x = trunk.layers(trunk.embedding(ids), layout: layout, keep: .saving)
        let zero = b.constant(0)
        // Carries: the hidden states' gradient `[B, T, D]`, the loss and each statistic (scalars).
        let scalarZero = b.broadcast(zero, to: [1]).reshape([])
        let start = [b.broadcast(zero, to: x.shape)] + Array(repeating: scalarZero, count: 1 + statistics)
        let sums = try b.repeated("lm_chunk", count: D.chunks, carry: start) { c in
            let scored = b.input("scored", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let logits = head(trunk.finalNorm(x, rows: scored))
            let values = try b.scope("lm_head") { try chunk(logits) }
            let wrt = trunk.adapted ? [x] : [x, trunk.norm.weight, lmHead.weight]
            let g = try b.scope("lm_head_backward") { try b.gradients(of: values[0], wrt: wrt) }
            if !trunk.adapted {
                b.accumulate(into: trunk.norm.weight.gradientBuffer, g[1])
                b.accumulate(into: lmHead.weight.gradientBuffer, g[2])
            }
            return [c[0] + g[0]] + zip(c.dropFirst(), values).map { $0 + $1 }
        }
        let dx = sums[0]
        if trunk.adapted {
            _ = try trunk.layersBackward(dx, layout: layout)
        } else {
            trunk.embedding.accumulateGradient(try trunk.layersBackward(dx, layout: layout), ids: ids)
        }
        return Array(sums.dropFirst())
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

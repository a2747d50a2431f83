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
    /// `lm_head` is `head` (`q8_0` unless told).
    init(_ b: GraphBuilder, lora: Bool = false, dropout: Bool = false, prefix: Bool = false, quant: WeightQuant? = nil,
         head: WeightQuant = .q8_0) {
        trunk = LlamaTrunk(b, lora: lora, dropout: dropout, prefix: prefix, quant: quant)
        lmHead = Linear(b, "lm_head", out: LlamaDims.vocab, in: LlamaDims.dim, quant: quant.map { _ in head })
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
        try backPropagate(sums[0], ids: ids, layout: layout)
        return Array(sums.dropFirst())
    }

    /// Sums over the chunks of scored rows (`scored` `[NC, CR]`, flat indices `b·T + t` into
    /// `x [B, T, D]`) of the `count` values of `shape` that `chunk` makes from a chunk's
    /// logits (`[CR, V]`): a repeated stage `name` whose carries are the running sums.
    func chunkSums(_ x: Tensor, name: String = "lm_chunk", shape: Shape, count: Int,
                   chunk: (Tensor) throws -> [Tensor]) rethrows -> [Tensor] {
        typealias D = LlamaDims
        let b = x.builder
        let zero = b.broadcast(b.constant(0), to: shape)
        return try b.repeated(name, count: D.chunks, carry: Array(repeating: zero, count: count)) { c in
            let scored = b.input("scored", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let values = try b.scope("lm_head") { try chunk(head(trunk.finalNorm(x, rows: scored))) }
            return zip(c, values).map { $0 + $1 }
        }
    }

    /// A training step whose loss is a function of sums over the scored rows (DPO's per-pair
    /// log-probs) rather than a sum of per-row terms. Two passes over the chunks: `lm_chunk`
    /// sums the `sums` values `chunk` makes of each chunk's logits (each `[B]`); `loss` turns the
    /// sums into the loss, whose gradient at the first `differentiable` sums is `g_k`; then
    /// `lm_chunk_backward` recomputes each chunk's logits and back-propagates Σ_k g_k · value_k
    /// (the chunk's share of the loss, to first order), adding the head's weight gradients into
    /// their buffers and summing the hidden states' over chunks; then back through the layers.
    /// Only `[CR, V]` logits are ever in memory, at the price of a second head projection.
    /// Returns the sums.
    func pairedTrainingStep(_ ids: Tensor, layout: TokenLayout, sums: Int, differentiable: Int,
                            chunk: (Tensor) throws -> [Tensor], loss: ([Tensor]) throws -> Tensor) throws -> [Tensor] {
        typealias D = LlamaDims
        let b = ids.builder
        let x = trunk.layers(trunk.embedding(ids), layout: layout, keep: .saving)
        let s = try chunkSums(x, shape: [D.batch], count: sums, chunk: chunk)
        let value = try b.scope("lm_head") { try loss(s) }
        let gs = try b.scope("lm_head_backward") { try b.gradients(of: value, wrt: Array(s.prefix(differentiable))) }
        let dx0 = b.broadcast(b.constant(0), to: x.shape)
        let dx = try b.repeated("lm_chunk_backward", count: D.chunks, carry: [dx0]) { c in
            let scored = b.input("scored", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let logits = head(trunk.finalNorm(x, rows: scored))
            let values = try b.scope("lm_head") { try chunk(logits) }
            let share = zip(values, gs).map { v, g in (v * b.stopGradient(g)).sum(axis: 0, keepDims: false) }
            let objective = share.dropFirst().reduce(share[0], +)
            let wrt = trunk.adapted ? [x] : [x, trunk.norm.weight, lmHead.weight]
            let g = try b.scope("lm_head_backward") { try b.gradients(of: objective, wrt: wrt) }
            if !trunk.adapted {
                b.accumulate(into: trunk.norm.weight.gradientBuffer, g[1])
                b.accumulate(into: lmHead.weight.gradientBuffer, g[2])
            }
            return [c[0] + g[0]]
        }[0]
        try backPropagate(dx, ids: ids, layout: layout)
        return s
    }

    /// `dx`, the loss's gradient at the last layer's output, back through the layers into the
    /// `grad_*` buffers (the embedding's too, unless only adapters train).
    func backPropagate(_ dx: Tensor, ids: Tensor, layout: TokenLayout) throws {
        if trunk.adapted {
            _ = try trunk.layersBackward(dx, layout: layout)
        } else {
            trunk.embedding.accumulateGradient(try trunk.layersBackward(dx, layout: layout), ids: ids)
        }
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

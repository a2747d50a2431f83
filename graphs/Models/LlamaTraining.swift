import TensorGraph

/// The training programs: `lm_step` (forward, token cross-entropy, backward into gradient
/// buffers), `eval_loss` (per-token NLL), and the optimizer programs (`OptimizerPrograms`).
public enum LlamaTrainingPrograms {
    typealias D = LlamaDims

    /// Gradient-buffer name of a parameter.
    public static func gradName(_ param: String) -> String { "grad_\(param)" }

    /// Buffer name of a kept activation (`saved_q`, …), one slice per layer.
    static func savedName(_ activation: String) -> String { "saved_\(activation)" }

    /// `lm_step`: loss = Σ weights · nll(logits, targets) over the scored positions (`[NS]`:
    /// `scored` flat indices `b·T + t`, their `targets` and `weights`; only those rows go
    /// through the vocabulary projection); gradients are ADDED into the `grad_*` buffers (so
    /// micro-batches accumulate). Each layer's input and its products are kept in `saved_*`
    /// on the way forward and read back on the way back.
    public static func lmStep() throws -> Program {
        let b = GraphBuilder("lm_step")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let scored = b.input("scored", [D.scored], .i32)
        let targets = b.input("targets", [D.scored], .i32)
        let weights = b.input("weights", [D.scored])
        let theta = b.input("rope_theta", [])
        let (cos, sin) = b.ropeTables(seq: D.seq, half: D.half, start: 0, theta: theta)
        try trainingStep(b, ids: ids, layout: TokenLayout(cos: cos, sin: sin), scored: scored) { logits in
            let loss = b.weightedSum(b.tokenNLL(logits, targets: targets), weights)
            b.output("loss", loss)
            return loss
        }
        return try b.build()
    }

    /// The shared body of every training step: embed `ids`, run the layers (saving each
    /// layer's input), compute the scalar loss from the logits with `loss`, then back-propagate
    /// into the `grad_*` buffers, recomputing each layer from its saved input.
    /// With `scored` (`[NS]` flat row indices), only those rows' hidden states go through the
    /// final norm and the vocabulary projection, and `loss` gets `[NS, V]` logits.
    static func trainingStep(_ b: GraphBuilder, ids: Tensor, layout: TokenLayout, scored: Tensor? = nil, loss: (Tensor) throws -> Tensor) throws {
        let eps = b.input("norm_eps", [])
        let embed = b.param("embed", [D.vocab, D.dim])
        let finalNorm = b.param("final_norm", [D.dim])
        let lmHead = b.param("lm_head", [D.vocab, D.dim])
        let savedShape: Shape = [D.layers, D.batch, D.seq, D.dim]
        let x0 = b.scope("embed") { b.gather(embed, ids) }
        let xL = b.repeated("layer", count: D.layers, carry: [x0]) { carry in
            let saved = b.input("saved_x", savedShape, perLayer: true, mutable: true)
            b.writeSlice(saved, carry[0], axis: 0, start: 0)
            // Kept activations are written into their per-layer buffers and read from there.
            let keep: Keep = { name, v in
                b.writeSlice(b.input(savedName(name), [D.layers] + v.shape, perLayer: true, mutable: true), v, axis: 0, start: 0)
            }
            return [block(b, carry[0], LlamaLayer(b), eps: eps, layout: layout, cache: nil, keep: keep)]
        }[0]
        let value = try b.scope("lm_head") {
            try loss(scored.map { scoredLogits(b, xL, scored: $0, finalNorm: finalNorm, lmHead: lmHead, eps: eps) }
                     ?? linear(b.rmsNorm(xL, finalNorm, eps: eps), lmHead))
        }
        let head = try b.scope("lm_head_backward") { try b.gradients(of: value, wrt: [xL, finalNorm, lmHead]) }
        b.accumulate(into: b.input(gradName("final_norm"), [D.dim], mutable: true), head[1])
        b.accumulate(into: b.input(gradName("lm_head"), [D.vocab, D.dim], mutable: true), head[2])
        let dx0 = try b.repeated("layer_backward", count: D.layers, reversed: true, carry: [head[0]]) { dy in
            let x = b.input("saved_x", savedShape, perLayer: true, mutable: true)
            // The kept activations are read back, not recomputed (declared first: program order).
            var kept: [String: Tensor] = [:]
            for (name, shape) in keptActivations() {
                kept[name] = b.input(savedName(name), [D.layers] + shape, perLayer: true, mutable: true)
            }
            let keep: Keep = { name, v in kept[name].map { b.reuse(v, saved: $0) } ?? v }
            let p = LlamaLayer(b)
            let y = block(b, x, p, eps: eps, layout: layout, cache: nil, keep: keep)
            let g = try b.gradients(of: y, seed: dy[0], wrt: [x] + p.all)
            for (name, (param, grad)) in zip(LlamaLayer.names, zip(p.all, g.dropFirst())) {
                let shape = [D.layers] + param.shape
                b.accumulate(into: b.input(gradName(name), shape, perLayer: true, mutable: true), grad)
            }
            return [g[0]]
        }[0]
        b.scope("embed_backward") {
            b.accumulate(into: b.input(gradName("embed"), [D.vocab, D.dim], mutable: true),
                         b.scatterAdd(dx0, ids, rows: D.vocab))
        }
    }

    /// `eval_loss`: the per-position NLL `[B, T]` of `targets` (no gradients).
    public static func evalLoss() throws -> Program {
        let b = GraphBuilder("eval_loss")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let targets = b.input("targets", [D.batch, D.seq], .i32)
        let eps = b.input("norm_eps", [])
        let theta = b.input("rope_theta", [])
        let embed = b.param("embed", [D.vocab, D.dim])
        let finalNorm = b.param("final_norm", [D.dim])
        let lmHead = b.param("lm_head", [D.vocab, D.dim])
        let (cos, sin) = b.ropeTables(seq: D.seq, half: D.half, start: 0, theta: theta)
        let x0 = b.scope("embed") { b.gather(embed, ids) }
        let xL = b.repeated("layer", count: D.layers, carry: [x0]) { carry in
            [block(b, carry[0], LlamaLayer(b), eps: eps, layout: TokenLayout(cos: cos, sin: sin), cache: nil)]
        }[0]
        let nll = b.scope("lm_head") { b.tokenNLL(linear(b.rmsNorm(xL, finalNorm, eps: eps), lmHead), targets: targets) }
        b.output("nll", nll)
        return try b.build()
    }

    /// Every training program, in emission order.
    public static func all() throws -> [Program] {
        try [lmStep(), evalLoss()] + OptimizerPrograms.all()
    }
}

/// The logits `[NS, V]` of the scored rows of `x` (`[B, T, D]`; `scored` holds flat row
/// indices): the rows are gathered before the final norm, so the vocabulary projection (and
/// its gradient) runs on them alone.
func scoredLogits(_ b: GraphBuilder, _ x: Tensor, scored: Tensor, finalNorm: Tensor, lmHead: Tensor, eps: Tensor) -> Tensor {
    typealias D = LlamaDims
    let rows = b.gather(x.reshape([D.batch * D.seq, D.dim]), scored)
    return b.rmsNorm(rows, finalNorm, eps: eps).matmul(lmHead, transB: true)
}

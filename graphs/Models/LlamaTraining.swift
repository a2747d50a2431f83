import TensorGraph

/// The training programs: `lm_step` (forward, token cross-entropy, backward into gradient
/// buffers), `eval_loss` (per-token NLL), and the optimizer programs over flat parameters.
public enum LlamaTrainingPrograms {
    typealias D = LlamaDims

    /// Gradient-buffer name of a parameter.
    public static func gradName(_ param: String) -> String { "grad_\(param)" }

    /// `lm_step`: loss = Σ weights · nll(logits, targets) over the scored positions (`[NS]`:
    /// `scored` flat indices `b·T + t`, their `targets` and `weights`; only those rows go
    /// through the vocabulary projection); gradients are ADDED into the `grad_*` buffers (so
    /// micro-batches accumulate). Each layer's input and its products are kept in `saved_*`
    /// on the way forward and read back on the way back (`LlamaModel.trainingStep`).
    public static func lmStep() throws -> Program {
        let b = GraphBuilder("lm_step")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let scored = b.input("scored", [D.scored], .i32)
        let targets = b.input("targets", [D.scored], .i32)
        let weights = b.input("weights", [D.scored])
        let layout = TokenLayout.sequential(b, seq: D.seq, start: 0)
        try LlamaModel(b).trainingStep(ids, layout: layout, scored: scored) { logits in
            let loss = b.weightedSum(b.tokenNLL(logits, targets: targets), weights)
            b.output("loss", loss)
            return loss
        }
        return try b.build()
    }

    /// `eval_loss`: the per-position NLL `[B, T]` of `targets` (no gradients).
    public static func evalLoss() throws -> Program {
        let b = GraphBuilder("eval_loss")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let targets = b.input("targets", [D.batch, D.seq], .i32)
        let model = LlamaModel(b)
        let logits = model(ids, layout: .sequential(b, seq: D.seq, start: 0))
        b.output("nll", b.scope("lm_head") { b.tokenNLL(logits, targets: targets) })
        return try b.build()
    }

    /// `grad_sumsq`: Σ g² of one flat gradient (for global-norm clipping).
    public static func gradSumSquares() throws -> Program {
        let b = GraphBuilder("grad_sumsq")
        let g = b.input("grad", [.sym("N")])
        b.output("sumsq", b.scope("grad_norm") { (g * g).sum(axis: 0, keepDims: false) })
        return try b.build()
    }

    /// `adamw`: one AdamW step (PyTorch's formula, decoupled weight decay) on a flat parameter:
    ///   g ← clip·g;  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
    ///   p ← p − lr·wd·p − lr·(m / bc₁) / (sqrt(v / bc₂) + ε),  bcᵢ = 1 − βᵢᵗ
    public static func adamw() throws -> Program {
        let b = GraphBuilder("adamw")
        let n: Shape = [.sym("N")]
        let p = b.input("param", n, mutable: true)
        let g = b.input("grad", n)
        let m = b.input("exp_avg", n, mutable: true)
        let v = b.input("exp_avg_sq", n, mutable: true)
        let s = ["lr", "beta1", "beta2", "eps", "weight_decay", "bias_correction1", "bias_correction2", "clip_scale"]
            .map { b.input($0, []) }
        let (lr, b1, b2, eps, wd, bc1, bc2, clip) = (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
        b.scope("adamw") {
            let gc = g * clip
            let m1 = b1 * m + (1.0 - b1) * gc
            let v1 = b2 * v + (1.0 - b2) * gc * gc
            let update = (m1 / bc1) / ((v1 / bc2).sqrt() + eps)
            let p1 = p - lr * wd * p - lr * update
            b.writeSlice(m, m1, axis: 0, start: 0)
            b.writeSlice(v, v1, axis: 0, start: 0)
            b.writeSlice(p, p1, axis: 0, start: 0)
        }
        return try b.build()
    }

    /// Every training program, in emission order.
    public static func all() throws -> [Program] {
        try [lmStep(), evalLoss(), gradSumSquares(), adamw()]
    }
}

import TensorGraph

/// The training programs: `lm_step` (forward, token cross-entropy, backward into gradient
/// buffers), `eval_loss` (per-token NLL), and the optimizer programs (`OptimizerPrograms`).
public enum LlamaTrainingPrograms {
    typealias D = LlamaDims

    /// Gradient-buffer name of a parameter.
    public static func gradName(_ param: String) -> String { "grad_\(param)" }

    /// `lm_step`: loss = Σ weights · nll(logits, targets) over the scored positions, given in
    /// `NC` chunks of `CR` rows (`[NC, CR]` each: `scored` flat indices `b·T + t`, their
    /// `targets` and `weights`; padding rows have weight 0). Only those rows go through the
    /// vocabulary projection, one chunk at a time (`LlamaModel.trainingStep`), and with the same weights the mean entropy
    /// (`entropy`) and arg-max accuracy (`accuracy`) of those positions; gradients are ADDED into the `grad_*` buffers (so
    /// micro-batches accumulate). Each layer's input and its products are kept in `saved_*`
    /// on the way forward and read back on the way back (`LlamaModel.trainingStep`).
    public static func lmStep(lora: Bool = false, dropout: Bool = false, prefix: Bool = false) throws -> Program {
        let b = GraphBuilder("lm_step" + suffix(lora: lora, prefix: prefix) + (lora && dropout ? "_dropout" : ""))
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let layout = TokenLayout.sequential(b, seq: D.seq, start: prefix ? Prefix.length : 0)
        let sums = try LlamaModel(b, lora: lora, dropout: dropout, prefix: prefix).trainingStep(ids, layout: layout, statistics: 2) { logits in
            let targets = b.input("targets", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let weights = b.input("weights", [D.chunks, D.chunkRows], perLayer: true)
            let loss = b.weightedSum(b.tokenNLL(logits, targets: targets), weights)
            // TRL's SFT metrics, weighted like the loss (step means over the scored tokens); no gradient.
            let stats = tokenStats(logits, targets: targets)
            return [loss, b.weightedSum(stats.entropy, weights), b.weightedSum(stats.correct, weights)]
        }
        b.output("loss", sums[0])
        b.output("entropy", sums[1])
        b.output("accuracy", sums[2])
        return try b.build()
    }

    /// Per scored position: the entropy `−Σ p·log p` of `softmax(logits)` and whether the target
    /// is the arg max (1/0; ties count as right), `[NS, V]` → `[NS]` each (TRL's `entropy` and
    /// `mean_token_accuracy`). The loss is differentiated alone, so these take no gradient; the
    /// row max and sum of exponentials are the cross-entropy's own (one kernel each, shared).
    static func tokenStats(_ logits: Tensor, targets: Tensor) -> (entropy: Tensor, correct: Tensor) {
        let b = logits.builder
        return b.scope("token_stats") {
            let x = logits
            let s = x.shape
            let logp = b.logSoftmax(x)
            let entropy = -(logp.exp() * logp).sum(axis: -1, keepDims: false)
            let picked = b.iota(s, axis: s.count - 1).eq(targets.cast(.f32).reshape(targets.shape + [1]))
            let target = (x * picked).sum(axis: -1, keepDims: false)
            return (entropy, x.max(axis: -1, keepDims: false).le(target))
        }
    }

    /// `lm_step_lora`: `lm_step` with a LoRA adapter on every projection of every layer
    /// (`LoRALinear`: `lora_a_<w>` `[L, R, in]`, `lora_b_<w>` `[L, out, R]`, scalar
    /// `lora_scale_<w>`), whose gradients are added into `grad_lora_a_<w>` / `grad_lora_b_<w>`
    /// only: the base weights are frozen (no gradient buffers, no weight-gradient products).
    public static func lmStepLoRA() throws -> Program { try lmStep(lora: true) }

    /// `lm_step_lora_dropout`: `lm_step_lora` whose adapters read their input through dropout
    /// (PEFT's `lora_dropout`): the rate `lora_dropout` (scalar) and per module the int32 keys
    /// `lora_dropout_key_<w>` `[L]` that seed each layer's mask (the backward stage redraws it).
    public static func lmStepLoRADropout() throws -> Program { try lmStep(lora: true, dropout: true) }

    /// `lm_step_prefix`: `lm_step` with a trained prefix ahead of every row in every layer
    /// (`PrefixKV`: `prefix_kv` `[L, 2, P, KVH, HD]`; tokens at positions `P ..< P+T`, keys over
    /// `S = P + T`), whose gradient is added into `grad_prefix_kv` only (the model is frozen).
    public static func lmStepPrefix() throws -> Program { try lmStep(prefix: true) }

    /// The program-name suffix of an adapted model: `_lora`, `_prefix` or none.
    static func suffix(lora: Bool, prefix: Bool) -> String { lora ? "_lora" : prefix ? "_prefix" : "" }

    /// `eval_loss`: the NLL of the scored rows' targets (no gradients), `CR` rows at a time
    /// like `lm_step`, so only `[CR, V]` logits are ever in memory: `scored` `[NC, CR]` (flat
    /// indices `b·T + t`) and `targets` `[NC, CR]` in, the rows' NLL written into the caller's
    /// `nll` `[NC, CR]` by a repeated stage `lm_chunk`.
    public static func evalLoss(lora: Bool = false, prefix: Bool = false) throws -> Program {
        let b = GraphBuilder("eval_loss" + suffix(lora: lora, prefix: prefix))
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let model = LlamaModel(b, lora: lora, prefix: prefix)
        let layout = TokenLayout.sequential(b, seq: D.seq, start: prefix ? Prefix.length : 0)
        let x = model.trunk.layers(model.trunk.embedding(ids), layout: layout)
        _ = b.repeated("lm_chunk", count: D.chunks, carry: []) { _ in
            let scored = b.input("scored", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let targets = b.input("targets", [D.chunks, D.chunkRows], .i32, perLayer: true)
            let nll = b.input("nll", [D.chunks, D.chunkRows], perLayer: true, mutable: true)
            let logits = model.head(model.trunk.finalNorm(x, rows: scored))
            _ = b.writeSlice(nll, b.scope("lm_head") { b.tokenNLL(logits, targets: targets) }, axis: 0, start: 0)
            return []
        }
        return try b.build()
    }

    /// `eval_loss_lora`: `eval_loss` of the model with its LoRA adapters (`lm_step_lora`'s).
    public static func evalLossLoRA() throws -> Program { try evalLoss(lora: true) }

    /// `eval_loss_prefix`: `eval_loss` of the model with its trained prefix (`lm_step_prefix`'s).
    public static func evalLossPrefix() throws -> Program { try evalLoss(prefix: true) }

    /// Every training program, in emission order.
    public static func all() throws -> [Program] {
        // (`*_bf16`: the same steps with bf16 products, `bf16: true`)
        try [lmStep(), lmStep().lowered(precision: .bf16), lmStepLoRA(), lmStepLoRA().lowered(precision: .bf16),
             lmStepLoRADropout(), lmStepLoRADropout().lowered(precision: .bf16), evalLoss(), evalLossLoRA(),
             lmStepPrefix(), lmStepPrefix().lowered(precision: .bf16), evalLossPrefix()]
            + PrefixEncoderPrograms.all() + OptimizerPrograms.all()
    }
}

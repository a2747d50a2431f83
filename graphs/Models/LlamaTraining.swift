import TensorGraph

/// The training programs: `lm_step` (forward, token cross-entropy, backward into gradient
/// buffers), `eval_loss` (per-token NLL), and the optimizer programs (`OptimizerPrograms`).
public enum LlamaTrainingPrograms {
    typealias D = LlamaDims

    /// Gradient-buffer name of a parameter.
    public static func gradName(_ param: String) -> String { "grad_\(param)" }

    /// `lm_step`: loss = Σ weights · nll(logits, targets) over the scored positions (`[NS]`:
    /// `scored` flat indices `b·T + t`, their `targets` and `weights`; only those rows go
    /// through the vocabulary projection); gradients are ADDED into the `grad_*` buffers (so
    /// micro-batches accumulate). Each layer's input and its products are kept in `saved_*`
    /// on the way forward and read back on the way back (`LlamaModel.trainingStep`).
    public static func lmStep(lora: Bool = false, dropout: Bool = false) throws -> Program {
        let b = GraphBuilder(lora ? (dropout ? "lm_step_lora_dropout" : "lm_step_lora") : "lm_step")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let scored = b.input("scored", [D.scored], .i32)
        let targets = b.input("targets", [D.scored], .i32)
        let weights = b.input("weights", [D.scored])
        let layout = TokenLayout.sequential(b, seq: D.seq, start: 0)
        try LlamaModel(b, lora: lora, dropout: dropout).trainingStep(ids, layout: layout, scored: scored) { logits in
            let loss = b.weightedSum(b.tokenNLL(logits, targets: targets), weights)
            b.output("loss", loss)
            return loss
        }
        return try b.build()
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

    /// `eval_loss`: the per-position NLL `[B, T]` of `targets` (no gradients).
    public static func evalLoss(lora: Bool = false) throws -> Program {
        let b = GraphBuilder(lora ? "eval_loss_lora" : "eval_loss")
        let ids = b.input("ids", [D.batch, D.seq], .i32)
        let targets = b.input("targets", [D.batch, D.seq], .i32)
        let model = LlamaModel(b, lora: lora)
        let logits = model(ids, layout: .sequential(b, seq: D.seq, start: 0))
        b.output("nll", b.scope("lm_head") { b.tokenNLL(logits, targets: targets) })
        return try b.build()
    }

    /// `eval_loss_lora`: `eval_loss` of the model with its LoRA adapters (`lm_step_lora`'s).
    public static func evalLossLoRA() throws -> Program { try evalLoss(lora: true) }

    /// Every training program, in emission order.
    public static func all() throws -> [Program] {
        try [lmStep(), lmStepLoRA(), lmStepLoRADropout(), evalLoss(), evalLossLoRA()] + OptimizerPrograms.all()
    }
}

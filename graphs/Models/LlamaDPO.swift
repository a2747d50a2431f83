import TensorGraph

/// DPO programs over PaddleNLP's shared-prompt layout: one row per pair holding the prompt
/// once, then the chosen response, then the rejected response whose positions restart where
/// the chosen one started and which cannot attend to the chosen tokens.
///
/// Row inputs (`[B, T]`): `ids`; `positions` (RoPE positions, int32); `segments` (0 prompt,
/// 1 chosen, 2 rejected, 3 padding; int32). Scored positions (`[NS]`, those scored on either
/// side; only their hidden states go through the vocabulary projection): `scored` (flat index
/// `b·T + t`), `scored_pair` (b), `chosen_targets` / `rejected_targets` (the token each
/// predicts for that side, int32) and `chosen_mask` / `rejected_mask` (1 where that side scores
/// it). The last prompt position predicts the first token of both sides.
public enum LlamaDPOPrograms {
    typealias D = LlamaDims

    /// The row and scored-position inputs of a DPO program.
    struct Rows {
        var ids, scored, scoredPair, chosenTargets, rejectedTargets, chosenMask, rejectedMask: Tensor
        var layout: TokenLayout
    }

    /// Declares the row inputs and builds the layout: RoPE at `positions`, and a mask that
    /// keeps the rejected response from attending to the chosen one. With `prefix`, every
    /// position moves on by the prefix length `P` and every token also sees the `P` prefix keys.
    static func rows(_ b: GraphBuilder, prefix: Bool = false) -> Rows {
        let shape: Shape = [D.batch, D.seq]
        let ids = b.input("ids", shape, .i32)
        let positions = b.input("positions", shape, .i32)
        let segments = b.input("segments", shape, .i32)
        let theta = b.input(LlamaDims.Constant.ropeTheta.rawValue, [])
        let (cos, sin) = b.ropeTables(positions: positions, half: D.half, theta: theta, offset: prefix ? Prefix.length : 0)
        // The rejected branch (2) must not see the chosen branch (1).
        let allowed = b.scope("shared_prompt_mask") { () -> Tensor in
            let seg = segments.cast(.f32)
            let query = seg.reshape([D.batch, 1, 1, D.seq, 1]), key = seg.reshape([D.batch, 1, 1, 1, D.seq])
            let rowMask = 1.0 - key.eq(b.constant(1)) * query.eq(b.constant(2))
            guard prefix else { return rowMask }
            let seen = b.broadcast(b.constant(1), to: [D.batch, 1, 1, D.seq, Prefix.length])
            return b.concat([seen, rowMask], axis: 4, size: D.span)
        }
        let scored: Shape = [D.scored]
        return Rows(ids: ids, scored: b.input("scored", scored, .i32), scoredPair: b.input("scored_pair", scored, .i32),
                    chosenTargets: b.input("chosen_targets", scored, .i32), rejectedTargets: b.input("rejected_targets", scored, .i32),
                    chosenMask: b.input("chosen_mask", scored), rejectedMask: b.input("rejected_mask", scored),
                    layout: TokenLayout(cos: cos, sin: sin, allowed: allowed))
    }

    /// Per pair: summed log-probs of both sides, their lengths, and Σ over scored positions of
    /// the mean logit (TRL's logits/* metrics).
    /// `logits` are `[NS, V]`, one row per scored position.
    static func pairLogps(_ logits: Tensor, _ r: Rows) -> (pc: Tensor, pr: Tensor, nc: Tensor, nr: Tensor, logitsChosen: Tensor, logitsRejected: Tensor) {
        let b = logits.builder
        return b.scope("sequence_logps") {
            // Σ over each pair's scored positions of x · m.
            func rowSum(_ x: Tensor, _ m: Tensor) -> Tensor {
                b.scatterAdd((x * m).reshape([D.scored, 1]), r.scoredPair, rows: D.batch).reshape([D.batch])
            }
            let pc = -rowSum(b.tokenNLL(logits, targets: r.chosenTargets), r.chosenMask)
            let pr = -rowSum(b.tokenNLL(logits, targets: r.rejectedTargets), r.rejectedMask)
            let meanLogit = b.stopGradient(logits.mean(axis: -1, keepDims: false))
            let one = b.broadcast(b.constant(1), to: [D.scored])
            return (pc, pr, rowSum(one, r.chosenMask), rowSum(one, r.rejectedMask),
                    rowSum(meanLogit, r.chosenMask), rowSum(meanLogit, r.rejectedMask))
        }
    }

    /// `dpo_logps`: forward only (the reference model, and evaluation).
    /// Outputs `[B]`: `logps_chosen`, `logps_rejected`, `logits_chosen`, `logits_rejected`.
    /// `dpo_logps_lora` (`lora`): the same through the LoRA-adapted model (`LoRALinear`);
    /// `dpo_logps_prefix` (`prefix`): through the model with its trained prefix (`PrefixKV`).
    public static func sequenceLogps(lora: Bool = false, prefix: Bool = false) throws -> Program {
        let b = GraphBuilder("dpo_logps" + LlamaTrainingPrograms.suffix(lora: lora, prefix: prefix))
        let r = rows(b, prefix: prefix)
        let model = LlamaModel(b, lora: lora, prefix: prefix)
        let s = pairLogps(model(r.ids, layout: r.layout, scored: r.scored), r)
        b.output("logps_chosen", s.pc); b.output("logps_rejected", s.pr)
        b.output("logits_chosen", s.logitsChosen); b.output("logits_rejected", s.logitsRejected)
        return try b.build()
    }

    /// The loss family's scalar inputs, the per-pair weights and `loss_weights` (`[K]`).
    static func lossInputs(_ b: GraphBuilder) -> (DPOLossInputs, weights: Tensor) {
        func scalar(_ s: DPOScalar) -> Tensor { b.input(s.rawValue, []) }
        let s = DPOLossInputs(beta: scalar(.beta), labelSmoothing: scalar(.labelSmoothing),
                              simpoGamma: scalar(.simpoGamma), dpopLambda: scalar(.dpopLambda),
                              pairWeight: b.input("pair_weight", [D.batch]))
        return (s, b.input("loss_weights", [Dim(DPOLossType.allCases.count)]))
    }

    /// `dpo_step`: the policy's pair log-probs, every loss of the family weighted by
    /// `loss_weights` (`[K]`, K = DPOLossType.allCases.count, zeros for unused types), then
    ///   loss = pref_loss_ratio · Σ_b pair_weight_b · Σ_k w_k L_k,b + sft_loss_ratio · Σ_b pair_weight_b · sft_b
    /// and the backward pass into the `grad_*` buffers. `ref_chosen` / `ref_rejected` (`[B]`) are
    /// the reference log-probs (zeros when reference-free). Outputs the loss, each selected loss per pair
    /// (`losses` `[K, B]`; rows of unselected types hold the loss of zeros) and the policy's log-probs and logit sums.
    /// `dpo_step_lora` (`lora`): the policy is the LoRA-adapted model and only its adapters get
    /// gradients (`lm_step_lora`'s rule); its reference is the base model (`dpo_logps`).
    /// `dpo_step_lora_dropout` (`dropout`): the adapters read their input through dropout
    /// (`lm_step_lora_dropout`'s inputs).
    /// `dpo_step_prefix` (`prefix`): the policy is the model with its trained prefix and only
    /// `prefix_kv` gets a gradient; its reference is the model without it (`dpo_logps`).
    public static func dpoStep(lora: Bool = false, dropout: Bool = false, prefix: Bool = false) throws -> Program {
        let b = GraphBuilder("dpo_step" + LlamaTrainingPrograms.suffix(lora: lora, prefix: prefix) + (lora && dropout ? "_dropout" : ""))
        let r = rows(b, prefix: prefix)
        let refChosen = b.input("ref_chosen", [D.batch]), refRejected = b.input("ref_rejected", [D.batch])
        let (s, weights) = lossInputs(b)
        let pairWeight = s.pairWeight, k = DPOLossType.allCases.count
        let prefRatio = b.input(DPOScalar.prefLossRatio.rawValue, []), sftRatio = b.input(DPOScalar.sftLossRatio.rawValue, [])
        try LlamaModel(b, lora: lora, dropout: dropout, prefix: prefix).trainingStep(r.ids, layout: r.layout, scored: r.scored) { logits in
            let p = pairLogps(logits, r)
            let losses = b.dpoLosses(pc: p.pc, pr: p.pr, rc: refChosen, rr: refRejected, nc: p.nc, nr: p.nr, s, weights: weights)
            let stacked = b.concat(losses.map { $0.reshape([1, D.batch]) }, axis: 0)   // [K, B]
            let mixed = (stacked * weights.reshape([Dim(k), 1])).sum(axis: 0, keepDims: false)   // [B]
            let sft = b.scope("sft") { -(p.pc / p.nc) }   // always on the real log-probs
            let loss = b.scope("dpo_loss") {
                prefRatio * b.weightedSum(mixed, pairWeight) + sftRatio * b.weightedSum(sft, pairWeight)
            }
            b.output("loss", loss)
            b.output("losses", b.stopGradient(stacked))
            b.output("logps_chosen", b.stopGradient(p.pc)); b.output("logps_rejected", b.stopGradient(p.pr))
            b.output("logits_chosen", p.logitsChosen); b.output("logits_rejected", p.logitsRejected)
            return loss
        }
        return try b.build()
    }

    /// `dpo_loss`: the loss family alone on given log-probs `[B]` (for checking each formula
    /// and its gradient without a model). Outputs `losses` `[K, B]`, the weighted `loss`, and
    /// its gradients `d_chosen`, `d_rejected`.
    public static func lossOnly() throws -> Program {
        let b = GraphBuilder("dpo_loss")
        let pair: Shape = [D.batch]
        let pc = b.input("logps_chosen", pair), pr = b.input("logps_rejected", pair)
        let rc = b.input("ref_chosen", pair), rr = b.input("ref_rejected", pair)
        let nc = b.input("len_chosen", pair), nr = b.input("len_rejected", pair)
        let (s, weights) = lossInputs(b)
        let (pairWeight, k) = (s.pairWeight, DPOLossType.allCases.count)
        let losses = b.dpoLosses(pc: pc, pr: pr, rc: rc, rr: rr, nc: nc, nr: nr, s, weights: weights)
        let stacked = b.concat(losses.map { $0.reshape([1, D.batch]) }, axis: 0)
        let loss = b.weightedSum((stacked * weights.reshape([Dim(k), 1])).sum(axis: 0, keepDims: false), pairWeight)
        let g = try b.gradients(of: loss, wrt: [pc, pr])
        b.output("losses", stacked); b.output("loss", loss)
        b.output("d_chosen", g[0]); b.output("d_rejected", g[1])
        return try b.build()
    }

    public static func all() throws -> [Program] {
        try [sequenceLogps(), dpoStep(), lossOnly(), sequenceLogps(lora: true), dpoStep(lora: true), dpoStep(lora: true, dropout: true),
             sequenceLogps(prefix: true), dpoStep(prefix: true)]
    }
}

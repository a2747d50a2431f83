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

    /// The row inputs of a DPO program.
    struct Rows {
        var ids: Tensor
        var layout: TokenLayout
    }

    /// The scored-position inputs of one chunk (`[NC, CR]` each, sliced per chunk of the
    /// `lm_chunk` stages): declared inside the stage that reads them. Padding rows have both
    /// masks 0.
    struct Scored {
        var scored, scoredPair, chosenTargets, rejectedTargets, chosenMask, rejectedMask: Tensor

        init(_ b: GraphBuilder) {
            let shape: Shape = [D.chunks, D.chunkRows]
            func int(_ name: String) -> Tensor { b.input(name, shape, .i32, perLayer: true) }
            scored = int("scored"); scoredPair = int("scored_pair")
            chosenTargets = int("chosen_targets"); rejectedTargets = int("rejected_targets")
            chosenMask = b.input("chosen_mask", shape, perLayer: true); rejectedMask = b.input("rejected_mask", shape, perLayer: true)
        }
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
        return Rows(ids: ids, layout: TokenLayout(cos: cos, sin: sin, allowed: allowed))
    }

    /// Per pair: summed log-probs of both sides, their lengths, and Σ over scored positions of
    /// the mean logit (TRL's logits/* metrics).
    /// `logits` are `[CR, V]`, one row per scored position of a chunk; each result is `[B]`, the
    /// chunk's share (the sums over chunks are the pairs').
    static func pairLogps(_ logits: Tensor, _ r: Scored) -> [Tensor] {
        let b = logits.builder
        return b.scope("sequence_logps") {
            // Σ over each pair's scored positions of x · m.
            func rowSum(_ x: Tensor, _ m: Tensor) -> Tensor {
                b.scatterAdd((x * m).reshape([D.chunkRows, 1]), r.scoredPair, rows: D.batch).reshape([D.batch])
            }
            let pc = -rowSum(b.tokenNLL(logits, targets: r.chosenTargets), r.chosenMask)
            let pr = -rowSum(b.tokenNLL(logits, targets: r.rejectedTargets), r.rejectedMask)
            let meanLogit = b.stopGradient(logits.mean(axis: -1, keepDims: false))
            let one = b.broadcast(b.constant(1), to: [D.chunkRows])
            return [pc, pr, rowSum(one, r.chosenMask), rowSum(one, r.rejectedMask),
                    rowSum(meanLogit, r.chosenMask), rowSum(meanLogit, r.rejectedMask)]
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
        let x = model.trunk.layers(model.trunk.embedding(r.ids), layout: r.layout)
        let s = model.chunkSums(x, shape: [D.batch], count: 4) { logits in
            let p = pairLogps(logits, Scored(b))
            return [p[0], p[1], p[4], p[5]]
        }
        b.output("logps_chosen", s[0]); b.output("logps_rejected", s[1])
        b.output("logits_chosen", s[2]); b.output("logits_rejected", s[3])
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
        let sums = try LlamaModel(b, lora: lora, dropout: dropout, prefix: prefix).pairedTrainingStep(r.ids, layout: r.layout, sums: 6, differentiable: 2,
                                                                                    chunk: { pairLogps($0, Scored(b)) }) { p in
            let (pc, pr, nc, nr) = (p[0], p[1], p[2], p[3])
            let losses = b.dpoLosses(pc: pc, pr: pr, rc: refChosen, rr: refRejected, nc: nc, nr: nr, s, weights: weights)
            let stacked = b.concat(losses.map { $0.reshape([1, D.batch]) }, axis: 0)   // [K, B]
            let mixed = (stacked * weights.reshape([Dim(k), 1])).sum(axis: 0, keepDims: false)   // [B]
            let sft = b.scope("sft") { -(pc / nc) }   // always on the real log-probs
            let loss = b.scope("dpo_loss") {
                prefRatio * b.weightedSum(mixed, pairWeight) + sftRatio * b.weightedSum(sft, pairWeight)
            }
            b.output("loss", loss)
            b.output("losses", b.stopGradient(stacked))
            return loss
        }
        b.output("logps_chosen", sums[0]); b.output("logps_rejected", sums[1])
        b.output("logits_chosen", sums[4]); b.output("logits_rejected", sums[5])
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
        // (`*_bf16`: bf16 products, `bf16: true`, for every kind of training)
        try [sequenceLogps(), dpoStep(), lossOnly(), sequenceLogps().lowered(precision: .bf16), dpoStep().lowered(precision: .bf16),
             sequenceLogps(lora: true).lowered(precision: .bf16), dpoStep(lora: true).lowered(precision: .bf16), sequenceLogps(lora: true), dpoStep(lora: true),
             dpoStep(lora: true, dropout: true), dpoStep(lora: true, dropout: true).lowered(precision: .bf16),
             sequenceLogps(prefix: true), dpoStep(prefix: true), sequenceLogps(prefix: true).lowered(precision: .bf16), dpoStep(prefix: true).lowered(precision: .bf16)]
    }
}

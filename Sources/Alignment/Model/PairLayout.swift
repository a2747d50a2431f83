/// One preference pair as token ids, with which tokens are scored (their log-probability counts
/// toward that side's sum). Prompt tokens may be scored too (earlier assistant turns of a
/// multi-turn conversation); they then count on both sides.
public struct PreferencePair: Sendable, Equatable {
    public var prompt: [Int32]
    public var promptScored: [Bool]
    public var chosen: [Int32]
    public var chosenScored: [Bool]
    public var rejected: [Int32]
    public var rejectedScored: [Bool]

    /// A pair with every response token scored and no prompt token scored.
    public init(prompt: [Int32], chosen: [Int32], rejected: [Int32]) {
        self.init(prompt: prompt, promptScored: Array(repeating: false, count: prompt.count),
                  chosen: chosen, chosenScored: Array(repeating: true, count: chosen.count),
                  rejected: rejected, rejectedScored: Array(repeating: true, count: rejected.count))
    }

    public init(prompt: [Int32], promptScored: [Bool], chosen: [Int32], chosenScored: [Bool], rejected: [Int32], rejectedScored: [Bool]) {
        self.prompt = prompt; self.promptScored = promptScored
        self.chosen = chosen; self.chosenScored = chosenScored
        self.rejected = rejected; self.rejectedScored = rejectedScored
    }

    /// Tokens in the shared-prompt row.
    public var rowLength: Int { prompt.count + chosen.count + rejected.count }
}

/// A batch of pairs in PaddleNLP's shared-prompt layout, as the `llama_dpo` programs take it
/// (every array `[batch, seq]`, row-major).
public struct PairBatch: Sendable, Equatable {
    public var batch: Int
    public var seq: Int
    public var ids: [Int32]
    public var positions: [Int32]
    /// 0 prompt, 1 chosen, 2 rejected, 3 padding.
    public var segments: [Int32]
    public var chosenTargets: [Int32]
    public var rejectedTargets: [Int32]
    public var chosenMask: [Float]
    public var rejectedMask: [Float]

    /// Packs `pairs` one per row: prompt, chosen, then rejected with positions restarting where
    /// chosen started. Position t of a side predicts that side's token t+1; the last prompt
    /// position predicts the first token of both responses. Rows are padded with `pad` to the
    /// longest row (or `seq`).
    public init(_ pairs: [PreferencePair], pad: Int32, seq: Int? = nil) {
        batch = pairs.count
        let width = max(seq ?? 0, pairs.map(\.rowLength).max() ?? 1, 1)
        self.seq = width
        let n = batch * width
        ids = Array(repeating: pad, count: n); positions = Array(repeating: 0, count: n)
        segments = Array(repeating: 3, count: n)
        chosenTargets = Array(repeating: 0, count: n); rejectedTargets = Array(repeating: 0, count: n)
        chosenMask = Array(repeating: 0, count: n); rejectedMask = Array(repeating: 0, count: n)
        for (row, p) in pairs.enumerated() {
            let base = row * width
            let (np, nc) = (p.prompt.count, p.chosen.count)
            // The two sequences this row stands for.
            let chosenSeq = p.prompt + p.chosen, chosenFlags = p.promptScored + p.chosenScored
            let rejectedSeq = p.prompt + p.rejected, rejectedFlags = p.promptScored + p.rejectedScored
            for (i, id) in (p.prompt + p.chosen + p.rejected).enumerated() where i < width {
                ids[base + i] = id
                let inRejected = i >= np + nc
                positions[base + i] = Int32(inRejected ? i - nc : i)
                segments[base + i] = i < np ? 0 : (inRejected ? 2 : 1)
            }
            // Chosen side: sequence index s sits at row index s.
            for s in 0..<max(chosenSeq.count - 1, 0) where s < width {
                chosenTargets[base + s] = chosenSeq[s + 1]
                chosenMask[base + s] = chosenFlags[s + 1] ? 1 : 0
            }
            // Rejected side: prompt indices sit where they are, response index s ≥ np at s + nc.
            for s in 0..<max(rejectedSeq.count - 1, 0) {
                let at = s < np ? s : s + nc
                guard at < width else { continue }
                rejectedTargets[base + at] = rejectedSeq[s + 1]
                rejectedMask[base + at] = rejectedFlags[s + 1] ? 1 : 0
            }
        }
    }

    /// The inputs of the compiled DPO programs: the row inputs `[B, T]` (`ids`, `positions`,
    /// `segments`) and, for the positions scored on either side only (`NS` of them; the
    /// vocabulary projection runs on these rows alone), `scored` (flat row index), `scored_pair`
    /// (the pair) and each side's target and 1/0 mask.
    public var programInputs: (ints: [String: [Int32]], floats: [String: [Float]], scored: Int) { programInputs(chunkRows: .max) }

    /// `programInputs` with the scored positions padded, when there are more than `chunkRows`,
    /// to a multiple of it with rows of both masks 0 (row 0, pair 0, target 0): the programs
    /// project them onto the vocabulary in chunks (`LlamaSizes.chunking`).
    public func programInputs(chunkRows: Int) -> (ints: [String: [Int32]], floats: [String: [Float]], scored: Int) {
        var rows: [Int32] = [], pairs: [Int32] = [], ct: [Int32] = [], rt: [Int32] = [], cm: [Float] = [], rm: [Float] = []
        for i in 0..<(batch * seq) where chosenMask[i] > 0 || rejectedMask[i] > 0 {
            rows.append(Int32(i)); pairs.append(Int32(i / seq))
            ct.append(chosenTargets[i]); rt.append(rejectedTargets[i]); cm.append(chosenMask[i]); rm.append(rejectedMask[i])
        }
        let pad = rows.count > chunkRows ? (chunkRows - rows.count % chunkRows) % chunkRows : 0
        rows += Array(repeating: 0, count: pad); pairs += Array(repeating: 0, count: pad)
        ct += Array(repeating: 0, count: pad); rt += Array(repeating: 0, count: pad)
        cm += Array(repeating: 0, count: pad); rm += Array(repeating: 0, count: pad)
        return (["ids": ids, "positions": positions, "segments": segments, "scored": rows, "scored_pair": pairs,
                 "chosen_targets": ct, "rejected_targets": rt],
                ["chosen_mask": cm, "rejected_mask": rm], rows.count)
    }

    /// Scored tokens per pair on each side (the length normalisers of IPO, SimPO, ORPO, SFT).
    public var lengths: PairLogps {
        var c = [Float](repeating: 0, count: batch), r = c
        for row in 0..<batch {
            for t in 0..<seq { c[row] += chosenMask[row * seq + t]; r[row] += rejectedMask[row * seq + t] }
        }
        return PairLogps(chosen: c, rejected: r)
    }

    /// PaddleNLP's `normalize_logps`: each side's mask scaled by (mean of the pair's two scored
    /// lengths) / (its own length), so summed log-probs become `logp · n̄ / n` while length-averaged
    /// ones (IPO, SimPO, ORPO, SFT) are unchanged (their lengths scale alike).
    public func normalizingLengths() -> PairBatch {
        var b = self
        let n = lengths
        for row in 0..<batch where n.chosen[row] > 0 && n.rejected[row] > 0 {
            let mean = (n.chosen[row] + n.rejected[row]) / 2
            let (fc, fr) = (mean / n.chosen[row], mean / n.rejected[row])
            for t in row * seq..<(row + 1) * seq { b.chosenMask[t] *= fc; b.rejectedMask[t] *= fr }
        }
        return b
    }
}

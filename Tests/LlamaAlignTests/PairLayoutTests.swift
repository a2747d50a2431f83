import Foundation
import Testing
import KernelRuntime
@testable import Alignment

/// Summed log-probs of the scored tokens of `seq` under `forward` logits (Double).
func sequenceLogp(_ model: LlamaModel, _ seq: [Int32], scored: [Bool]) throws -> Double {
    let v = model.config.vocabSize
    let logits = try model.forward(ids: seq, batch: 1)
    var total = 0.0
    for t in 0..<(seq.count - 1) where scored[t + 1] {
        let row = logits[(t * v)..<((t + 1) * v)].map(Double.init)
        let m = row.max() ?? 0
        let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
        total += row[Int(seq[t + 1])] - lse
    }
    return total
}

/// Runs `llama_dpo.dpo_logps` on a packed batch.
func sharedPromptLogps(_ model: LlamaModel, _ b: PairBatch) throws -> (chosen: [Float], rejected: [Float]) {
    let p = try CompiledProgram.load("llama_dpo.dpo_logps")
    let c = model.config
    var bufs = model.parameters.buffers.mapValues(\.raw)
    let inputs = b.programInputs
    var keep = inputs.ints.mapValues { AlignedBuffer(copying: $0) }.merging(inputs.floats.mapValues { AlignedBuffer(copying: $0) }) { a, _ in a }
    keep["norm_eps"] = AlignedBuffer(copying: [c.normEps]); keep["rope_theta"] = AlignedBuffer(copying: [c.ropeTheta])
    for n in ["logps_chosen", "logps_rejected", "logits_chosen", "logits_rejected"] { keep[n] = AlignedBuffer(floats: b.batch) }
    for (n, k) in keep { bufs[n] = k.raw }
    try p.run(buffers: bufs, sizes: LlamaSizes(config: c, batch: b.batch, seq: b.seq, scored: inputs.scored).bindings)
    return (keep["logps_chosen"]?.floatArray(b.batch) ?? [], keep["logps_rejected"]?.floatArray(b.batch) ?? [])
}

@Suite struct PairLayoutTests {
    @Test(arguments: [1, 2, 6])
    func sharedPromptEqualsTwoSeparateSequences(kvHeads: Int) throws {
        let config = LlamaConfig(dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 6, nKVHeads: kvHeads, vocabSize: 41, maxSeqLen: 64)
        let model = try LlamaModel(weights: LlamaWeights.random(config: config, seed: UInt64(kvHeads), scale: 0.3))
        let pairs = [
            PreferencePair(prompt: [1, 5, 9, 12], chosen: [7, 7, 3, 2], rejected: [8, 2]),
            PreferencePair(prompt: [1, 30], chosen: [4, 2], rejected: [11, 19, 23, 29, 2]),
            // Multi-turn: the first assistant turn (17, 2) sits in the prompt and is scored on both sides.
            PreferencePair(prompt: [1, 6, 17, 2, 1, 9], promptScored: [false, false, true, true, false, false],
                           chosen: [13, 2], chosenScored: [true, true], rejected: [14, 15, 2], rejectedScored: [true, true, true]),
        ]
        let batch = PairBatch(pairs, pad: 0)
        let got = try sharedPromptLogps(model, batch)
        for (i, p) in pairs.enumerated() {
            let c = try sequenceLogp(model, p.prompt + p.chosen, scored: p.promptScored + p.chosenScored)
            let r = try sequenceLogp(model, p.prompt + p.rejected, scored: p.promptScored + p.rejectedScored)
            #expect(abs(Double(got.chosen[i]) - c) <= 1e-5 * max(1, abs(c)), "pair \(i) chosen \(got.chosen[i]) vs \(c)")
            #expect(abs(Double(got.rejected[i]) - r) <= 1e-5 * max(1, abs(r)), "pair \(i) rejected \(got.rejected[i]) vs \(r)")
        }
    }

    @Test func layoutRestartsPositionsAndPredictsBothFirstTokens() {
        let b = PairBatch([PreferencePair(prompt: [1, 5], chosen: [7, 2], rejected: [8, 9, 2])], pad: 0, seq: 9)
        #expect(b.ids == [1, 5, 7, 2, 8, 9, 2, 0, 0])
        #expect(b.positions == [0, 1, 2, 3, 2, 3, 4, 0, 0])
        #expect(b.segments == [0, 0, 1, 1, 2, 2, 2, 3, 3])
        #expect(b.chosenTargets.prefix(3) == [5, 7, 2] && b.chosenMask == [0, 1, 1, 0, 0, 0, 0, 0, 0])
        #expect(b.rejectedTargets[1] == 8 && b.rejectedTargets[4] == 9 && b.rejectedTargets[5] == 2)
        #expect(b.rejectedMask == [0, 1, 0, 0, 1, 1, 0, 0, 0])
    }
}

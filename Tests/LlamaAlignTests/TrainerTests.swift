import Foundation
import Testing
@testable import Alignment

/// Splits a batch's rows into two halves.
func halves(_ b: TokenBatch) -> (TokenBatch, TokenBatch) {
    let h = b.batch / 2, n = h * b.seq
    let first = TokenBatch(batch: h, seq: b.seq, ids: Array(b.ids[..<n]), targets: Array(b.targets[..<n]), mask: Array(b.mask[..<n]))
    let second = TokenBatch(batch: b.batch - h, seq: b.seq, ids: Array(b.ids[n...]), targets: Array(b.targets[n...]), mask: Array(b.mask[n...]))
    return (first, second)
}

@Suite struct TrainerTests {
    static let config = LlamaConfig(dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 6, nKVHeads: 2, vocabSize: 37, maxSeqLen: 32,
                                    tiedEmbeddings: false)

    @Test(arguments: [true, false])
    func trainableParametersChangeAndFrozenOnesDoNot(tied: Bool) throws {
        var c = TrainerTests.config
        c.tiedEmbeddings = tied
        let w = LlamaWeights.random(config: c, seed: 21, scale: 0.1)
        let frozen: Set<String> = ["wk", "ffn_norm"]
        let store = try ParameterStore(weights: w)
        let trainer = try LMTrainer(parameters: store, trainable: Set(c.parameterShapes.map(\.name)).subtracting(frozen))
        _ = try trainer.trainStep([syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1)], lr: 1e-2)
        let after = store.weights()
        for (name, _) in c.parameterShapes {
            let before = try #require(w.tensors[name]), now = try #require(after.tensors[name])
            if frozen.contains(name) {
                #expect(before == now, "\(name) is frozen but changed")
            } else {
                #expect(zip(before, now).contains { $0 != $1 }, "\(name) did not change")
            }
        }
    }

    @Test func gradientAccumulationEqualsOneBigBatch() throws {
        let w = LlamaWeights.random(config: TrainerTests.config, seed: 5, scale: 0.1)
        let big = syntheticBatch(batch: 4, seq: 7, v: 37, seed: 2)
        let (a, b) = halves(big)
        let one = try LMTrainer(parameters: ParameterStore(weights: w))
        let two = try LMTrainer(parameters: ParameterStore(weights: w))
        let r1 = try one.trainStep([big], lr: 1e-3)
        let r2 = try two.trainStep([a, b], lr: 1e-3)
        #expect(abs(r1.loss - r2.loss) <= 1e-5 * max(1, abs(r1.loss)))
        #expect(abs(r1.gradNorm - r2.gradNorm) <= 1e-5 * max(1, r1.gradNorm))
        let p1 = one.parameters.weights(), p2 = two.parameters.weights()
        for (name, _) in TrainerTests.config.parameterShapes {
            #expect(relativeError(try #require(p2.tensors[name]), try #require(p1.tensors[name])) <= 1e-5, "\(name)")
        }
    }

    @Test func lossFallsOnARepeatedBatch() throws {
        let w = LlamaWeights.random(config: TrainerTests.config, seed: 9, scale: 0.1)
        let trainer = try LMTrainer(parameters: ParameterStore(weights: w))
        let batch = syntheticBatch(batch: 2, seq: 12, v: 37, seed: 3)
        let first = try trainer.trainStep([batch], lr: 3e-3).loss
        var last = first
        for _ in 0..<30 { last = try trainer.trainStep([batch], lr: 3e-3).loss }
        #expect(last < first * 0.5, "loss \(first) → \(last)")
        // eval_loss agrees with the training loss at the same weights.
        let e = try trainer.evaluate(batch)
        let again = try trainer.trainStep([batch], lr: 0)
        #expect(abs(e.sum / Double(e.tokens) - again.loss) <= 1e-4 * again.loss)
    }

    @Test func optimizerStateRoundTrips() throws {
        let w = LlamaWeights.random(config: TrainerTests.config, seed: 2, scale: 0.1)
        let t = try LMTrainer(parameters: ParameterStore(weights: w))
        _ = try t.trainStep([syntheticBatch(batch: 1, seq: 5, v: 37, seed: 4)], lr: 1e-3)
        let s = t.optimizerState()
        let u = try LMTrainer(parameters: ParameterStore(weights: t.parameters.weights()))
        try u.loadOptimizerState(s)
        #expect(u.step == 1)
        #expect(u.optimizerState() == s)
    }
}

import Foundation
import Testing
@testable import Alignment

/// The vocabulary projection and its loss run over chunks of scored rows (`lm_chunk` stages):
/// split into several chunks, the last one padded with weight-0 rows, a step gives what one
/// chunk holding every row gives (loss, token statistics, gradient norm, updated weights).
@Suite struct ChunkedLossTests {
    @Test func chunkedLMStepEqualsOneChunk() throws {
        let w = LlamaWeights.random(config: TrainerTests.config, seed: 7, scale: 0.1)
        let batch = syntheticBatch(batch: 3, seq: 7, v: 37, seed: 5)   // 15 scored rows
        let whole = try LMTrainer(parameters: ParameterStore(weights: w))
        let chunked = try LMTrainer(parameters: ParameterStore(weights: w))
        chunked.chunkRows = 4
        // Four chunks of four rows, the last with one padding row; the whole trainer: one chunk.
        #expect(chunked.sizes(batch)["NC"] == 4 && chunked.sizes(batch)["CR"] == 4 && chunked.sizes(batch)["NS"] == 16)
        #expect(whole.sizes(batch)["NC"] == 1 && whole.sizes(batch)["CR"] == 15)
        for step in 0..<2 {
            let a = try whole.trainStep([batch], lr: 1e-2), b = try chunked.trainStep([batch], lr: 1e-2)
            #expect(abs(a.loss - b.loss) <= 1e-5 * abs(a.loss), "step \(step): loss \(a.loss) vs \(b.loss)")
            #expect(abs(a.gradNorm - b.gradNorm) <= 1e-5 * a.gradNorm, "step \(step): grad norm")
            #expect(abs(a.entropy - b.entropy) <= 1e-5 * abs(a.entropy) && a.accuracy == b.accuracy, "step \(step): token stats")
        }
        let p1 = whole.parameters.weights(), p2 = chunked.parameters.weights()
        for (name, _) in TrainerTests.config.parameterShapes {
            #expect(relativeError(try #require(p2.tensors[name]), try #require(p1.tensors[name])) <= 1e-5, "\(name)")
        }
    }

    @Test func chunkedDPOStepEqualsOneChunk() throws {
        let w = LlamaWeights.random(config: DPOTrainerTests.config, seed: 3, scale: 0.2)
        func trainer(chunkRows: Int?) throws -> DPOTrainer {
            let policy = try LMTrainer(parameters: ParameterStore(weights: w))
            if let chunkRows { policy.chunkRows = chunkRows }
            var s = DPOSettings()
            s.lossTypes = [.sigmoid, .sft]; s.lossWeights = [1, 0.5]; s.sftLossRatio = 0.3
            return try DPOTrainer(policy: policy, reference: try ParameterStore(weights: w), settings: s)
        }
        let whole = try trainer(chunkRows: nil), chunked = try trainer(chunkRows: 7)
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        let sizes = chunked.sizes(batch)
        let scored = batch.programInputs.scored
        #expect(scored % 7 != 0 && sizes["NS"] == (scored + 6) / 7 * 7 && sizes["NC"] == (scored + 6) / 7 && sizes["CR"] == 7)
        #expect(whole.sizes(batch)["NC"] == 1)
        for step in 0..<2 {
            let a = try whole.step([batch], lr: 1e-2), b = try chunked.step([batch], lr: 1e-2)
            for (k, v) in a { #expect(abs(v - (b[k] ?? .nan)) <= 1e-5 * max(1, abs(v)), "step \(step) \(k): \(v) vs \(b[k] ?? .nan)") }
        }
        let p1 = whole.policy.parameters.weights(), p2 = chunked.policy.parameters.weights()
        for (name, _) in DPOTrainerTests.config.parameterShapes {
            #expect(relativeError(try #require(p2.tensors[name]), try #require(p1.tensors[name])) <= 1e-5, "\(name)")
        }
    }
}

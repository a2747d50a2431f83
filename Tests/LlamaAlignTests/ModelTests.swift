import Foundation
import Testing
@testable import Alignment

func tinyConfig(kvHeads: Int, tied: Bool = true) -> LlamaConfig {
    LlamaConfig(dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 6, nKVHeads: kvHeads, vocabSize: 37, maxSeqLen: 16,
                normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: tied)
}

@Suite struct ModelTests {
    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin", "golden/stories260K_greedy.json"), "needs ../shared"))
    func greedyMatchesLlama2cGolden() throws {
        let modelPath = try SharedFixtures.require("models/stories260K.bin")
        let goldenPath = try SharedFixtures.require("golden/stories260K_greedy.json")
        struct Golden: Decodable { var prompt_ids: [Int32]; var greedy_ids: [Int32] }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: goldenPath)))
        let model = try LlamaModel(weights: try Llama2cCheckpoint.load(path: modelPath))
        let gen = Generator(model: model, settings: SamplerSettings(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0))
        let out = try gen.generate(prompt: golden.prompt_ids, maxNewTokens: golden.greedy_ids.count)
        #expect(out == golden.greedy_ids)
    }

    @Test(arguments: [(6, 1), (6, 3), (2, 1), (2, 3), (3, 3)])
    func decodeAfterPrefillMatchesForward(kvHeads: Int, batch: Int) throws {
        let config = tinyConfig(kvHeads: kvHeads, tied: kvHeads != 2)
        let model = try LlamaModel(weights: LlamaWeights.random(config: config, seed: UInt64(kvHeads * 10 + batch), scale: 0.3))
        let t = 7, v = config.vocabSize
        let ids = (0..<(batch * t)).map { Int32(($0 * 13 + 5) % v) }
        let full = try model.forward(ids: ids, batch: batch)
        // Prefill the first 3 positions, then decode the rest one at a time.
        let cache = model.makeCache(batch: batch, capacity: 12)
        let split = 3
        let head = (0..<batch).flatMap { b in ids[(b * t)..<(b * t + split)] }
        let pre = try model.prefill(ids: head, cache: cache)
        for b in 0..<batch {
            for p in 0..<split {
                let got = Array(pre[((b * split + p) * v)..<((b * split + p + 1) * v)])
                let want = Array(full[((b * t + p) * v)..<((b * t + p + 1) * v)])
                #expect(relativeError(got, want) <= 1e-5, "prefill b\(b) p\(p)")
            }
        }
        for p in split..<t {
            let step = (0..<batch).map { ids[$0 * t + p] }
            let logits = try model.decode(ids: step, cache: cache)
            for b in 0..<batch {
                let got = Array(logits[(b * v)..<((b + 1) * v)])
                let want = Array(full[((b * t + p) * v)..<((b * t + p + 1) * v)])
                #expect(relativeError(got, want) <= 1e-5, "decode b\(b) p\(p): \(relativeError(got, want))")
            }
        }
    }

    @Test func outOfRangeIdsAreRejected() throws {
        let model = try LlamaModel(weights: LlamaWeights.random(config: tinyConfig(kvHeads: 3), seed: 1, scale: 0.1))
        #expect(throws: (any Error).self) { try model.forward(ids: [1, 99], batch: 1) }
    }
}

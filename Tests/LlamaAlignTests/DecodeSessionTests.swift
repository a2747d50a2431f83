import Foundation
import Testing
@testable import Alignment

/// Decoding through a preallocated `DecodeSession` gives what `LlamaModel.decode` gives.
@Suite struct DecodeSessionTests {
    @Test(arguments: [1, 3])
    func sessionLogitsEqualModelDecode(batch: Int) throws {
        let config = tinyConfig(kvHeads: 3, tied: batch == 1)
        let model = try LlamaModel(weights: LlamaWeights.random(config: config, seed: 7, scale: 0.3))
        let v = config.vocabSize
        let prompt = (0..<(batch * 4)).map { Int32(($0 * 11 + 2) % v) }
        let cache = model.makeCache(batch: batch, capacity: 10)
        let session = try DecodeSession(model: model, batch: batch, capacity: 10)
        let full = try model.prefill(ids: prompt, cache: cache)
        let first = Array(try session.prefill(prompt))
        for b in 0..<batch { #expect(Array(first[(b * v)..<((b + 1) * v)]) == Array(full[((b * 4 + 3) * v)..<((b * 4 + 4) * v)])) }
        for step in 0..<6 {
            let ids = (0..<batch).map { Int32(($0 * 5 + step * 3 + 1) % v) }
            let want = try model.decode(ids: ids, cache: cache)
            let got = try ids.withUnsafeBufferPointer { Array(try session.decode($0)) }
            #expect(got == want, "step \(step)")
        }
        #expect(session.cache.length == 10)
        #expect(throws: (any Error).self) { try session.decode(Int32(1)) }
    }

    /// The generator's ids equal a step-by-step loop over `LlamaModel.decode`, greedy and sampled.
    @Test(arguments: [SamplerSettings.greedy, SamplerSettings(temperature: 0.9, topK: 8, topP: 0.9, repetitionPenalty: 1.3, seed: 5)])
    func generatorMatchesAStepByStepLoop(settings: SamplerSettings) throws {
        let config = tinyConfig(kvHeads: 2, tied: false)
        let model = try LlamaModel(weights: LlamaWeights.random(config: config, seed: 11, scale: 0.5))
        let prompt: [Int32] = [1, 5, 9]
        let out = try Generator(model: model, settings: settings).generate(prompt: prompt, maxNewTokens: 10)
        var sampler = Sampler(settings: settings)
        let cache = model.makeCache(batch: 1, capacity: 13)
        var logits = try model.prefill(ids: prompt, cache: cache)
        var history = prompt, want: [Int32] = []
        while want.count < 10 {
            let next = sampler.sample(logits: Array(logits.suffix(config.vocabSize)), history: history)
            want.append(next); history.append(next)
            if want.count < 10 { logits = try model.decode(ids: [next], cache: cache) }
        }
        #expect(out == want)
    }

    /// An optimizer that lays the parameters out again moves them; the session follows.
    @Test func sessionFollowsParametersThatMove() throws {
        let config = tinyConfig(kvHeads: 3)
        let store = try ParameterStore(weights: LlamaWeights.random(config: config, seed: 2, scale: 0.3))
        let model = try LlamaModel(parameters: store)
        let session = try DecodeSession(model: model, capacity: 4)
        let cache = model.makeCache(batch: 1, capacity: 4)
        #expect(Array(try session.prefill([1, 2])) == Array(try model.prefill(ids: [1, 2], cache: cache).suffix(config.vocabSize)))
        let old = store.flat
        _ = try AdamW(parameters: store, trainable: ["w2", "final_norm"])
        #expect(store.flat !== old)
        #expect(Array(try session.decode(Int32(3))) == (try model.decode(ids: [3], cache: cache)))
    }
}

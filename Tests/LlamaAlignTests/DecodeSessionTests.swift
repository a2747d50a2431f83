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
        // The session's prefill projects only each row's last position (another product shape,
        // so the same sums in another order: float rounding, not bit-equality).
        for b in 0..<batch {
            #expect(relativeError(Array(first[(b * v)..<((b + 1) * v)]), Array(full[((b * 4 + 3) * v)..<((b * 4 + 4) * v)])) <= 1e-5)
        }
        for step in 0..<6 {
            let ids = (0..<batch).map { Int32(($0 * 5 + step * 3 + 1) % v) }
            let want = try model.decode(ids: ids, cache: cache)
            let got = try ids.withUnsafeBufferPointer { Array(try session.decode($0)) }
            #expect(got == want, "step \(step)")
        }
        #expect(session.cache.length == 10)
        #expect(throws: (any Error).self) { try session.decode(Int32(1)) }
    }

    /// `prefillLast` gives the rows of the full prefill's logits at each sequence's last position
    /// and leaves the cache where the full prefill leaves it (f32, q8_0 and q4_0 models; one
    /// projected row takes decode's one-row products, with int8 activations when quantized).
    @Test(arguments: [nil, QuantType.q8_0, .q4_0], [1, 2])
    func prefillLastIsTheFullPrefillsLastRows(quant: QuantType?, batch: Int) throws {
        let config = QuantizationTests.tinyQuantConfig(), v = config.vocabSize
        let weights = LlamaWeights.random(config: config, seed: 5, scale: 0.3)
        let model = try quant.map { try LlamaModel(quantized: QuantizedWeights(quantizing: weights, type: $0, groupSize: 32)) }
            ?? LlamaModel(weights: weights)
        let prompt = (0..<(batch * 5)).map { Int32(($0 * 37 + 3) % v) }
        let c1 = model.makeCache(batch: batch, capacity: 8), c2 = model.makeCache(batch: batch, capacity: 8)
        let full = try model.prefill(ids: prompt, cache: c1), last = try model.prefillLast(ids: prompt, cache: c2)
        #expect(last.count == batch * v && c2.length == 5)
        // int8 activations (a quantized model's one-row product) move logits by a few % of their range
        let tolerance: Float = quant == nil || batch > 1 ? 1e-5 : 0.06
        for b in 0..<batch {
            let want = Array(full[((b * 5 + 4) * v)..<((b * 5 + 5) * v)]), got = Array(last[(b * v)..<((b + 1) * v)])
            #expect(relativeError(got, want) <= tolerance, "row \(b)")
            #expect(got.indices.max { got[$0] < got[$1] } == want.indices.max { want[$0] < want[$1] }, "row \(b)")
        }
        // Both caches hold the same positions: the next decode step agrees.
        let x = try model.decode(ids: Array(repeating: 7, count: batch), cache: c1)
        let y = try model.decode(ids: Array(repeating: 7, count: batch), cache: c2)
        #expect(x == y)
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
        #expect(relativeError(Array(try session.prefill([1, 2])), Array(try model.prefill(ids: [1, 2], cache: cache).suffix(config.vocabSize))) <= 1e-5)
        let old = store.flat
        _ = try AdamW(parameters: store, trainable: ["w2", "final_norm"])
        #expect(store.flat !== old)
        #expect(Array(try session.decode(Int32(3))) == (try model.decode(ids: [3], cache: cache)))
    }
}

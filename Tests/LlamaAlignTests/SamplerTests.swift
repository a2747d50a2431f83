import Foundation
import Testing
@testable import Alignment

@Suite struct SamplerTests {
    private let logits: [Float] = [0.3, 2.5, -1.0, 2.5, 1.7, 0.0, -3.2, 1.1]

    /// Reference softmax of `x / t` in Double.
    private func softmax(_ x: [Float], temperature t: Double = 1) -> [Double] {
        let m = Double(x.max() ?? 0)
        let e = x.map { exp((Double($0) - m) / t) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    @Test func greedyIsArgmaxWithLowestIndexOnTies() {
        var s = Sampler(settings: .greedy)
        #expect(s.sample(logits: logits) == 1)  // 2.5 at ids 1 and 3
        #expect(s.sample(logits: [-5, -1, -2]) == 1)
        #expect(s.sample(logits: [.nan, 0.5, 0.7]) == 2)
        #expect(s.sample(logits: [4]) == 0)
    }

    /// Greedy sampling without a penalty takes the argmax of the floats directly; it must pick
    /// what the penalized-scores path (`probabilities`) picks, NaN, ±inf and ties included.
    @Test func greedyFastPathPicksWhatTheScoresPathPicks() {
        var rng = SeededGenerator(seed: 7)
        let specials: [Float] = [.nan, .infinity, -.infinity, 0, 1]
        for trial in 0 ..< 200 {
            var x = (0 ..< 40).map { _ in Float((rng.nextGaussian() * 2).rounded()) }  // many ties
            for _ in 0 ..< trial % 6 { x[Int(rng.nextDouble() * 40) % 40] = specials[Int(rng.nextDouble() * 5) % 5] }
            if trial % 50 == 0 { x = Array(repeating: trial % 100 == 0 ? .nan : -.infinity, count: 40) }
            var s = Sampler(settings: .greedy)
            let reference = Sampler(settings: .greedy).probabilities(logits: x)
            #expect(reference.count == 1)
            #expect(Int(s.sample(logits: x)) == reference.first?.id)
        }
    }

    @Test func topKOneIsGreedyAtAnyTemperature() {
        for t: Float in [0.1, 0.7, 1, 5, 100] {
            var s = Sampler(settings: SamplerSettings(temperature: t, topK: 1, seed: 42))
            for _ in 0 ..< 20 { #expect(s.sample(logits: logits) == 1) }
        }
        var rng = SeededGenerator(seed: 99)
        for _ in 0 ..< 50 {
            let random = (0 ..< 50).map { _ in Float(rng.nextGaussian() * 3) }
            var greedy = Sampler(settings: .greedy)
            var k1 = Sampler(settings: SamplerSettings(temperature: 1.3, topK: 1, seed: 1))
            #expect(greedy.sample(logits: random) == k1.sample(logits: random))
        }
    }

    @Test func sameSeedSameSequence() {
        let settings = SamplerSettings(temperature: 0.9, topK: 5, topP: 0.95, repetitionPenalty: 1.1, seed: 1234)
        func run(_ settings: SamplerSettings) -> [Int32] {
            var s = Sampler(settings: settings)
            var history: [Int32] = []
            for _ in 0 ..< 200 { history.append(s.sample(logits: logits, history: history)) }
            return history
        }
        let a = run(settings), b = run(settings)
        #expect(a == b)
        var other = settings
        other.seed = 4321
        #expect(run(other) != a)
        #expect(Set(a).count > 1)
    }

    @Test func repetitionPenaltyChangesThePick() {
        var plain = Sampler(settings: .greedy)
        var penalized = Sampler(settings: SamplerSettings(temperature: 0, repetitionPenalty: 1.2))
        // Positive logit: 2.0 / 1.2 = 1.67 falls below 1.9.
        #expect(plain.sample(logits: [2.0, 1.9, 0.1], history: [0]) == 0)
        #expect(penalized.sample(logits: [2.0, 1.9, 0.1], history: [0, 0, 0]) == 1)
        // Negative logit: -1.0 · 1.2 = -1.2 falls below -1.1.
        #expect(plain.sample(logits: [-1.0, -1.1], history: [0]) == 0)
        #expect(penalized.sample(logits: [-1.0, -1.1], history: [0]) == 1)
        // Ids outside the vocabulary are ignored.
        #expect(penalized.sample(logits: [2.0, 1.9], history: [-1, 7]) == 0)
        // With sampling, the penalized distribution is the softmax of the penalized logits.
        let s = Sampler(settings: SamplerSettings(temperature: 1, repetitionPenalty: 2))
        let probs = s.probabilities(logits: [2.0, -1.0, 0.5], history: [0, 1])
        let expected = softmax([1.0, -2.0, 0.5])
        for (c, e) in zip(probs, expected) { #expect(abs(c.p - e) < 1e-12) }
    }

    @Test func topPKeepsTheNucleus() {
        let p: [Double] = [0.1, 0.5, 0.15, 0.25]
        let l = p.map { Float(log($0)) }
        // Sorted: 0.5 (id 1), 0.25 (id 3), 0.15 (id 2), 0.1 (id 0). p = 0.7 needs ids 1 and 3.
        let s = Sampler(settings: SamplerSettings(temperature: 1, topP: 0.7))
        let kept = s.probabilities(logits: l)
        #expect(kept.map(\.id) == [1, 3])
        #expect(abs(kept[0].p - 2.0 / 3) < 1e-6 && abs(kept[1].p - 1.0 / 3) < 1e-6)
        // p = 0.8 needs a third token; p = 0.4 only the first.
        #expect(Sampler(settings: SamplerSettings(topP: 0.8)).probabilities(logits: l).map(\.id) == [1, 3, 2])
        #expect(Sampler(settings: SamplerSettings(topP: 0.4)).probabilities(logits: l).map(\.id) == [1])
        // Draws never leave the nucleus.
        var d = Sampler(settings: SamplerSettings(temperature: 1, topP: 0.7, seed: 3))
        let draws = (0 ..< 2000).map { _ in d.sample(logits: l) }
        #expect(Set(draws) == [1, 3])
        // top-k applies first, and top-p works on the renormalized remainder: with k = 3 the
        // kept mass is 0.9, so 0.5 / 0.9 = 0.56 < 0.6 and 0.75 / 0.9 = 0.83 ≥ 0.6.
        let kp = Sampler(settings: SamplerSettings(topK: 3, topP: 0.6)).probabilities(logits: l)
        #expect(kp.map(\.id) == [1, 3])
    }

    @Test func topKKeepsTheKMostLikely() {
        let s = Sampler(settings: SamplerSettings(temperature: 1, topK: 3))
        #expect(s.probabilities(logits: logits).map(\.id) == [1, 3, 4])
    }

    @Test(arguments: [Float(1), 0.6]) func frequenciesMatchSoftmax(temperature: Float) {
        var s = Sampler(settings: SamplerSettings(temperature: temperature, seed: 2024))
        let n = 20000
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0 ..< n { counts[Int(s.sample(logits: logits))] += 1 }
        let expected = softmax(logits, temperature: Double(temperature))
        for (c, e) in zip(counts, expected) {
            #expect(abs(Double(c) / Double(n) - e) < 0.02)
        }
    }

    @Test func generatorIsStableAcrossRuns() {
        var g = SeededGenerator(seed: 0)
        // SplitMix64's published first outputs for seed 0.
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
        var h = SeededGenerator(seed: 5)
        for _ in 0 ..< 1000 { #expect((0 ..< 1).contains(h.nextDouble())) }
    }
}

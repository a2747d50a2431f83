import Foundation

/// How `Sampler` picks the next token.
public struct SamplerSettings: Sendable, Equatable, Hashable {
    /// Softmax temperature; 0 (or less) means greedy argmax.
    public var temperature: Float
    /// Keep only the `topK` most probable tokens; 0 turns it off.
    public var topK: Int
    /// Nucleus sampling: keep the smallest set of most probable tokens whose probability
    /// sums to at least `topP`; 1 turns it off.
    public var topP: Float
    /// CTRL/Hugging Face repetition penalty for ids already in the context; 1 turns it off.
    public var repetitionPenalty: Float
    /// Seed of the random draws.
    public var seed: UInt64

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    /// Greedy decoding: always the most likely token.
    public static let greedy = SamplerSettings(temperature: 0)
}

/// Picks token ids from logits. The steps are: repetition penalty (for every distinct id in
/// `history`, a logit `x` becomes `x / p` when `x > 0`, else `x · p`); then, for greedy
/// settings (temperature 0, or top-k 1) the argmax with the lowest index on ties; otherwise
/// division by the temperature, softmax in `Double`, top-k, renormalization, top-p, and a draw
/// from the renormalized remainder with a `SeededGenerator`. Draws are deterministic for a seed.
/// A sampler keeps its working arrays between calls, so sampling one token after another
/// allocates nothing once they have grown to the vocabulary.
public struct Sampler: Sendable {
    public let settings: SamplerSettings
    /// The random state; advanced by each non-greedy draw.
    public var generator: SeededGenerator
    private var scratch = Scratch()

    public init(settings: SamplerSettings) {
        self.settings = settings
        generator = SeededGenerator(seed: settings.seed)
    }

    /// The next token id for `logits` (one per vocabulary entry, not empty) given the ids
    /// generated or prompted so far. NaN logits count as impossible.
    public mutating func sample(logits: UnsafeBufferPointer<Float>, history: [Int32]) -> Int32 {
        precondition(!logits.isEmpty, "Sampler.sample needs at least one logit")
        // Greedy without a penalty: the argmax of the floats as they are (no copy to Double).
        if isGreedy && !penalizes { return Int32(Sampler.argmax(logits)) }
        scratch.penalize(logits, history: history, penalty: settings.repetitionPenalty)
        if isGreedy { return Int32(scratch.argmax()) }
        scratch.distribution(settings)
        guard let last = scratch.candidates.last else { return Int32(scratch.argmax()) }
        let total = scratch.candidates.reduce(0) { $0 + $1.p }
        let u = generator.nextDouble() * total
        var cumulative = 0.0
        for c in scratch.candidates {
            cumulative += c.p
            if u < cumulative { return Int32(c.id) }
        }
        return Int32(last.id)
    }

    /// Convenience for an array of logits.
    public mutating func sample(logits: [Float], history: [Int32] = []) -> Int32 {
        logits.withUnsafeBufferPointer { sample(logits: $0, history: history) }
    }

    /// The distribution `sample` draws from (ids with their normalized probabilities, most
    /// probable first when top-k or top-p is on, else in id order). Greedy settings give the
    /// argmax alone with probability 1.
    public func probabilities(logits: [Float], history: [Int32] = []) -> [(id: Int, p: Double)] {
        guard !logits.isEmpty else { return [] }
        var s = Scratch()
        logits.withUnsafeBufferPointer { s.penalize($0, history: history, penalty: settings.repetitionPenalty) }
        if isGreedy { return [(s.argmax(), 1)] }
        s.distribution(settings)
        let total = s.candidates.reduce(0) { $0 + $1.p }
        guard total > 0 else { return [(s.argmax(), 1)] }
        return s.candidates.map { ($0.id, $0.p / total) }
    }

    private var isGreedy: Bool { !(settings.temperature > 0) || settings.topK == 1 }

    /// Whether the repetition penalty changes any logit (a penalty of 1, or not above 0, is off).
    private var penalizes: Bool { settings.repetitionPenalty != 1 && settings.repetitionPenalty > 0 }

    /// Index of the largest logit, NaN counting as -inf, the lowest index on ties (0 when none
    /// is above -inf): the same choice as `Scratch.argmax` over the unpenalized scores.
    static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var top = -Float.infinity
        for (i, x) in logits.enumerated() where x > top {
            best = i
            top = x
        }
        return best
    }
}

/// The sampler's working arrays, reused from call to call.
private struct Scratch: Sendable {
    /// The logits as `Double`, NaN mapped to -inf, the repetition penalty applied.
    var scores: [Double] = []
    /// Softmax numerators.
    var probs: [Double] = []
    /// The ids left after top-k and top-p, with their probabilities (unnormalized after filtering).
    var candidates: [(id: Int, p: Double)] = []
    /// Ids already penalized in this call.
    var penalized: [Bool] = []

    /// Fills `scores` from `logits`, dividing or multiplying each distinct id of `history` by `penalty`.
    mutating func penalize(_ logits: UnsafeBufferPointer<Float>, history: [Int32], penalty: Float) {
        scores.removeAll(keepingCapacity: true)
        for x in logits { scores.append(x.isNaN ? -Double.infinity : Double(x)) }
        let p = Double(penalty)
        guard p != 1, p > 0 else { return }
        if penalized.count < scores.count { penalized = Array(repeating: false, count: scores.count) }
        for id in history where id >= 0 && Int(id) < scores.count && !penalized[Int(id)] {
            penalized[Int(id)] = true
            let v = scores[Int(id)]
            scores[Int(id)] = v > 0 ? v / p : v * p
        }
        for id in history where id >= 0 && Int(id) < scores.count { penalized[Int(id)] = false }
    }

    /// Index of the largest score, the lowest index on ties (0 when all are -inf).
    func argmax() -> Int {
        var best = 0
        for i in scores.indices where scores[i] > scores[best] { best = i }
        return best
    }

    /// `candidates`: the softmax of `scores / temperature` filtered by top-k and top-p
    /// (unnormalized after filtering). Empty only when every score is -inf.
    mutating func distribution(_ settings: SamplerSettings) {
        candidates.removeAll(keepingCapacity: true)
        let t = Double(settings.temperature)
        guard let m = scores.max(), m > -Double.infinity else { return }
        probs.removeAll(keepingCapacity: true)
        // +inf logits share all the mass.
        for x in scores { probs.append(m == .infinity ? (x == .infinity ? 1 : 0) : exp((x - m) / t)) }
        let sum = probs.reduce(0, +)
        for (i, q) in probs.enumerated() where q > 0 { candidates.append((id: i, p: q / sum)) }
        let k = settings.topK
        let topP = Double(settings.topP)
        guard (k > 0 && k < candidates.count) || topP < 1 else { return }

        candidates.sort { $0.p != $1.p ? $0.p > $1.p : $0.id < $1.id }
        if k > 0 && k < candidates.count { candidates.removeSubrange(k...) }
        if topP < 1 {
            let total = candidates.reduce(0) { $0 + $1.p }
            var cumulative = 0.0
            var keep = candidates.count
            for (n, c) in candidates.enumerated() {
                cumulative += c.p / total
                if cumulative >= topP - 1e-12 {
                    keep = n + 1
                    break
                }
            }
            candidates.removeSubrange(max(keep, 1)...)
        }
    }
}

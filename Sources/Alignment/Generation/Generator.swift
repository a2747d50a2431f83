import KernelRuntime

/// Autoregressive generation on a `LlamaModel` with a KV cache: prefill the prompt, then
/// decode one token at a time, streaming each id as it is produced.
public struct Generator {
    public let model: LlamaModel
    public var settings: SamplerSettings
    /// Ids that end generation (not included in the result).
    public var stopIds: Set<Int32>
    /// A trained prefix ahead of the prompt (the cache's first `P` positions), or none.
    public var prefix: TrainedPrefix?

    public init(model: LlamaModel, settings: SamplerSettings, stopIds: Set<Int32> = []) {
        self.model = model
        self.settings = settings
        self.stopIds = stopIds
    }

    /// Generates up to `maxNewTokens` ids after `prompt`, calling `onToken` for each. The cache,
    /// the logits and the sampler's scratch are allocated once (`DecodeSession`), not per token.
    public func generate(prompt: [Int32], maxNewTokens: Int, onToken: (Int32) -> Void = { _ in }) throws -> [Int32] {
        guard !prompt.isEmpty else { throw RuntimeError("the prompt is empty: give at least one token (e.g. BOS = 1)") }
        guard maxNewTokens >= 0 else { throw RuntimeError("maxNewTokens must be ≥ 0, got \(maxNewTokens)") }
        // No more can be generated than the context holds (and a huge count must not overflow).
        let wanted = min(maxNewTokens, model.config.maxSeqLen)
        let capacity = min(model.config.maxSeqLen, prompt.count + wanted)
        guard prompt.count < capacity || maxNewTokens == 0 else {
            throw RuntimeError("the prompt has \(prompt.count) tokens; the model's context is \(model.config.maxSeqLen)")
        }
        let extra = prefix?.prefix.tokens ?? 0
        let session = try DecodeSession(model: model, batch: 1, capacity: max(capacity, prompt.count) + extra)
        let cache = session.cache
        try prefix?.fill(cache, config: model.config)
        var sampler = Sampler(settings: settings)
        var logits = try session.prefill(prompt)
        var history = prompt
        history.reserveCapacity(prompt.count + wanted)
        var out: [Int32] = []
        out.reserveCapacity(wanted)
        while out.count < maxNewTokens {
            let next = sampler.sample(logits: logits, history: history)
            if stopIds.contains(next) { break }
            out.append(next)
            history.append(next)
            onToken(next)
            if out.count == maxNewTokens || cache.length >= cache.capacity { break }
            logits = try session.decode(next)
        }
        return out
    }
}

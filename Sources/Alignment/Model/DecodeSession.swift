import KernelRuntime

/// Token-by-token decoding with everything allocated once per generation: the KV cache, the
/// ids and logits buffers, and the bound arguments of `llama.decode` (its arena sized for the
/// last position up front). A decode step writes the ids, sets the position and runs the
/// program; the logits it returns are a view of the session's buffer.
public final class DecodeSession: @unchecked Sendable {
    public let model: LlamaModel
    /// The cache the session fills (`cache.length` positions so far).
    public let cache: KVCache
    private let ids: AlignedBuffer
    private let logits: AlignedBuffer
    private var arguments: CompiledProgram.Arguments
    /// The parameter buffer the arguments point into (kept alive; rebound if it is replaced).
    private var boundParameters: AlignedBuffer

    /// A session for `batch` sequences of up to `capacity` positions (the model's context by default).
    public init(model: LlamaModel, batch: Int = 1, capacity: Int? = nil) throws {
        guard batch > 0 else { throw RuntimeError("a decode session needs at least one sequence") }
        self.model = model
        cache = model.makeCache(batch: batch, capacity: capacity)
        ids = AlignedBuffer(bytes: batch * 4)
        logits = AlignedBuffer(floats: batch * model.config.vocabSize)
        boundParameters = model.parameters.flat
        arguments = try DecodeSession.bind(model, cache: cache, ids: ids, logits: logits)
    }

    private static func bind(_ model: LlamaModel, cache: KVCache, ids: AlignedBuffer, logits: AlignedBuffer) throws -> CompiledProgram.Arguments {
        var b = model.buffers(ids: ids, out: logits)
        b["k_cache"] = cache.k.raw
        b["v_cache"] = cache.v.raw
        // The arena for the last position covers every earlier one.
        let last = max(cache.capacity - 1, 0)
        let sizes = LlamaSizes(config: model.config, batch: cache.batch, seq: 1, start: last, cacheCapacity: cache.capacity)
        let a = try model.decodeProgram.bind(buffers: b, sizes: model.bindings(sizes))
        model.decodeProgram.reserveArena(a)
        return a
    }

    /// The logits `[batch, V]` of the latest position: a view of the session's buffer, valid
    /// until the next call.
    public var lastLogits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: logits.floats, count: cache.batch * model.config.vocabSize)
    }

    /// Runs `prompt` (`[batch, T]`, row-major) through the cache (`LlamaModel.prefillLast`: only
    /// each row's last position reaches the vocabulary) and keeps those logits; returns them
    /// (`lastLogits`).
    @discardableResult
    public func prefill(_ prompt: [Int32]) throws -> UnsafeBufferPointer<Float> {
        let last = try model.prefillLast(ids: prompt, cache: cache)
        last.withUnsafeBufferPointer { a in
            guard let base = a.baseAddress else { return }
            logits.floats.update(from: base, count: min(a.count, cache.batch * model.config.vocabSize))
        }
        return lastLogits
    }

    /// One token per sequence at the next position; returns the logits `[batch, V]` (`lastLogits`).
    @discardableResult
    public func decode(_ next: UnsafeBufferPointer<Int32>) throws -> UnsafeBufferPointer<Float> {
        guard next.count == cache.batch else { throw RuntimeError("decode takes one id per sequence (\(cache.batch))") }
        try model.checkIds(next)
        guard cache.length < cache.capacity else {
            throw RuntimeError("the KV cache holds \(cache.capacity) positions; \(cache.length + 1) needed")
        }
        if model.parameters.flat !== boundParameters {
            boundParameters = model.parameters.flat
            arguments = try DecodeSession.bind(model, cache: cache, ids: ids, logits: logits)
        }
        for (i, id) in next.enumerated() { ids.ints[i] = id }
        arguments.setSize(LlamaSizes.startSymbol, cache.length)
        arguments.setSize(LlamaSizes.spanSymbol, cache.length + 1)
        model.decodeProgram.run(&arguments)
        cache.length += 1
        return lastLogits
    }

    /// `decode` for a single sequence.
    @discardableResult
    public func decode(_ next: Int32) throws -> UnsafeBufferPointer<Float> {
        var id = next
        return try withUnsafePointer(to: &id) { try decode(UnsafeBufferPointer(start: $0, count: 1)) }
    }
}

import KernelRuntime

/// A KV cache for `batch` sequences of up to `capacity` positions, all layers.
public final class KVCache: @unchecked Sendable {
    public let batch: Int
    public let capacity: Int
    /// Positions already written.
    public internal(set) var length = 0
    let k: AlignedBuffer
    let v: AlignedBuffer

    init(config: LlamaConfig, batch: Int, capacity: Int) {
        self.batch = batch
        self.capacity = capacity
        let n = config.nLayers * batch * capacity * config.kvDim
        k = AlignedBuffer(floats: n)
        v = AlignedBuffer(floats: n)
    }
}

/// A LLaMA model on the compiled programs `llama.forward`, `llama.prefill` and `llama.decode`.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    /// The parameters the programs read; training updates them in place.
    public let parameters: ParameterStore
    private let forwardProgram: CompiledProgram
    private let prefillProgram: CompiledProgram
    let decodeProgram: CompiledProgram
    /// The quantized matrices the programs read instead of `parameters`' f32 ones, if any.
    let quantized: QuantizedBuffers?

    public convenience init(weights: LlamaWeights) throws {
        try self.init(parameters: ParameterStore(weights: weights))
    }

    /// A model whose projections are quantized: `forward`, `prefill` and `decode` run the
    /// programs with fused dequantize-and-multiply kernels (`llama.decode_q8`, `…_q4`).
    /// `parameters` then holds the dequantized f32 model (what `eval` and training-side code
    /// read: the same numbers, multiplied in another order).
    public convenience init(quantized: QuantizedWeights) throws {
        try self.init(parameters: ParameterStore(weights: quantized.dequantized()), quantized: QuantizedBuffers(quantized))
    }

    /// The quantization of the weights the programs read, if any.
    public var quantization: (type: QuantType, groupSize: Int)? { quantized.map { ($0.weights.type, $0.weights.groupSize) } }

    /// A model over existing parameters (shared, e.g. with a trainer).
    public convenience init(parameters: ParameterStore) throws {
        try self.init(parameters: parameters, quantized: nil)
    }

    init(parameters: ParameterStore, quantized: QuantizedBuffers?) throws {
        self.parameters = parameters
        self.quantized = quantized
        config = parameters.config
        let suffix = quantized.map { "_" + $0.programSuffix } ?? ""
        forwardProgram = try CompiledProgram.load("llama.forward" + suffix)
        prefillProgram = try CompiledProgram.load("llama.prefill" + suffix)
        decodeProgram = try CompiledProgram.load("llama.decode" + suffix)
        guard config.dim % config.nHeads == 0, config.nHeads % config.nKVHeads == 0, config.headDim % 2 == 0 else {
            throw RuntimeError("unsupported shape: dim \(config.dim), heads \(config.nHeads), kv heads \(config.nKVHeads)")
        }
    }

    /// Sizes for a decode call at position `position` (for cost estimates in profiles).
    public func sizes(batch: Int, seq: Int, position: Int = 0) -> [String: Int] {
        bindings(LlamaSizes(config: config, batch: batch, seq: seq, start: position))
    }

    /// The programs' size bindings (with the group counts of quantized weights).
    func bindings(_ s: LlamaSizes) -> [String: Int] {
        s.bindings.merging(quantized?.groupSizes ?? [:]) { a, _ in a }
    }

    func buffers(ids: AlignedBuffer, out: AlignedBuffer) -> [String: UnsafeMutableRawPointer] {
        var b = parameters.pointers
        if let q = quantized { b.merge(q.pointers) { _, new in new } }
        b["ids"] = ids.raw
        b["logits"] = out.raw
        return b
    }

    func checkIds(_ ids: some Sequence<Int32>) throws {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw RuntimeError("token id \(bad) is outside the vocabulary (0..<\(config.vocabSize))")
        }
    }

    /// Logits `[batch, T, V]` (flattened) for `ids` `[batch, T]` (row-major), positions 0..<T.
    public func forward(ids: [Int32], batch: Int) throws -> [Float] {
        try checkIds(ids)
        guard batch > 0, ids.count % batch == 0, !ids.isEmpty else { throw RuntimeError("ids do not split into \(batch) rows") }
        let t = ids.count / batch
        let idBuf = AlignedBuffer(copying: ids), out = AlignedBuffer(floats: ids.count * config.vocabSize)
        try forwardProgram.run(buffers: buffers(ids: idBuf, out: out), sizes: bindings(LlamaSizes(config: config, batch: batch, seq: t)))
        return out.floatArray(ids.count * config.vocabSize)
    }

    /// A fresh cache for `batch` sequences of up to `capacity` positions.
    public func makeCache(batch: Int, capacity: Int? = nil) -> KVCache {
        KVCache(config: config, batch: batch, capacity: capacity ?? config.maxSeqLen)
    }

    /// Runs `ids` `[batch, T]` through the cache at positions `cache.length ..< cache.length+T`;
    /// returns logits `[batch, T, V]`. With T = 1 it uses the decode program.
    public func prefill(ids: [Int32], cache: KVCache) throws -> [Float] {
        try prefill(ids: ids, cache: cache, lastOnly: false)
    }

    /// `prefill` returning only each sequence's last position, `[batch, V]`: the vocabulary
    /// projection runs on those rows alone (what generation needs for its first token).
    public func prefillLast(ids: [Int32], cache: KVCache) throws -> [Float] {
        try prefill(ids: ids, cache: cache, lastOnly: true)
    }

    private func prefill(ids: [Int32], cache: KVCache, lastOnly: Bool) throws -> [Float] {
        try checkIds(ids)
        guard !ids.isEmpty, ids.count % cache.batch == 0 else { throw RuntimeError("ids do not split into \(cache.batch) rows") }
        let t = ids.count / cache.batch
        guard cache.length + t <= cache.capacity else {
            throw RuntimeError("the KV cache holds \(cache.capacity) positions; \(cache.length + t) needed")
        }
        // The rows projected onto the vocabulary, flat `b·T + t`: all, or each sequence's last.
        let rows = lastOnly ? (0..<cache.batch).map { Int32(($0 + 1) * t - 1) } : (0..<ids.count).map { Int32($0) }
        let idBuf = AlignedBuffer(copying: ids), scored = AlignedBuffer(copying: rows)
        let out = AlignedBuffer(floats: rows.count * config.vocabSize)
        var b = buffers(ids: idBuf, out: out)
        b["k_cache"] = cache.k.raw
        b["v_cache"] = cache.v.raw
        b["scored"] = scored.raw
        let sizes = LlamaSizes(config: config, batch: cache.batch, seq: t, scored: rows.count, start: cache.length,
                               cacheCapacity: cache.capacity)
        try (t == 1 ? decodeProgram : prefillProgram).run(buffers: b, sizes: bindings(sizes))
        cache.length += t
        return out.floatArray(rows.count * config.vocabSize)
    }

    /// One token per sequence through the cache; logits `[batch, V]`. (A `DecodeSession` does
    /// the same without allocating per token.)
    public func decode(ids: [Int32], cache: KVCache) throws -> [Float] {
        guard ids.count == cache.batch else { throw RuntimeError("decode takes one id per sequence (\(cache.batch))") }
        return try prefill(ids: ids, cache: cache)
    }

    /// The compiled programs, for profiling.
    public var programs: [CompiledProgram] { [forwardProgram, prefillProgram, decodeProgram] }
}

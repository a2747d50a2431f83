import LlamaGraphs
import TensorGraph

/// The sizes a LLaMA program binds, typed: the model's widths from its config and the call's
/// batch, sequence, scored rows and cache positions. `bindings` keys them by the graphs' own
/// symbols (`LlamaDims`), so no size name is written twice.
public struct LlamaSizes: Sendable, Equatable {
    /// Layers, KV heads, query heads per KV head, half the head width, FFN width, vocabulary.
    public var layers, kvHeads, queryHeadsPerKV, halfHeadDim, hidden, vocab: Int
    /// Rows and tokens per row of this call.
    public var batch, seq: Int
    /// Positions projected onto the vocabulary (training and DPO programs).
    public var scored: Int
    /// The cache position of the call's first token, and the cache's capacity (prefill/decode).
    public var start: Int, cacheCapacity: Int
    /// The most scored rows per vocabulary chunk (`chunking`); `chunkRows(vocab:)` by default.
    public var chunkBudget: Int

    public init(config: LlamaConfig, batch: Int = 1, seq: Int = 1, scored: Int = 0, start: Int = 0, cacheCapacity: Int? = nil,
                chunkRows: Int? = nil) {
        layers = config.nLayers
        kvHeads = config.nKVHeads
        queryHeadsPerKV = config.nHeads / max(config.nKVHeads, 1)
        halfHeadDim = config.headDim / 2
        hidden = config.hiddenDim
        vocab = config.vocabSize
        self.batch = batch; self.seq = seq; self.scored = scored
        self.start = start; self.cacheCapacity = cacheCapacity ?? config.maxSeqLen
        chunkBudget = chunkRows ?? Self.chunkRows(vocab: config.vocabSize)
    }

    /// The symbols a decode session rebinds per token (without building `bindings`).
    static let startSymbol = LlamaDims.start.syms[0], spanSymbol = LlamaDims.span.syms[0], capacitySymbol = LlamaDims.cacheLen.syms[0]

    /// Positions attended to: the cached ones and this call's.
    public var span: Int { start + seq }

    /// Rows of scored positions `lm_step` and the DPO programs project onto the vocabulary at a
    /// time: at most 16 MiB of logits (`2^22 / V` rows, rounded down to a multiple of 32 — the
    /// products' row blocks — and at least 16), so their `[NS, V]` logits are never whole.
    /// (Smaller chunks make the head's products less efficient: for V = 32,000, 65 rows cost a
    /// small training step ~15% against ~6% for 131, and 128 rows run ~4% faster than 131;
    /// 128 keeps DPO's peak under 700 MiB where 262 rows did not; `bench … --chunk-rows`.)
    public static func chunkRows(vocab: Int) -> Int {
        let rows = (1 << 22) / max(vocab, 1)
        return rows >= 32 ? rows / 32 * 32 : max(16, rows)
    }

    /// The chunking of the `scored` rows (`NC` chunks of `CR`) of `lm_step` and the DPO
    /// programs: the largest divisor of `scored` up to `chunkBudget`, so the chunks tile the rows
    /// exactly (the trainers pad their rows to a multiple of the budget with weight-0 rows,
    /// making that divisor the budget itself).
    public var chunking: (chunks: Int, rows: Int) {
        guard scored > 0 else { return (0, 1) }
        var rows = min(scored, max(chunkBudget, 1))
        while scored % rows != 0 { rows -= 1 }
        return (scored / rows, rows)
    }

    /// Every size by the symbol the programs declare it under.
    public var bindings: [String: Int] {
        let values: [(Dim, Int)] = [
            (LlamaDims.layers, layers), (LlamaDims.kvHeads, kvHeads), (LlamaDims.rep, queryHeadsPerKV),
            (LlamaDims.half, halfHeadDim), (LlamaDims.hidden, hidden), (LlamaDims.vocab, vocab),
            (LlamaDims.batch, batch), (LlamaDims.seq, seq), (LlamaDims.scored, scored),
            (LlamaDims.start, start), (LlamaDims.span, span), (LlamaDims.cacheLen, cacheCapacity),
            (LlamaDims.chunks, chunking.chunks), (LlamaDims.chunkRows, chunking.rows),
        ]
        var b: [String: Int] = [:]
        for (dim, value) in values { if let name = dim.symbolName { b[name] = value } }
        return b
    }
}

import KernelRuntime
import LlamaGraphs

/// A prefix-tuning setup (PaddleNLP's `prefix_tuning`, `num_prefix_tokens`; PEFT's
/// `num_virtual_tokens`): `P` trained key/value positions ahead of every row in every layer.
///
/// The programs' parameter `prefix_kv` is `[L, 2, P, KVH, HD]` (per layer: keys, then values),
/// keys in the internal interleaved head-dim order of the RoPE'd `wk` rows. PEFT's table is
/// `[P, L·2·KVH·HD]`, entry `((l·2 + kv)·KVH + h)·HD + d` of row `p`, keys in Hugging Face's
/// rotate-half order; `peftTable`/`init(peftTable:)` convert between the two.
public struct PrefixConfig: Sendable, Equatable {
    /// `P` (> 0).
    public var tokens: Int

    /// Throws naming `num_prefix_tokens` for a count ≤ 0.
    public init(tokens: Int) throws {
        guard tokens > 0 else { throw RuntimeError("num_prefix_tokens must be positive, got \(tokens)") }
        self.tokens = tokens
    }

    /// `prefix_kv`'s shape for `config`: `[L, 2, P, KVH, HD]`.
    public func shape(_ config: LlamaConfig) -> [Int] { [config.nLayers, 2, tokens, config.nKVHeads, config.headDim] }

    /// The tensor a store holds for this prefix, by name.
    public func tensorShapes(_ config: LlamaConfig) -> [(name: String, shape: [Int])] { [(Prefix.parameter, shape(config))] }

    /// PEFT's table shape for `config`: `[P, L·2·KVH·HD]`.
    public func peftShape(_ config: LlamaConfig) -> [Int] { [tokens, config.nLayers * 2 * config.kvDim] }

    /// PEFT's initial prefix (`nn.Embedding`'s default): every entry N(0, 1), drawn from `seed`.
    public func initialTable(_ config: LlamaConfig, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0 ..< shape(config).reduce(1, *)).map { _ in Float(rng.nextGaussian()) }
    }

    /// `prefix_kv` (`[L, 2, P, KVH, HD]`, internal key order) as PEFT's `[P, L·2·KVH·HD]` table.
    public func peftTable(_ internalTable: [Float], config c: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: internalTable.count)
        forEachEntry(c) { i, p in out[p] = internalTable[i] }
        return out
    }

    /// PEFT's `[P, L·2·KVH·HD]` table as `prefix_kv` (`[L, 2, P, KVH, HD]`, internal key order).
    public func internalTable(peft table: [Float], config c: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: table.count)
        forEachEntry(c) { i, p in out[i] = table[p] }
        return out
    }

    /// Calls `body(internal, peft)` with the flat index of every entry in both layouts. A key's
    /// internal head dim `2i + j` is Hugging Face's `j·HD/2 + i` (`HFCheckpoint.permuteRows`);
    /// values keep their order.
    private func forEachEntry(_ c: LlamaConfig, _ body: (Int, Int) -> Void) {
        let (layers, kvh, hd, half) = (c.nLayers, c.nKVHeads, c.headDim, c.headDim / 2)
        var i = 0
        for l in 0 ..< layers {
            for kv in 0 ..< 2 {
                for p in 0 ..< tokens {
                    for h in 0 ..< kvh {
                        for d in 0 ..< hd {
                            let hfD = kv == 0 ? (d % 2) * half + d / 2 : d
                            body(i, p * layers * 2 * kvh * hd + ((l * 2 + kv) * kvh + h) * hd + hfD)
                            i += 1
                        }
                    }
                }
            }
        }
    }
}

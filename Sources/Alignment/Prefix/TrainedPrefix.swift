import KernelRuntime
import LlamaGraphs

/// A trained prefix for inference: its setup and `prefix_kv` (`[L, 2, P, KVH, HD]`).
///
/// Generation needs no program of its own: the prefix *is* the first `P` positions of a KV
/// cache (keys as stored, no RoPE — what PEFT passes as `past_key_values`), so the plain
/// `prefill`/`decode` programs run on after it at positions `P, P+1, …`.
public struct TrainedPrefix: Sendable {
    public var prefix: PrefixConfig
    /// `prefix_kv` in the programs' layout.
    public var table: [Float]

    public init(prefix: PrefixConfig, table: [Float]) {
        self.prefix = prefix
        self.table = table
    }

    /// The PEFT prefix adapter in `directory`, checked against `config` (`PEFTPrefix.load`).
    public init(directory: String, config: LlamaConfig) throws {
        let loaded = try PEFTPrefix.load(directory: directory, config: config)
        self.init(prefix: loaded.prefix, table: loaded.table)
    }

    /// Writes the prefix into the first `P` positions of every row of `cache` (all layers) and
    /// sets its length to `P`. The cache must be empty and hold at least `P` positions.
    public func fill(_ cache: KVCache, config c: LlamaConfig) throws {
        let p = prefix.tokens, kvd = c.kvDim
        guard cache.length == 0 else { throw RuntimeError("a prefix goes into an empty KV cache (it holds \(cache.length) positions)") }
        guard p <= cache.capacity else { throw RuntimeError("the KV cache holds \(cache.capacity) positions; the prefix needs \(p)") }
        guard table.count == prefix.shape(c).reduce(1, *) else {
            throw RuntimeError("prefix_kv has \(table.count) values, expected \(prefix.shape(c))")
        }
        table.withUnsafeBufferPointer { t in
            guard let src = t.baseAddress else { return }
            for l in 0 ..< c.nLayers {
                for (kv, dst) in [cache.k, cache.v].enumerated() {
                    let from = src + (l * 2 + kv) * p * kvd
                    for row in 0 ..< cache.batch {
                        let to = dst.floats + ((l * cache.batch + row) * cache.capacity) * kvd
                        to.update(from: from, count: p * kvd)
                    }
                }
            }
        }
        cache.length = p
    }
}

import TensorGraph

/// Prefix tuning (Li & Liang; PEFT's and PaddleNLP's `prefix_tuning`): `P` trained key/value
/// positions ahead of every row in every layer. Each layer attends over `S = P + T` keys —
/// the prefix's, used as stored (no RoPE: they are what a KV cache would hold), then the row's
/// own — and the row's tokens sit at positions `P ..< P+T`, as Hugging Face places tokens after
/// `P` cached ones (PEFT passes the prefix as `past_key_values`).
public enum Prefix {
    /// `prefix_kv` `[L, 2, P, KVH, HD]`: per layer, the `P` keys (`[0]`) and values (`[1]`)
    /// of every KV head. Keys are in the internal interleaved head-dim order of the RoPE'd
    /// `wq`/`wk` rows (`HFCheckpoint`); the runtime converts to and from PEFT's table.
    public static let parameter = "prefix_kv"
    /// The prefix length `P`: the programs bind it as a KV cache's first position
    /// (`LlamaDims.start`), and `S` (`LlamaDims.span`) to `P + T`.
    public static var length: Dim { LlamaDims.start }
}

/// One layer's prefix: its `[2, P, KVH, HD]` slice of `prefix_kv`, put ahead of the row's keys
/// and values.
struct PrefixKV {
    /// This layer's `[2, P, KVH, HD]`.
    let table: Tensor

    /// Declares `prefix_kv` `[L, 2, P, KVH, HD]` (per layer); called inside the layer loop.
    init(_ b: GraphBuilder) {
        typealias D = LlamaDims
        table = b.param(Prefix.parameter, [D.layers, 2, Prefix.length, D.kvHeads, D.headDim], perLayer: true)
    }

    /// `k`, `v` `[B, T, KVH, HD]` → `[B, S, KVH, HD]`: the prefix's `P` positions (the same for
    /// every row), then the row's `T`.
    func prepend(keys k: Tensor, values v: Tensor) -> (keys: Tensor, values: Tensor) {
        typealias D = LlamaDims
        let b = k.builder
        return b.scope("prefix") {
            let bs = k.shape[0]
            func part(_ i: Int, _ x: Tensor) -> Tensor {
                let rows = table.slice(axis: 0, start: Dim(i), length: 1).reshape([1, Prefix.length, D.kvHeads, D.headDim])
                return b.concat([rows.expand([bs, Prefix.length, D.kvHeads, D.headDim]), x], axis: 1, size: D.span)
            }
            return (part(0, k), part(1, v))
        }
    }
}

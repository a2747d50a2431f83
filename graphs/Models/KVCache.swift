import TensorGraph

/// One layer's KV cache: this layer's `[B, C, KVH, HD]` slices of the per-layer inputs
/// `k_cache` and `v_cache` (`[L, B, C, KVH, HD]`, C the capacity), written in place.
struct KVCache {
    let keys: Tensor
    let values: Tensor

    /// Declares the two cache inputs; called inside the layer loop.
    init(_ b: GraphBuilder) {
        typealias D = LlamaDims
        let shape: Shape = [D.layers, D.batch, D.cacheLen, D.kvHeads, D.headDim]
        keys = b.input("k_cache", shape, perLayer: true, mutable: true)
        values = b.input("v_cache", shape, perLayer: true, mutable: true)
    }

    /// Writes this call's keys and values (`[B, T, KVH, HD]`) at positions `P ..< P+T` and
    /// returns the cached ones at positions `0 ..< S` (`[B, S, KVH, HD]`, S = P + T).
    func update(keys k: Tensor, values v: Tensor) -> (keys: Tensor, values: Tensor) {
        typealias D = LlamaDims
        let b = k.builder
        let kc = b.writeSlice(keys, k, axis: 1, start: D.start)
        let vc = b.writeSlice(values, v, axis: 1, start: D.start)
        return (kc.slice(axis: 1, start: 0, length: D.span), vc.slice(axis: 1, start: 0, length: D.span))
    }
}

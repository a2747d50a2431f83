import TensorGraph

/// The token embedding table `embed` (`[V, D]`): a row per token id.
struct Embedding {
    /// `[V, D]`.
    let weight: Tensor

    init(_ b: GraphBuilder) {
        weight = b.param("embed", [LlamaDims.vocab, LlamaDims.dim])
    }

    /// `ids [B, T]` (int32) → `[B, T, D]`.
    func callAsFunction(_ ids: Tensor) -> Tensor {
        ids.builder.scope("embed") { ids.builder.gather(weight, ids) }
    }

    /// Adds the gradient of the lookup (`dx [B, T, D]`) into `grad_embed`: a scatter into the
    /// rows of the batch's tokens, so no other row is touched.
    func accumulateGradient(_ dx: Tensor, ids: Tensor) {
        let b = ids.builder
        b.scope("embed_backward") {
            b.accumulate(into: weight.gradientBuffer, b.scatterAdd(dx, ids, rows: LlamaDims.vocab))
        }
    }
}

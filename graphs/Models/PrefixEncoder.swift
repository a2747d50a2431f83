import TensorGraph

/// PEFT's and PaddleNLP's reparameterized prefix (`prefix_projection`): each of the `P` prefix
/// positions has a trained embedding `[KVD]` (KVD = KVH·HD, PEFT's `token_dim` for GQA), turned
/// into every layer's keys and values by a two-layer MLP,
///   prefix_kv = reshape(tanh(embed · W1ᵀ + b1) · W2ᵀ + b2)   ([P, KVD] → [P, E] → [P, L·2·KVD]),
/// laid out `[L, 2, P, KVH, HD]` as the step programs read it (`PrefixKV`). W2's rows follow that
/// layout (keys in the internal interleaved head-dim order). The step programs stay as they are:
/// `prefix_encode` computes `prefix_kv` before a step, `prefix_encode_backward` turns the step's
/// `grad_prefix_kv` into the MLP's gradients after it.
public enum PrefixEncoderPrograms {
    typealias D = LlamaDims

    /// The MLP's hidden width `E` (PEFT's `encoder_hidden_size`).
    public static let hidden = Dim.sym("E")
    /// The trained tensors, in declaration order: `prefix_embed` `[P, KVD]`, `prefix_w1`
    /// `[E, KVD]`, `prefix_b1` `[E]`, `prefix_w2` `[L·2·KVD, E]`, `prefix_b2` `[L·2·KVD]`.
    public static let parameters = ["prefix_embed", "prefix_w1", "prefix_b1", "prefix_w2", "prefix_b2"]

    /// Declares the MLP's parameters and returns them with `prefix_kv` `[L, 2, P, KVH, HD]`.
    static func encode(_ b: GraphBuilder) -> (params: [Tensor], kv: Tensor) {
        let width = D.layers * 2 * D.kvDim
        let embed = b.param("prefix_embed", [Prefix.length, D.kvDim])
        let w1 = b.param("prefix_w1", [hidden, D.kvDim]), b1 = b.param("prefix_b1", [hidden])
        let w2 = b.param("prefix_w2", [width, hidden]), b2 = b.param("prefix_b2", [width])
        let kv = b.scope("prefix_encoder") { () -> Tensor in
            let h = (embed.matmul(w1, transB: true) + b.broadcast(b1.reshape([1, hidden]), to: [Prefix.length, hidden])).tanh()
            let out = h.matmul(w2, transB: true) + b.broadcast(b2.reshape([1, width]), to: [Prefix.length, width])
            return out.reshape([Prefix.length, D.layers, 2, D.kvHeads, D.headDim]).permute([1, 2, 0, 3, 4])
        }
        return ([embed, w1, b1, w2, b2], kv)
    }

    /// `prefix_encode`: writes `prefix_kv` `[L, 2, P, KVH, HD]` from the MLP.
    public static func forward() throws -> Program {
        let b = GraphBuilder("prefix_encode")
        b.output(Prefix.parameter, encode(b).kv)
        return try b.build()
    }

    /// `prefix_encode_backward`: given `grad_prefix_kv` (what the step programs added up),
    /// ADDS the MLP's gradients into `grad_prefix_embed`, `grad_prefix_w1`, … (forward recomputed).
    public static func backward() throws -> Program {
        let b = GraphBuilder("prefix_encode_backward")
        let (params, kv) = encode(b)
        let seed = b.input(LlamaTrainingPrograms.gradName(Prefix.parameter), [D.layers, 2, Prefix.length, D.kvHeads, D.headDim])
        let grads = try b.gradients(of: kv, seed: seed, wrt: params)
        for (p, g) in zip(params, grads) { b.accumulate(into: p.gradientBuffer, g) }
        return try b.build()
    }

    public static func all() throws -> [Program] { try [forward(), backward()] }
}

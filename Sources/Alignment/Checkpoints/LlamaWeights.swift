/// A LLaMA model's configuration and all its parameters in the internal layout
/// (see `LlamaConfig.parameterShapes`): one flat row-major `[Float]` per parameter name.
public struct LlamaWeights: Sendable {
    public var config: LlamaConfig
    /// Parameter values by internal name (`embed`, `wq`, ..., `lm_head` when untied).
    public var tensors: [String: [Float]]

    public init(config: LlamaConfig, tensors: [String: [Float]]) {
        self.config = config
        self.tensors = tensors
    }

    /// Checks that the configuration is usable and that every parameter of
    /// `config.parameterShapes` is present with the right number of values, and no other.
    /// `source` names the origin of the weights in the error (a path, usually).
    public func validate(source: String = "model weights") throws {
        try Self.checkConfig(config, source: source)
        let expected = config.parameterShapes
        for (name, shape) in expected {
            guard let values = tensors[name] else {
                throw CheckpointError(source, "missing parameter '\(name)' (expected shape \(shape))")
            }
            let count = shape.reduce(1, *)
            guard values.count == count else {
                throw CheckpointError(source, "parameter '\(name)' has \(values.count) values, expected \(count) for shape \(shape)")
            }
        }
        let known = Set(expected.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !known.contains($0) }) {
            let hint = extra == "lm_head" ? " (the config says the embeddings are tied)" : ""
            throw CheckpointError(source, "unexpected parameter '\(extra)'\(hint)")
        }
    }

    /// Checks the hyper-parameters the internal layout relies on.
    static func checkConfig(_ c: LlamaConfig, source: String) throws {
        let sizes = [("dim", c.dim), ("hidden_dim", c.hiddenDim), ("n_layers", c.nLayers), ("n_heads", c.nHeads),
                     ("n_kv_heads", c.nKVHeads), ("vocab_size", c.vocabSize), ("seq_len", c.maxSeqLen)]
        for (name, value) in sizes where value <= 0 {
            throw CheckpointError(source, "\(name) is \(value), expected a positive number")
        }
        guard c.dim % c.nHeads == 0 else {
            throw CheckpointError(source, "dim \(c.dim) is not a multiple of n_heads \(c.nHeads)")
        }
        guard c.nHeads % c.nKVHeads == 0 else {
            throw CheckpointError(source, "n_heads \(c.nHeads) is not a multiple of n_kv_heads \(c.nKVHeads)")
        }
        guard c.headDim % 2 == 0 else {
            throw CheckpointError(source, "head size \(c.headDim) is odd; rotary embeddings need an even head size")
        }
        // Every parameter must fit in memory arithmetic without overflow.
        for (name, shape) in c.parameterShapes where BinaryIO.elementCount(shape) == nil {
            throw CheckpointError(source, "parameter '\(name)' with shape \(shape) is too large")
        }
        guard c.normEps.isFinite, c.normEps >= 0, c.ropeTheta.isFinite, c.ropeTheta > 0 else {
            throw CheckpointError(source, "norm eps \(c.normEps) or rope theta \(c.ropeTheta) is out of range")
        }
    }

    /// Deterministic random weights for `config`: norm weights `1 + scale·N(0,1)`, every
    /// other parameter `scale·N(0,1)`, drawn in `parameterShapes` order from `seed`.
    public static func random(config: LlamaConfig, seed: UInt64, scale: Float = 0.02) -> LlamaWeights {
        var rng = SeededGenerator(seed: seed)
        var tensors: [String: [Float]] = [:]
        let s = Double(scale)
        for (name, shape) in config.parameterShapes {
            let count = shape.reduce(1, *)
            let base: Double = name.hasSuffix("norm") ? 1 : 0
            tensors[name] = (0 ..< count).map { _ in Float(base + s * rng.nextGaussian()) }
        }
        return LlamaWeights(config: config, tensors: tensors)
    }
}

import KernelRuntime

/// A model's parameters in aligned buffers, by internal name (`LlamaConfig.parameterShapes`).
/// With tied embeddings `lm_head` is the embedding buffer itself.
public final class ParameterStore: @unchecked Sendable {
    public let config: LlamaConfig
    public private(set) var buffers: [String: AlignedBuffer] = [:]
    /// Element counts by name.
    public let counts: [String: Int]

    public init(weights: LlamaWeights) throws {
        config = weights.config
        var counts: [String: Int] = [:]
        for (name, shape) in config.parameterShapes {
            guard let values = weights.tensors[name] else { throw RuntimeError("model weights lack '\(name)'") }
            let count = shape.reduce(1, *)
            guard values.count == count else { throw RuntimeError("weight '\(name)' has \(values.count) values, expected \(count)") }
            buffers[name] = AlignedBuffer(copying: values)
            counts[name] = count
        }
        self.counts = counts
        if config.tiedEmbeddings { buffers["lm_head"] = buffers["embed"] }
    }

    /// Names of the distinct parameter tensors, in checkpoint order.
    public var names: [String] { config.parameterShapes.map(\.name) }

    /// A copy of the current values.
    public func weights() -> LlamaWeights {
        var t: [String: [Float]] = [:]
        for name in names {
            if let b = buffers[name], let n = counts[name] { t[name] = b.floatArray(n) }
        }
        return LlamaWeights(config: config, tensors: t)
    }

    /// Overwrites every parameter with `weights` (same config).
    public func load(_ weights: LlamaWeights) throws {
        guard weights.config == config else { throw RuntimeError("cannot load weights of a different configuration") }
        for name in names {
            guard let v = weights.tensors[name], let b = buffers[name], v.count == counts[name] else {
                throw RuntimeError("weights lack '\(name)' or have the wrong size")
            }
            v.withUnsafeBufferPointer { b.floats.update(from: $0.baseAddress.unsafelyUnwrapped, count: v.count) }
        }
    }

    /// Pointers for program calls (`lm_head` included when tied).
    var pointers: [String: UnsafeMutableRawPointer] { buffers.mapValues(\.raw) }
}

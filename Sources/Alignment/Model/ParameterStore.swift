import KernelRuntime
import LlamaGraphs

/// A model's parameters in one flat aligned buffer (`flat`, laid out by `layout`), with a view
/// per tensor by internal name (`LlamaConfig.parameterShapes`). With tied embeddings `lm_head`
/// is the embedding view itself. The programs read the views; an optimizer updates the flat
/// buffer in one pass (`AdamW` lays the trainable tensors out first, see `arrange(_:)`).
public final class ParameterStore: @unchecked Sendable {
    public let config: LlamaConfig
    /// One view of `flat` per tensor (`lm_head` shares `embed`'s when tied).
    public private(set) var buffers: [String: AlignedBuffer] = [:]
    /// Element counts by name.
    public let counts: [String: Int]
    /// Every parameter, contiguous: the one allocation the views point into.
    public private(set) var flat: AlignedBuffer
    /// Where each tensor lies in `flat`.
    public private(set) var layout: ParameterLayout
    /// Pointers for program calls: every parameter (`lm_head` included when tied) and the
    /// scalar inputs every model program takes, `norm_eps` and `rope_theta`.
    private(set) var pointers: [String: UnsafeMutableRawPointer] = [:]
    /// `norm_eps` and `rope_theta`.
    private let constants: AlignedBuffer

    public init(weights: LlamaWeights) throws {
        config = weights.config
        var counts: [String: Int] = [:]
        for (name, shape) in config.parameterShapes {
            guard let values = weights.tensors[name] else { throw RuntimeError("model weights lack '\(name)'") }
            let count = shape.reduce(1, *)
            guard values.count == count else { throw RuntimeError("weight '\(name)' has \(values.count) values, expected \(count)") }
            counts[name] = count
        }
        self.counts = counts
        layout = ParameterLayout(order: config.parameterShapes.map(\.name), counts: counts)
        flat = AlignedBuffer(floats: layout.totalFloats)
        constants = AlignedBuffer(copying: [config.normEps, config.ropeTheta])
        bindViews()
        try load(weights)
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

    /// Lays the tensors out again in `order` (a permutation of `names`), keeping their values.
    /// The views are replaced: read `buffers` (or the pointers) again after this.
    public func arrange(_ order: [String]) throws {
        guard order.count == names.count, Set(order) == Set(names) else {
            throw RuntimeError("a parameter order must name each of \(names.joined(separator: ", ")) once")
        }
        relayout(order)
    }

    /// `arrange(_:)` for an order known to be a permutation of `names`.
    func relayout(_ order: [String]) {
        guard order != layout.order else { return }
        let next = ParameterLayout(order: order, counts: counts)
        let moved = AlignedBuffer(floats: next.totalFloats)
        next.move(from: layout, flat.floats, to: moved.floats)
        flat = moved
        layout = next
        bindViews()
    }

    /// Rebuilds the per-tensor views of `flat` and the program pointers.
    private func bindViews() {
        buffers = [:]
        for name in layout.order {
            guard let offset = layout.offsets[name], let n = counts[name] else { continue }
            buffers[name] = AlignedBuffer(viewing: flat, floatOffset: offset, floats: n)
        }
        if config.tiedEmbeddings { buffers["lm_head"] = buffers["embed"] }
        pointers = buffers.mapValues(\.raw)
        pointers[LlamaDims.Constant.normEps.rawValue] = constants.raw
        pointers[LlamaDims.Constant.ropeTheta.rawValue] = constants.raw + 4
    }
}

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
    /// The LoRA setup when the store also holds adapters (`lora_a_<w>`, `lora_b_<w>` after the
    /// model's tensors; every projection's, targets or not).
    public let lora: LoRAConfig?
    /// `lora_scale_<w>` for each of `LoRA.modules`: the scale for a target, 0 otherwise.
    private let loraScales: AlignedBuffer
    /// The prefix-tuning setup when the store also holds a trained prefix (`prefix_kv` after
    /// the model's tensors).
    public let prefix: PrefixConfig?

    /// The model's `weights`; with `lora`, also its adapters: `adapters` (every tensor of
    /// `lora.adapterShapes`) or, when nil, PEFT's initial ones drawn from `seed`; with
    /// `prefix`, also its `prefix_kv` (in `adapters`, or PEFT's initial N(0, 1) from `seed`).
    /// LoRA and a prefix together are refused.
    public init(weights: LlamaWeights, lora: LoRAConfig? = nil, adapters: [String: [Float]]? = nil, seed: UInt64 = 0,
                prefix: PrefixConfig? = nil) throws {
        config = weights.config
        guard lora == nil || prefix == nil else {
            throw RuntimeError("lora and prefix_tuning together are not supported; choose one")
        }
        self.lora = lora
        self.prefix = prefix
        let adapterShapes = lora?.adapterShapes(config) ?? prefix?.tensorShapes(config) ?? []
        var counts: [String: Int] = [:]
        for (name, shape) in config.parameterShapes + adapterShapes {
            guard let values = weights.tensors[name] ?? adapters?[name] ?? (adapters == nil ? [] : nil) else {
                throw RuntimeError("model weights lack '\(name)'")
            }
            let count = shape.reduce(1, *)
            guard values.count == count || (adapters == nil && values.isEmpty) else {
                throw RuntimeError("weight '\(name)' has \(values.count) values, expected \(count) (shape \(shape))")
            }
            counts[name] = count
        }
        self.counts = counts
        // With LoRA the targets' adapters come first: the order the optimizer wants (trainable
        // first), so it never moves the frozen base (a transient second copy of the model).
        let trained = lora?.trainableNames ?? prefix?.trainableNames ?? []
        let order = trained + (config.parameterShapes + adapterShapes).map(\.name).filter { !trained.contains($0) }
        layout = ParameterLayout(order: order, counts: counts)
        flat = AlignedBuffer(floats: layout.totalFloats)
        constants = AlignedBuffer(copying: [config.normEps, config.ropeTheta])
        loraScales = AlignedBuffer(copying: LoRA.modules.map { m in Float(lora.map { $0.targets.contains(m) ? $0.scale : 0 } ?? 0) })
        bindViews()
        try load(weights)
        if let lora { try loadAdapters(adapters ?? lora.initialAdapters(config, seed: seed)) }
        if let prefix { try loadAdapters(adapters ?? prefix.initialTensors(config, seed: seed)) }
    }

    /// Whether the store holds adapters (LoRA's or a prefix) that train while the model stays frozen.
    public var adapted: Bool { lora != nil || prefix != nil }

    /// The adapter tensors that train: the LoRA targets' `A` and `B`, or `prefix_kv`.
    public var trainableAdapterNames: [String] { lora?.trainableNames ?? prefix?.trainableNames ?? [] }

    /// The suffix of the programs that run this store: `_lora`, `_prefix`, or none.
    public var programSuffix: String { lora != nil ? "_lora" : prefix != nil ? "_prefix" : "" }

    /// `sizes`' bindings for the programs of this store: with LoRA also the rank `R`; with a
    /// prefix the prefix length as the first position `P` (and `S` = P + T).
    public func programSizes(_ sizes: LlamaSizes) -> [String: Int] {
        var s = sizes
        if let prefix { s.start = prefix.tokens }
        var b = s.bindings
        if let lora, let r = LoRA.rank.symbolName { b[r] = lora.rank }
        if let e = prefix?.projection, let name = PrefixEncoderPrograms.hidden.symbolName { b[name] = e }
        return b
    }

    /// Names of the distinct parameter tensors, in checkpoint order (the adapters last).
    public var names: [String] { config.parameterShapes.map(\.name) + adapterNames }

    /// The adapter tensors' names (`lora_a_wq`, `lora_b_wq`, …, or `prefix_kv`), none for the
    /// model alone.
    public var adapterNames: [String] { (lora?.adapterShapes(config) ?? prefix?.tensorShapes(config) ?? []).map(\.name) }

    /// A copy of the adapters (every module's, by internal name).
    public func adapters() -> [String: [Float]] {
        var t: [String: [Float]] = [:]
        for name in adapterNames {
            if let b = buffers[name], let n = counts[name] { t[name] = b.floatArray(n) }
        }
        return t
    }

    /// Overwrites the adapters with `values` (every tensor of `adapterNames`, sized to fit).
    public func loadAdapters(_ values: [String: [Float]]) throws {
        for name in adapterNames {
            guard let v = values[name], let b = buffers[name], let n = counts[name] else { throw RuntimeError("adapters lack '\(name)'") }
            guard v.count == n else { throw RuntimeError("adapter '\(name)' has \(v.count) values, expected \(n)") }
            v.withUnsafeBufferPointer { b.floats.update(from: $0.baseAddress.unsafelyUnwrapped, count: n) }
        }
    }

    /// A copy of the model's current values (without adapters).
    public func weights() -> LlamaWeights {
        var t: [String: [Float]] = [:]
        for name in config.parameterShapes.map(\.name) {
            if let b = buffers[name], let n = counts[name] { t[name] = b.floatArray(n) }
        }
        return LlamaWeights(config: config, tensors: t)
    }

    /// Overwrites every parameter with `weights` (same config).
    public func load(_ weights: LlamaWeights) throws {
        guard weights.config == config else { throw RuntimeError("cannot load weights of a different configuration") }
        for name in config.parameterShapes.map(\.name) {
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
        for (i, m) in LoRA.modules.enumerated() { pointers[LoRA.scaleName(m)] = loraScales.raw + 4 * i }
    }
}

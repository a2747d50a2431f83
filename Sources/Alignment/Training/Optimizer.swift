import Foundation
import KernelRuntime
import LlamaGraphs

/// AdamW and clipping settings (PyTorch's defaults where PaddleNLP has none).
public struct OptimizerSettings: Sendable, Equatable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    public var weightDecay: Double = 0
    /// Global gradient-norm clip; 0 or less turns clipping off.
    public var maxGradNorm: Double = 1
    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0, maxGradNorm: Double = 1) {
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay; self.maxGradNorm = maxGradNorm
    }
}

/// AdamW (PyTorch's `torch.optim.AdamW`: decoupled weight decay, bias corrections) with
/// global-norm gradient clipping, over flat buffers. It owns the training state of one
/// `ParameterStore`: one gradient buffer and the two moment buffers, laid out like the store's
/// flat parameters with the trainable tensors first (it arranges the store that way). The
/// model programs accumulate into per-tensor views of the gradient buffer (`gradientPointers`);
/// a step is one call of the compiled `llama_train.adamw_step` over the trainable prefix, which
/// computes the norm, clips and updates parameters and moments. Frozen tensors lie after the
/// prefix: never updated, their gradients not counted in the norm.
public final class AdamW: @unchecked Sendable {
    /// The parameters it updates (their flat buffer is laid out by this optimizer).
    public let parameters: ParameterStore
    public var settings: OptimizerSettings
    /// Parameters the optimizer updates; the others stay frozen.
    public var trainable: Set<String> { didSet { syncLayout() } }
    /// Optimizer steps taken (AdamW's t).
    public private(set) var step = 0
    /// The compiled step (for profiling).
    public let program: CompiledProgram
    /// Parameter groups with their own learning rates (PyTorch's param groups; LoRA+ puts the
    /// `B` matrices at `lr · lora_plus_scale`): a tensor's factor on `lr`, 1 when absent. With
    /// any factor other than 1 a step runs `adamw_step_groups`, which reads one factor per float.
    public var learningRateFactors: [String: Double] = [:] { didSet { factorLayout = nil } }
    /// `adamw_step_groups`, loaded when a factor other than 1 is first used.
    private var groupsProgram: CompiledProgram?
    /// Each float's factor, laid out like the state (rebuilt when the layout or the factors change).
    private var factors = AlignedBuffer(floats: 1)
    private var factorLayout: ParameterLayout?

    /// The layout the state buffers follow (the store's, once synchronized).
    private var layout: ParameterLayout
    private var grads: AlignedBuffer
    private var expAvg: AlignedBuffer
    private var expAvgSq: AlignedBuffer
    private var gradViews: [String: UnsafeMutableRawPointer] = [:]
    /// The program's scalar inputs, one float each, and its norm output.
    private let scalars = AlignedBuffer(floats: OptimizerPrograms.Scalar.allCases.count + 1)

    public init(parameters: ParameterStore, trainable: Set<String>? = nil, settings: OptimizerSettings = .init()) throws {
        self.parameters = parameters
        self.trainable = trainable ?? Set(parameters.names)
        self.settings = settings
        program = try CompiledProgram.load("llama_train.adamw_step")
        layout = !parameters.adapted ? parameters.layout : ParameterLayout(order: parameters.adapterNames, counts: parameters.layout.counts)
        grads = AlignedBuffer(floats: layout.totalFloats)
        expAvg = AlignedBuffer(floats: layout.totalFloats)
        expAvgSq = AlignedBuffer(floats: layout.totalFloats)
        syncLayout()
    }

    /// The trainable tensors in checkpoint order, then the frozen ones. With LoRA only adapters
    /// can train: base tensors in `trainable` are ignored.
    private var wantedOrder: [String] {
        let names = parameters.names
        let adapters = Set(parameters.adapterNames)
        let trains: (String) -> Bool = { self.trainable.contains($0) && (!self.parameters.adapted || adapters.contains($0)) }
        return names.filter(trains) + names.filter { !trains($0) }
    }

    /// The tensors that have gradients and moments here: every one, or with LoRA the adapters
    /// only (the frozen base has no optimizer state at all). The state layout is the store's
    /// order restricted to them, so the trainable prefix lies at the same offsets in both.
    private var stateOrder: [String] {
        guard parameters.adapted else { return parameters.layout.order }
        let adapters = Set(parameters.adapterNames)
        return parameters.layout.order.filter { adapters.contains($0) }
    }

    /// Puts the trainable tensors first in the store's flat buffer and moves the gradients and
    /// moments along with them (a no-op unless the trainable set or the store's layout changed).
    private func syncLayout() {
        parameters.relayout(wantedOrder)
        let next = !parameters.adapted ? parameters.layout : ParameterLayout(order: stateOrder, counts: parameters.layout.counts)
        if next != layout || gradViews.isEmpty {
            if next != layout {
                for buffer in [\AdamW.grads, \AdamW.expAvg, \AdamW.expAvgSq] {
                    let moved = AlignedBuffer(floats: next.totalFloats)
                    next.move(from: layout, self[keyPath: buffer].floats, to: moved.floats)
                    self[keyPath: buffer] = moved
                }
                layout = next
            }
            gradViews = [:]
            for name in layout.order {
                if let o = layout.offsets[name] { gradViews[LlamaTrainingPrograms.gradName(name)] = grads.raw + 4 * o }
            }
            if parameters.config.tiedEmbeddings {
                gradViews[LlamaTrainingPrograms.gradName("lm_head")] = gradViews[LlamaTrainingPrograms.gradName("embed")]
            }
        }
    }

    /// Floats one step covers: the trainable prefix of the layout.
    public var trainableFloats: Int {
        syncLayout()
        return layout.extent(ofFirst: layout.order.prefix { trainable.contains($0) }.count)
    }

    /// Floats of each state buffer (gradients, and each moment): the whole store's, or with
    /// LoRA the adapters' only.
    public var stateFloats: Int { layout.totalFloats }

    /// The gradient buffer of every parameter, by program field name (`grad_wq`, …; with tied
    /// embeddings `grad_lm_head` is `grad_embed`), for the programs that accumulate into them.
    public func gradientPointers() -> [String: UnsafeMutableRawPointer] {
        syncLayout()
        return gradViews
    }

    /// Zeroes every gradient.
    /// Sums the trainable gradients over the ranks of a data-parallel job (one flat all-reduce
    /// in buckets); a no-op with one rank.
    public func sumGradientsOverRanks() throws {
        try World.sum(grads.floats, count: trainableFloats)
    }

    public func zeroGradients() {
        syncLayout()
        memset(grads.raw, 0, grads.byteCount)
    }

    /// A copy of a gradient (for tests and diagnostics).
    public func gradient(_ name: String) -> [Float]? {
        syncLayout()
        return slice(grads, name)
    }

    /// The global L2 norm of the trainable parameters' gradients, summed on the host in Double
    /// (a diagnostic: `apply(lr:)` computes the norm it clips with inside the compiled step).
    public func gradientNorm() -> Double {
        syncLayout()
        let g = UnsafeBufferPointer(start: grads.floats, count: trainableFloats)
        return g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// One AdamW update of every trainable parameter with learning rate `lr`, after clipping
    /// the global gradient norm. Returns the norm before clipping.
    @discardableResult
    public func apply(lr: Double) throws -> Double {
        syncLayout()
        step += 1
        let n = trainableFloats
        guard n > 0 else { return 0 }
        let o = settings
        // The kernel forms 1 − β in float32 from the float32 β, exactly (Sterbenz), but that is not
        // 1 − β of the Double β: for β₂ = 0.999 it is 1.3e-5 smaller, and bias corrections from the
        // Double β made every update 6.4e-6 too large (8.3e-5 too small for β₂ = 0.9999). Bias corrections
        // from the same float32 β normalize the moving averages exactly (TorchGoldenTests).
        let (beta1, beta2) = (Float(o.beta1), Float(o.beta2))
        typealias S = OptimizerPrograms.Scalar
        typealias B = OptimizerPrograms.Buffer
        let t = Double(step)
        let value: (S) -> Float = { s in
            switch s {
            case .learningRate: Float(lr)
            case .beta1: beta1
            case .beta2: beta2
            case .eps: Float(o.epsilon)
            case .weightDecay: Float(o.weightDecay)
            case .biasCorrection1: Float(1 - pow(Double(beta1), t))
            case .biasCorrection2: Float(1 - pow(Double(beta2), t))
            case .maxGradNorm: o.maxGradNorm > 0 ? Float(o.maxGradNorm) : .infinity
            }
        }
        let count = S.allCases.count
        let slots: [B: UnsafeMutableRawPointer] = [
            .param: parameters.flat.raw, .grad: grads.raw, .expAvg: expAvg.raw, .expAvgSq: expAvgSq.raw, .gradNorm: scalars.raw + 4 * count,
        ]
        var buffers = Dictionary(uniqueKeysWithValues: slots.map { ($0.key.rawValue, $0.value) })
        for (i, s) in S.allCases.enumerated() {
            scalars.floats[i] = value(s)
            buffers[s.rawValue] = scalars.raw + 4 * i
        }
        if learningRateFactors.values.contains(where: { $0 != 1 }) {
            buffers[B.lrFactor.rawValue] = try factorBuffer().raw
            let groups = try groupsProgram ?? CompiledProgram.load("llama_train.adamw_step_groups")
            groupsProgram = groups
            try groups.run(buffers: buffers, sizes: sizes)
        } else {
            try program.run(buffers: buffers, sizes: sizes)
        }
        return Double(scalars.floats[count])
    }

    /// `lr_factor` for `adamw_step_groups`: every float of a tensor holds its factor (1 in gaps).
    private func factorBuffer() throws -> AlignedBuffer {
        if factorLayout == layout { return factors }
        for (name, f) in learningRateFactors where !(f > 0 && f.isFinite) {
            throw RuntimeError("learning-rate factor of '\(name)' must be a positive number, got \(f)")
        }
        let buffer = AlignedBuffer(floats: max(layout.totalFloats, 1))
        for i in 0..<layout.totalFloats { buffer.floats[i] = 1 }
        for (name, f) in learningRateFactors {
            guard let o = layout.offsets[name], let n = layout.counts[name] else { continue }
            for i in o..<(o + n) { buffer.floats[i] = Float(f) }
        }
        (factors, factorLayout) = (buffer, layout)
        return buffer
    }

    /// The size bindings of a step (`N`: the trainable floats).
    public var sizes: [String: Int] { [OptimizerPrograms.length.syms[0]: trainableFloats] }

    /// The tensors whose moments checkpoints keep: every one (frozen ones included, so a
    /// different `trainable` set resumes), or with LoRA the adapters only (the base is frozen).
    private var stateNames: [String] { !parameters.adapted ? parameters.names : parameters.adapterNames }

    /// Optimizer state for checkpoints: `exp_avg.NAME`, `exp_avg_sq.NAME` (every tensor of
    /// `stateNames`) and `step`.
    public func state() -> [String: [Float]] {
        syncLayout()
        var s: [String: [Float]] = ["step": [Float(step)]]
        for name in stateNames {
            s["exp_avg.\(name)"] = slice(expAvg, name)
            s["exp_avg_sq.\(name)"] = slice(expAvgSq, name)
        }
        return s
    }

    /// Restores what `state()` returned.
    public func loadState(_ s: [String: [Float]]) throws {
        guard let st = s["step"]?.first else { throw RuntimeError("optimizer state lacks 'step'") }
        syncLayout()
        // Check every tensor before changing anything.
        var places: [(offset: Int, m: [Float], v: [Float])] = []
        for name in stateNames {
            guard let n = layout.counts[name], let offset = layout.offsets[name], let m = s["exp_avg.\(name)"],
                  let v = s["exp_avg_sq.\(name)"], m.count == n, v.count == n else {
                throw RuntimeError("optimizer state lacks or mis-sizes '\(name)'")
            }
            places.append((offset, m, v))
        }
        step = Int(st)
        for p in places {
            for (values, buffer) in [(p.m, expAvg), (p.v, expAvgSq)] {
                values.withUnsafeBufferPointer { v in
                    if let base = v.baseAddress { (buffer.floats + p.offset).update(from: base, count: v.count) }
                }
            }
        }
    }

    private func slice(_ buffer: AlignedBuffer, _ name: String) -> [Float]? {
        guard let o = layout.offsets[name], let n = layout.counts[name] else { return nil }
        return Array(UnsafeBufferPointer(start: buffer.floats + o, count: n))
    }
}

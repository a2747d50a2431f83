import Foundation
import KernelRuntime

/// One micro-batch as the compiled programs take it: `[batch, seq]` ids, next-token targets and a
/// 0/1 mask of supervised targets.
public struct TokenBatch: Sendable, Equatable {
    public var batch: Int
    public var seq: Int
    public var ids: [Int32]
    public var targets: [Int32]
    public var mask: [Float]
    public init(batch: Int, seq: Int, ids: [Int32], targets: [Int32], mask: [Float]) {
        self.batch = batch; self.seq = seq; self.ids = ids; self.targets = targets; self.mask = mask
    }

    /// Flat indices `b·seq + t` of the supervised positions (mask > 0).
    public var scored: [Int] { mask.indices.filter { mask[$0] > 0 } }
}

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

/// What one optimizer step did.
public struct StepResult: Sendable, Equatable {
    /// Mean token loss over the step's supervised tokens (all micro-batches).
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Supervised tokens in the step.
    public var tokens: Int
}

/// Language-model training on the compiled programs `llama_train.lm_step`,
/// `llama_train.grad_sumsq` and `llama_train.adamw`.
public final class LMTrainer: @unchecked Sendable {
    public let parameters: ParameterStore
    /// Parameters the optimizer updates; the others stay frozen.
    public var trainable: Set<String>
    public var optimizer: OptimizerSettings
    /// Optimizer steps taken (AdamW's t).
    public private(set) var step = 0

    var grads: [String: AlignedBuffer] = [:]
    private var expAvg: [String: AlignedBuffer] = [:]
    private var expAvgSq: [String: AlignedBuffer] = [:]
    /// The activations lm_step keeps between its forward and backward stages.
    private let saved = ScratchBuffers()
    let eps: AlignedBuffer
    let theta: AlignedBuffer
    private let lmStep: CompiledProgram
    private let evalLoss: CompiledProgram
    private let sumSquares: CompiledProgram
    private let adamw: CompiledProgram

    public init(parameters: ParameterStore, trainable: Set<String>? = nil, optimizer: OptimizerSettings = .init()) throws {
        self.parameters = parameters
        self.trainable = trainable ?? Set(parameters.names)
        self.optimizer = optimizer
        let c = parameters.config
        eps = AlignedBuffer(copying: [c.normEps])
        theta = AlignedBuffer(copying: [c.ropeTheta])
        lmStep = try CompiledProgram.load("llama_train.lm_step")
        evalLoss = try CompiledProgram.load("llama_train.eval_loss")
        sumSquares = try CompiledProgram.load("llama_train.grad_sumsq")
        adamw = try CompiledProgram.load("llama_train.adamw")
        for name in parameters.names {
            let n = parameters.counts[name] ?? 0
            grads[name] = AlignedBuffer(floats: n)
            expAvg[name] = AlignedBuffer(floats: n)
            expAvgSq[name] = AlignedBuffer(floats: n)
        }
        if c.tiedEmbeddings { grads["lm_head"] = grads["embed"] }
    }

    /// The sizes `lm_step` runs with for a `[batch, seq]` micro-batch.
    public func sizes(batch: Int, seq: Int) -> [String: Int] {
        var s = modelSizes
        s["B"] = batch; s["T"] = seq
        return s
    }

    /// The size bindings of one micro-batch for `lm_step` (`NS`: its supervised positions).
    public func sizes(_ b: TokenBatch) -> [String: Int] {
        var s = sizes(batch: b.batch, seq: b.seq)
        s["NS"] = b.scored.count
        return s
    }

    var modelSizes: [String: Int] {
        let c = parameters.config
        return ["L": c.nLayers, "KVH": c.nKVHeads, "REP": c.nHeads / c.nKVHeads,
                "HD2": c.headDim / 2, "F": c.hiddenDim, "V": c.vocabSize]
    }

    private func checkIds(_ b: TokenBatch) throws {
        let v = parameters.config.vocabSize
        if let bad = (b.ids + b.targets).first(where: { $0 < 0 || Int($0) >= v }) {
            throw RuntimeError("token id \(bad) is outside the vocabulary (0..<\(v))")
        }
    }

    /// Zeroes the gradient buffers.
    public func zeroGradients() {
        for name in parameters.names {
            if let g = grads[name] { memset(g.raw, 0, g.byteCount) }
        }
    }

    /// Runs forward and backward on every micro-batch, adding into the gradient buffers.
    /// Each token's loss weight is 1 / (supervised tokens of all `batches`), so gradients
    /// accumulated over micro-batches equal those of one big batch. Returns the mean loss.
    public func accumulateGradients(_ batches: [TokenBatch]) throws -> (loss: Double, tokens: Int) {
        let tokens = batches.reduce(0) { $0 + Int($1.mask.reduce(0, +)) }
        guard tokens > 0 else { return (0, 0) }
        var loss = 0.0
        for b in batches {
            try checkIds(b)
            // Only supervised positions go through the vocabulary projection; a micro-batch
            // without any adds nothing to the gradients.
            let scored = b.scored
            guard !scored.isEmpty else { continue }
            let ids = AlignedBuffer(copying: b.ids), rows = AlignedBuffer(copying: scored.map { Int32($0) })
            let targets = AlignedBuffer(copying: scored.map { b.targets[$0] })
            let weights = AlignedBuffer(copying: scored.map { b.mask[$0] / Float(tokens) })
            let out = AlignedBuffer(floats: 1)
            let sizes = self.sizes(b)
            var buffers = parameters.pointers
            for (name, g) in grads { buffers["grad_\(name)"] = g.raw }
            buffers["ids"] = ids.raw; buffers["scored"] = rows.raw; buffers["targets"] = targets.raw; buffers["weights"] = weights.raw
            buffers["norm_eps"] = eps.raw; buffers["rope_theta"] = theta.raw
            buffers["loss"] = out.raw
            for (name, p) in try saved.pointers(for: lmStep, sizes: sizes) { buffers[name] = p }
            try lmStep.run(buffers: buffers.compactMapValues { $0 }, sizes: sizes)
            loss += Double(out.floats[0])
        }
        return (loss, tokens)
    }

    /// The global L2 norm of the gradients of the trainable parameters.
    public func gradientNorm() throws -> Double {
        var total = 0.0
        let out = AlignedBuffer(floats: 1)
        for name in parameters.names where trainable.contains(name) {
            guard let g = grads[name], let n = parameters.counts[name] else { continue }
            try sumSquares.run(buffers: ["grad": g.raw, "sumsq": out.raw], sizes: ["N": n])
            total += Double(out.floats[0])
        }
        return total.squareRoot()
    }

    /// One AdamW update of every trainable parameter with learning rate `lr`, after clipping
    /// the global gradient norm. Returns the norm before clipping.
    @discardableResult
    public func applyOptimizer(lr: Double) throws -> Double {
        let norm = try gradientNorm()
        step += 1
        let o = optimizer
        let clip = o.maxGradNorm > 0 && norm > o.maxGradNorm ? o.maxGradNorm / (norm + 1e-6) : 1
        // The kernel forms 1 − β in float32 from the float32 β, exactly (Sterbenz), but that is not
        // 1 − β of the Double β: for β₂ = 0.999 it is 1.3e-5 smaller, and bias corrections from the
        // Double β made every update 6.4e-6 too large (8.3e-5 too small for β₂ = 0.9999). Bias corrections
        // from the same float32 β normalize the moving averages exactly (TorchGoldenTests).
        let (beta1, beta2) = (Float(o.beta1), Float(o.beta2))
        let scalars: [String: Float] = [
            "lr": Float(lr), "beta1": beta1, "beta2": beta2, "eps": Float(o.epsilon),
            "weight_decay": Float(o.weightDecay),
            "bias_correction1": Float(1 - pow(Double(beta1), Double(step))),
            "bias_correction2": Float(1 - pow(Double(beta2), Double(step))),
            "clip_scale": Float(clip),
        ]
        let scalarBuffers = scalars.mapValues { AlignedBuffer(copying: [$0]) }
        for name in parameters.names where trainable.contains(name) {
            guard let p = parameters.buffers[name], let g = grads[name], let m = expAvg[name], let v = expAvgSq[name],
                  let n = parameters.counts[name] else { continue }
            var buffers = scalarBuffers.mapValues(\.raw)
            buffers["param"] = p.raw; buffers["grad"] = g.raw; buffers["exp_avg"] = m.raw; buffers["exp_avg_sq"] = v.raw
            try adamw.run(buffers: buffers, sizes: ["N": n])
        }
        return norm
    }

    /// Gradients over `batches` (micro-batches of one step), then one optimizer update.
    public func trainStep(_ batches: [TokenBatch], lr: Double) throws -> StepResult {
        zeroGradients()
        let (loss, tokens) = try accumulateGradients(batches)
        let norm = try applyOptimizer(lr: lr)
        return StepResult(loss: loss, gradNorm: norm, tokens: tokens)
    }

    /// Sum of the token NLL over supervised targets of `batch`, and their count.
    public func evaluate(_ batch: TokenBatch) throws -> (sum: Double, tokens: Int) {
        try checkIds(batch)
        let ids = AlignedBuffer(copying: batch.ids), targets = AlignedBuffer(copying: batch.targets)
        let out = AlignedBuffer(floats: batch.batch * batch.seq)
        var buffers = parameters.pointers
        buffers["ids"] = ids.raw; buffers["targets"] = targets.raw
        buffers["norm_eps"] = eps.raw; buffers["rope_theta"] = theta.raw; buffers["nll"] = out.raw
        var sizes = modelSizes
        sizes["B"] = batch.batch; sizes["T"] = batch.seq
        try evalLoss.run(buffers: buffers, sizes: sizes)
        var sum = 0.0, n = 0
        for (i, m) in batch.mask.enumerated() where m > 0 { sum += Double(out.floats[i]); n += 1 }
        return (sum, n)
    }

    /// The compiled programs (lm_step first), for profiling.
    public var programs: [CompiledProgram] { [lmStep, evalLoss, sumSquares, adamw] }

    /// A copy of a gradient buffer (for tests and diagnostics).
    public func gradient(_ name: String) -> [Float]? {
        guard let g = grads[name], let n = parameters.counts[name] else { return nil }
        return g.floatArray(n)
    }

    /// Optimizer state for checkpoints: `exp_avg.NAME`, `exp_avg_sq.NAME` and `step`.
    public func optimizerState() -> [String: [Float]] {
        var s: [String: [Float]] = ["step": [Float(step)]]
        for name in parameters.names {
            guard let n = parameters.counts[name] else { continue }
            s["exp_avg.\(name)"] = expAvg[name]?.floatArray(n)
            s["exp_avg_sq.\(name)"] = expAvgSq[name]?.floatArray(n)
        }
        return s
    }

    /// Restores what `optimizerState()` returned.
    public func loadOptimizerState(_ s: [String: [Float]]) throws {
        guard let st = s["step"]?.first else { throw RuntimeError("optimizer state lacks 'step'") }
        step = Int(st)
        for name in parameters.names {
            guard let n = parameters.counts[name], let m = s["exp_avg.\(name)"], let v = s["exp_avg_sq.\(name)"],
                  m.count == n, v.count == n, let mb = expAvg[name], let vb = expAvgSq[name] else {
                throw RuntimeError("optimizer state lacks or mis-sizes '\(name)'")
            }
            m.withUnsafeBufferPointer { mb.floats.update(from: $0.baseAddress.unsafelyUnwrapped, count: n) }
            v.withUnsafeBufferPointer { vb.floats.update(from: $0.baseAddress.unsafelyUnwrapped, count: n) }
        }
    }
}

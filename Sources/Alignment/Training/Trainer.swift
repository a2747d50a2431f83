import Foundation
import KernelRuntime
import LlamaGraphs

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

/// What one optimizer step did.
public struct StepResult: Sendable, Equatable {
    /// Mean token loss over the step's supervised tokens (all micro-batches).
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Double
    /// Supervised tokens in the step.
    public var tokens: Int
    /// Mean entropy of the predicted distribution over the supervised tokens (TRL's `entropy`).
    public var entropy = 0.0
    /// Share of supervised tokens whose target is the arg max (TRL's `mean_token_accuracy`).
    public var accuracy = 0.0
}

/// Language-model training on the compiled programs `llama_train.lm_step` (forward, loss and
/// backward into the optimizer's gradient buffers) and `llama_train.eval_loss`; `optimizer`
/// owns the gradients and moments and applies AdamW.
public final class LMTrainer: @unchecked Sendable {
    public let parameters: ParameterStore
    /// The mean entropy and arg-max accuracy of the last `accumulateGradients` (`lm_step`'s `entropy`, `accuracy`).
    public private(set) var lastTokenStats: (entropy: Double, accuracy: Double) = (0, 0)
    /// The optimizer over `parameters`: gradients, moments, clipping and the AdamW step.
    public let optimizer: AdamW
    /// Scored rows projected onto the vocabulary at a time by `lm_step` (and the DPO programs
    /// of a `DPOTrainer` over this policy): `LlamaSizes.chunkRows(vocab:)` (at most 16 MiB of
    /// logits) by default. Results do not depend on it beyond float rounding.
    public var chunkRows: Int
    /// The activations lm_step keeps between its forward and backward stages.
    private let saved = ScratchBuffers()
    private let lmStep: CompiledProgram
    private let evalLoss: CompiledProgram
    /// Mixed precision (`bf16: true`): the step runs `lm_step_bf16` (`MixedPrecision`).
    public let bf16: Bool
    /// The seed of the LoRA dropout masks (the run's `seed`); each micro-batch's masks are drawn
    /// from it, the optimizer step and the micro-batch's index (`LoRAConfig.dropoutKeys`).
    public var dropoutSeed: UInt64 = 0
    /// `prefix_encode` and `prefix_encode_backward` for a reparameterized prefix, else nil.
    private let encoder: (forward: CompiledProgram, backward: CompiledProgram)?

    /// With a store that holds LoRA adapters (`parameters.lora`), the steps run
    /// `lm_step_lora`/`eval_loss_lora` and only adapters train: `trainable` defaults to the
    /// targets' `A` and `B` and may name nothing else (the base model is frozen). With
    /// `lora.dropout` > 0 the step is `lm_step_lora_dropout` (evaluation stays without dropout);
    /// with `lora.plusScale` ≠ 1 the `B` matrices learn at `lr · plusScale` (LoRA+).
    /// With a prefix (`parameters.prefix`) the steps run `lm_step_prefix`/`eval_loss_prefix`
    /// and only `prefix_kv` trains.
    /// With `bf16`, the step's products run in bf16 with float32 accumulation (`lm_step_bf16`).
    public init(parameters: ParameterStore, trainable: Set<String>? = nil, optimizer: OptimizerSettings = .init(), bf16: Bool = false) throws {
        try MixedPrecision.check(bf16: bf16, parameters: parameters)
        self.parameters = parameters
        self.bf16 = bf16
        var trainable = trainable
        if parameters.adapted {
            let adapters = Set(parameters.adapterNames)
            if let extra = trainable?.subtracting(adapters), !extra.isEmpty {
                let kind = parameters.lora != nil ? "LoRA only adapters train" : "prefix tuning only prefix_kv trains"
                throw RuntimeError("with \(kind); \(extra.sorted().joined(separator: ", ")) belong to the frozen base model")
            }
            trainable = trainable ?? Set(parameters.trainableAdapterNames)
        }
        self.optimizer = try AdamW(parameters: parameters, trainable: trainable, settings: optimizer)
        if let lora = parameters.lora { self.optimizer.learningRateFactors = lora.learningRateFactors }
        chunkRows = LlamaSizes.chunkRows(vocab: parameters.config.vocabSize)
        let suffix = parameters.programSuffix
        let dropout = (parameters.lora?.dropout ?? 0) > 0 ? "_dropout" : ""
        lmStep = try CompiledProgram.load("llama_train.lm_step" + suffix + dropout + MixedPrecision.suffix(bf16: bf16))
        evalLoss = try CompiledProgram.load("llama_train.eval_loss" + suffix)
        encoder = parameters.prefix?.projection == nil ? nil
            : (try CompiledProgram.load("llama_train.prefix_encode"), try CompiledProgram.load("llama_train.prefix_encode_backward"))
        try encodePrefix()
    }

    /// With a reparameterized prefix: `prefix_kv` from the MLP (`prefix_encode`), before the
    /// programs read it. Nothing otherwise.
    public func encodePrefix() throws {
        guard let encoder else { return }
        try encoder.forward.run(buffers: parameters.pointers, sizes: sizes(batch: 1, seq: 1))
    }

    /// With a reparameterized prefix: the MLP's gradients from the `grad_prefix_kv` the steps
    /// added up (`prefix_encode_backward`), before the optimizer reads them. Nothing otherwise.
    public func backPropagatePrefix() throws {
        guard let encoder else { return }
        let buffers = parameters.pointers.merging(optimizer.gradientPointers()) { a, _ in a }
        try encoder.backward.run(buffers: buffers, sizes: sizes(batch: 1, seq: 1))
    }

    /// The sizes `lm_step` runs with for a `[batch, seq]` micro-batch.
    public func sizes(batch: Int, seq: Int) -> [String: Int] {
        bound(LlamaSizes(config: parameters.config, batch: batch, seq: seq))
    }

    /// The size bindings of one micro-batch for `lm_step` (`NS`: its supervised positions).
    public func sizes(_ b: TokenBatch) -> [String: Int] {
        bound(LlamaSizes(config: parameters.config, batch: b.batch, seq: b.seq, scored: paddedRows(b.scored.count), chunkRows: chunkRows))
    }

    /// `rows` scored rows padded, when more than one chunk, to a multiple of `chunkRows`.
    func paddedRows(_ rows: Int) -> Int {
        let c = max(chunkRows, 1)
        return rows > c ? (rows + c - 1) / c * c : rows
    }

    /// `sizes`' bindings with the adapters' rank `R` (LoRA) or the prefix length `P` (prefix).
    private func bound(_ sizes: LlamaSizes) -> [String: Int] { parameters.programSizes(sizes) }

    private func checkIds(_ b: TokenBatch) throws {
        let v = parameters.config.vocabSize
        if let bad = (b.ids + b.targets).first(where: { $0 < 0 || Int($0) >= v }) {
            throw RuntimeError("token id \(bad) is outside the vocabulary (0..<\(v))")
        }
    }

    /// Supervised tokens of `batches` (their masks' sum).
    static func supervisedTokens(_ batches: [TokenBatch]) -> Int {
        batches.reduce(0) { $0 + Int($1.mask.reduce(0, +)) }
    }

    /// Runs forward and backward on every micro-batch, adding into the gradient buffers.
    /// Each token's loss weight is 1 / `tokens` (default: the supervised tokens of all
    /// `batches`), so gradients accumulated over micro-batches equal those of one big batch.
    /// Returns the loss summed over `batches` (the mean when `tokens` is theirs).
    public func accumulateGradients(_ batches: [TokenBatch], tokens: Int? = nil) throws -> (loss: Double, tokens: Int) {
        let tokens = tokens ?? Self.supervisedTokens(batches)
        guard tokens > 0 else { lastTokenStats = (0, 0); return (0, 0) }
        try encodePrefix()
        var loss = 0.0, entropy = 0.0, accuracy = 0.0
        let dropout = LoRADropoutInputs(parameters.lora, seed: dropoutSeed, step: optimizer.step)
        for (micro, b) in batches.enumerated() {
            try checkIds(b)
            // Only supervised positions go through the vocabulary projection; a micro-batch
            // without any adds nothing to the gradients.
            let scored = b.scored
            guard !scored.isEmpty else { continue }
            // lm_step projects the rows in chunks of `chunkRows`: pad to a multiple of it with
            // weight-0 rows (row 0, target 0) so the chunks are full (`LlamaSizes.chunking`).
            let pad = paddedRows(scored.count) - scored.count
            let ids = AlignedBuffer(copying: b.ids)
            let rows = AlignedBuffer(copying: scored.map { Int32($0) } + Array(repeating: 0, count: pad))
            let targets = AlignedBuffer(copying: scored.map { b.targets[$0] } + Array(repeating: 0, count: pad))
            let weights = AlignedBuffer(copying: scored.map { b.mask[$0] / Float(tokens) } + Array(repeating: 0, count: pad))
            let out = AlignedBuffer(floats: 1)
            let sizes = self.sizes(b)
            var buffers = parameters.pointers.merging(optimizer.gradientPointers()) { a, _ in a }
            buffers["ids"] = ids.raw; buffers["scored"] = rows.raw; buffers["targets"] = targets.raw; buffers["weights"] = weights.raw
            buffers["loss"] = out.raw
            // Step means like the loss (the weights are mask / the step's tokens).
            let ent = AlignedBuffer(floats: 1), acc = AlignedBuffer(floats: 1)
            buffers["entropy"] = ent.raw; buffers["accuracy"] = acc.raw
            for (name, p) in try saved.pointers(for: lmStep, sizes: sizes) { buffers[name] = p }
            let masks = dropout?.buffers(micro: micro, layers: parameters.config.nLayers)
            for (name, buffer) in masks ?? [:] { buffers[name] = buffer.raw }
            try withExtendedLifetime(masks) { try lmStep.run(buffers: buffers, sizes: sizes) }
            loss += Double(out.floats[0])
            entropy += Double(ent.floats[0]); accuracy += Double(acc.floats[0])
        }
        try backPropagatePrefix()
        lastTokenStats = (entropy, accuracy)
        return (loss, tokens)
    }

    /// Gradients over `batches` (micro-batches of one step), then one optimizer update.
    ///
    /// In a data-parallel job every rank passes the same `batches` (the whole global batch) and
    /// runs forward and backward on its share (`World.share`); the loss is normalized by the
    /// global count of supervised tokens and the gradients are summed over the ranks before the
    /// update, so N ranks take the step one rank would take over all the micro-batches.
    public func trainStep(_ batches: [TokenBatch], lr: Double) throws -> StepResult {
        optimizer.zeroGradients()
        let tokens = Self.supervisedTokens(batches)
        var (loss, _) = try accumulateGradients(World.share(batches), tokens: tokens)
        if World.size > 1 {
            try optimizer.sumGradientsOverRanks()
            let sums = try World.sum([loss, lastTokenStats.entropy, lastTokenStats.accuracy])
            loss = sums[0]
            lastTokenStats = (sums[1], sums[2])
        }
        let norm = try optimizer.apply(lr: lr)
        return StepResult(loss: loss, gradNorm: norm, tokens: tokens, entropy: lastTokenStats.entropy, accuracy: lastTokenStats.accuracy)
    }

    /// Sum of the token NLL over supervised targets of `batch`, and their count.
    public func evaluate(_ batch: TokenBatch) throws -> (sum: Double, tokens: Int) {
        try checkIds(batch)
        let scored = batch.scored
        guard !scored.isEmpty else { return (0, 0) }
        try encodePrefix()
        // Only supervised positions reach the vocabulary, `chunkRows` at a time (padded with
        // row 0, target 0, whose NLL is not read), as in `lm_step`.
        let pad = paddedRows(scored.count) - scored.count
        let ids = AlignedBuffer(copying: batch.ids)
        let rows = AlignedBuffer(copying: scored.map { Int32($0) } + Array(repeating: 0, count: pad))
        let targets = AlignedBuffer(copying: scored.map { batch.targets[$0] } + Array(repeating: 0, count: pad))
        let out = AlignedBuffer(floats: scored.count + pad)
        var buffers = parameters.pointers
        buffers["ids"] = ids.raw; buffers["scored"] = rows.raw; buffers["targets"] = targets.raw; buffers["nll"] = out.raw
        try evalLoss.run(buffers: buffers, sizes: sizes(batch))
        let sum = UnsafeBufferPointer(start: out.floats, count: scored.count).reduce(0.0) { $0 + Double($1) }
        return (sum, scored.count)
    }

    /// The compiled programs (lm_step first, the optimizer's step last), for profiling.
    public var programs: [CompiledProgram] { [lmStep, evalLoss] + (encoder.map { [$0.forward, $0.backward] } ?? []) + [optimizer.program] }
}

/// The optimizer's API, forwarded for convenience.
extension LMTrainer {
    /// Parameters the optimizer updates; the others stay frozen.
    public var trainable: Set<String> {
        get { optimizer.trainable }
        set { optimizer.trainable = newValue }
    }

    /// Optimizer steps taken (AdamW's t).
    public var step: Int { optimizer.step }

    /// Zeroes the gradient buffers.
    public func zeroGradients() { optimizer.zeroGradients() }

    /// The global L2 norm of the gradients of the trainable parameters.
    public func gradientNorm() throws -> Double { optimizer.gradientNorm() }

    /// One AdamW update of every trainable parameter with learning rate `lr`, after clipping
    /// the global gradient norm. Returns the norm before clipping.
    @discardableResult
    public func applyOptimizer(lr: Double) throws -> Double { try optimizer.apply(lr: lr) }

    /// A copy of a gradient buffer (for tests and diagnostics).
    public func gradient(_ name: String) -> [Float]? { optimizer.gradient(name) }

    /// Optimizer state for checkpoints: `exp_avg.NAME`, `exp_avg_sq.NAME` and `step`.
    public func optimizerState() -> [String: [Float]] { optimizer.state() }

    /// Restores what `optimizerState()` returned.
    public func loadOptimizerState(_ s: [String: [Float]]) throws { try optimizer.loadState(s) }
}

import Foundation
import KernelRuntime
import LlamaGraphs

/// DPO hyper-parameters (PaddleNLP's names in the argument file).
public struct DPOSettings: Sendable, Equatable {
    public var beta = 0.1
    public var lossTypes: [DPOLossType] = [.sigmoid]
    /// One weight per entry of `lossTypes` (default all 1).
    public var lossWeights: [Double]? = nil
    public var labelSmoothing = 0.0
    public var simpoGamma = 0.5
    public var dpopLambda = 50.0
    public var prefLossRatio = 1.0
    public var sftLossRatio = 0.0
    public var referenceFree = false

    public init() {}

    /// The value a DPO program's scalar input takes.
    public func value(_ scalar: DPOScalar) -> Double {
        switch scalar {
        case .beta: beta
        case .labelSmoothing: labelSmoothing
        case .simpoGamma: simpoGamma
        case .dpopLambda: dpopLambda
        case .prefLossRatio: prefLossRatio
        case .sftLossRatio: sftLossRatio
        }
    }

    /// The DPO fields of an argument file (`beta`, `loss_type`, `loss_weights`, …), validated.
    public init(arguments args: TrainingArguments) throws {
        beta = args.beta
        lossTypes = try args.lossType.map { name in
            guard let t = DPOLossType(name: name) else {
                let all = DPOLossType.allCases.map(\.rawValue)
                let guess = closest(to: name, in: all)
                let shown = name.count > 64 ? name.prefix(64) + "…" : name
                let near = editDistance(guess, String(name.prefix(64))) <= max(2, min(name.count, 64) / 4)
                throw RuntimeError("loss_type '\(shown)' is not supported" + (near ? "; did you mean '\(guess)'?" : "")
                                   + " (supported: \(all.joined(separator: ", ")))")
            }
            return t
        }
        lossWeights = args.lossWeights
        labelSmoothing = args.labelSmoothing
        simpoGamma = args.simpoGamma
        dpopLambda = args.dpopLambda
        prefLossRatio = args.prefLossRatio
        sftLossRatio = args.sftLossRatio
        referenceFree = args.referenceFree
        try validate()
    }

    /// Checks the combination, naming what is wrong.
    public func validate() throws {
        if let w = lossWeights, w.count != lossTypes.count {
            throw RuntimeError("loss_weights has \(w.count) entries for \(lossTypes.count) loss types")
        }
        if lossTypes.isEmpty { throw RuntimeError("loss_type is empty") }
        if referenceFree, let t = lossTypes.first(where: { !$0.referenceFree }) {
            throw RuntimeError("reference_free is set but loss_type '\(t.rawValue)' needs a reference model (reference-free losses: simpo, orpo, sft)")
        }
        if beta <= 0 { throw RuntimeError("beta must be > 0, got \(beta)") }
        if labelSmoothing < 0 || labelSmoothing >= 0.5 { throw RuntimeError("label_smoothing must be in [0, 0.5), got \(labelSmoothing)") }
    }

    /// The `loss_weights` vector the programs take: one entry per `DPOLossType.allCases`.
    var weightVector: [Float] {
        var w = [Float](repeating: 0, count: DPOLossType.allCases.count)
        for (i, t) in lossTypes.enumerated() { w[t.index] += Float(lossWeights?[i] ?? 1) }
        return w
    }

    /// True when no loss reads the reference log-probs.
    public var needsReference: Bool { !referenceFree && lossTypes.contains { !$0.referenceFree } }
}

/// The summed log-probs of both sides of each pair in a batch.
public struct PairLogps: Sendable, Equatable, Codable {
    public var chosen: [Float]
    public var rejected: [Float]
    public init(chosen: [Float], rejected: [Float]) { self.chosen = chosen; self.rejected = rejected }
}

/// DPO training on the compiled `llama_dpo` programs: policy gradients accumulate into the
/// gradient buffers of the policy's optimizer (`policy.optimizer`), which then applies AdamW.
public final class DPOTrainer: @unchecked Sendable {
    public let policy: LMTrainer
    /// The live reference model (a frozen copy of the starting policy, or another model).
    public private(set) var reference: ParameterStore?
    public var settings: DPOSettings
    private let logpsProgram: CompiledProgram
    /// `dpo_logps_lora` / `dpo_logps_prefix` when the policy holds LoRA adapters or a prefix
    /// (its own log-probs), else nil.
    private let adaptedLogpsProgram: CompiledProgram?
    private let stepProgram: CompiledProgram
    /// The activations dpo_step keeps between its forward and backward stages.
    private let saved = ScratchBuffers()

    /// With a LoRA policy (`policy.parameters.lora`), only its adapters train (`dpo_step_lora`)
    /// and, when `reference` is nil, the reference is the same weights with the adapters switched
    /// off (the base model: no second copy in memory). With `lora.dropout` > 0 the step is
    /// `dpo_step_lora_dropout`, seeded by `policy.dropoutSeed`; log-probs (reference, evaluation)
    /// never drop out. A prefix policy likewise (`dpo_step_prefix`, only `prefix_kv` trains; the
    /// reference is the model without the prefix).
    public init(policy: LMTrainer, reference: ParameterStore?, settings: DPOSettings) throws {
        try settings.validate()
        if let reference {
            // The reference runs the policy's programs at the policy's sizes: its shape must be the same.
            let p = policy.parameters.config, r = reference.config
            let shape = { (c: LlamaConfig) in [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKVHeads, c.vocabSize] }
            guard shape(p) == shape(r) else {
                throw RuntimeError("the reference model's shape differs from the policy's (dim, hidden, layers, heads, kv heads, vocabulary: "
                                   + "\(shape(r)) against \(shape(p))); DPO needs the same architecture and vocabulary")
            }
        }
        self.policy = policy
        self.reference = reference
        self.settings = settings
        let suffix = policy.parameters.programSuffix
        // (with a bf16 policy, its steps and every log-prob run the bf16 programs)
        let precision = MixedPrecision.suffix(bf16: policy.bf16)
        logpsProgram = try CompiledProgram.load("llama_dpo.dpo_logps" + precision)
        adaptedLogpsProgram = suffix.isEmpty ? nil : try CompiledProgram.load("llama_dpo.dpo_logps" + suffix + precision)
        let dropout = (policy.parameters.lora?.dropout ?? 0) > 0 ? "_dropout" : ""
        stepProgram = try CompiledProgram.load("llama_dpo.dpo_step" + suffix + dropout + precision)
    }

    private func rowBuffers(_ b: PairBatch) -> [String: AlignedBuffer] {
        let inputs = programInputs(b)
        return inputs.ints.mapValues { AlignedBuffer(copying: $0) }.merging(inputs.floats.mapValues { AlignedBuffer(copying: $0) }) { a, _ in a }
    }

    /// The compiled programs (the reference/eval log-probs, then the step), for profiling.
    public var programs: [CompiledProgram] { [logpsProgram] + (adaptedLogpsProgram.map { [$0] } ?? []) + [stepProgram] }

    /// The programs' inputs of a batch, its scored rows padded to full chunks.
    private func programInputs(_ b: PairBatch) -> (ints: [String: [Int32]], floats: [String: [Float]], scored: Int) {
        b.programInputs(chunkRows: policy.chunkRows)
    }

    /// The size bindings of a batch (with the adapters' rank `R` for a LoRA policy, the prefix
    /// length `P` for a prefix one).
    public func sizes(_ b: PairBatch) -> [String: Int] {
        policy.parameters.programSizes(LlamaSizes(config: policy.parameters.config, batch: b.batch, seq: b.seq, scored: programInputs(b).scored,
                                                  chunkRows: policy.chunkRows))
    }

    private func checkIds(_ b: PairBatch) throws {
        let v = policy.parameters.config.vocabSize
        if let bad = (b.ids + b.chosenTargets + b.rejectedTargets).first(where: { $0 < 0 || Int($0) >= v }) {
            throw RuntimeError("token id \(bad) is outside the vocabulary (0..<\(v))")
        }
    }

    /// Log-probs of both sides under `store` (forward only), through its LoRA adapters when it
    /// holds them and `adapters` is true (the policy), else the base model alone.
    public func logps(_ b: PairBatch, under store: ParameterStore, adapters: Bool = true) throws -> (logps: PairLogps, logitSums: PairLogps) {
        try checkIds(b)
        var keep = rowBuffers(b)
        for o in ["logps_chosen", "logps_rejected", "logits_chosen", "logits_rejected"] { keep[o] = AlignedBuffer(floats: b.batch) }
        var bufs = store.pointers
        for (k, v) in keep { bufs[k] = v.raw }
        let adapted = adapters && store.adapted && store === policy.parameters
        if adapted { try policy.encodePrefix() }
        let program = adapted ? adaptedLogpsProgram ?? logpsProgram : logpsProgram
        try program.run(buffers: bufs, sizes: sizes(b))
        func get(_ n: String) -> [Float] { keep[n]?.floatArray(b.batch) ?? [] }
        return (PairLogps(chosen: get("logps_chosen"), rejected: get("logps_rejected")),
                PairLogps(chosen: get("logits_chosen"), rejected: get("logits_rejected")))
    }

    /// Reference log-probs from the live reference (zeros when no loss needs one).
    public func referenceLogps(_ b: PairBatch) throws -> PairLogps {
        guard settings.needsReference else { return PairLogps(chosen: .init(repeating: 0, count: b.batch), rejected: .init(repeating: 0, count: b.batch)) }
        if reference == nil, policy.parameters.adapted { return try logps(b, under: policy.parameters, adapters: false).logps }
        guard let reference else { throw RuntimeError("this loss needs a reference model, and none is loaded") }
        return try logps(b, under: reference).logps
    }

    /// Copies the policy's current weights into the reference (`ref_model_update_steps`).
    /// A LoRA policy's reference is its base model, which never changes: an error.
    public func updateReference() throws {
        if reference == nil, policy.parameters.adapted {
            throw RuntimeError("ref_model_update_steps: with \(policy.parameters.lora != nil ? "LoRA" : "prefix tuning") the reference is the frozen base model and cannot be updated")
        }
        if let reference { try reference.load(policy.parameters.weights()) }
    }

    /// Every DPO metric of one step, averaged over its pairs (formats.md names).
    public typealias Metrics = [String: Double]

    /// Runs the policy forward/backward on every micro-batch (with the given reference
    /// log-probs, or the live reference's), then one AdamW step. Returns the metrics.
    ///
    /// In a data-parallel job every rank passes the whole global batch and runs its share
    /// (`World.share`); pairs are weighted by the global pair count, and the gradients and the
    /// metric sums are added up over the ranks before the update.
    public func step(_ batches: [PairBatch], references: [PairLogps]? = nil, lr: Double) throws -> Metrics {
        policy.optimizer.zeroGradients()
        let pairs = batches.reduce(0) { $0 + $1.batch }
        guard pairs > 0 else { return [:] }
        try policy.encodePrefix()
        var acc = try accumulate(World.share(batches), references: references.map { World.share($0) }, pairs: pairs)
        try policy.backPropagatePrefix()
        if World.size > 1 {
            try policy.optimizer.sumGradientsOverRanks()
            try acc.sumOverRanks()
        }
        var m = acc.metrics(pairs: pairs, types: settings.lossTypes)
        m["grad_norm"] = try policy.optimizer.apply(lr: lr)
        return m
    }

    /// Forward, loss and backward over the micro-batches, with each pair weighted 1/pairs.
    func accumulate(_ batches: [PairBatch], references: [PairLogps]?, pairs: Int) throws -> MetricSums {
        let s = settings
        let k = DPOLossType.allCases.count
        var acc = MetricSums(k: k)
        let dropout = LoRADropoutInputs(policy.parameters.lora, seed: policy.dropoutSeed, step: policy.optimizer.step)
        for (i, b) in batches.enumerated() {
            try checkIds(b)
            let ref = try references?[i] ?? referenceLogps(b)
            var keep = rowBuffers(b)
            keep["ref_chosen"] = AlignedBuffer(copying: ref.chosen); keep["ref_rejected"] = AlignedBuffer(copying: ref.rejected)
            keep["pair_weight"] = AlignedBuffer(copying: [Float](repeating: 1 / Float(pairs), count: b.batch))
            keep["loss_weights"] = AlignedBuffer(copying: s.weightVector)
            for scalar in DPOScalar.allCases { keep[scalar.rawValue] = AlignedBuffer(copying: [Float(s.value(scalar))]) }
            keep["loss"] = AlignedBuffer(floats: 1)
            for (name, buffer) in dropout?.buffers(micro: i, layers: policy.parameters.config.nLayers) ?? [:] { keep[name] = buffer }
            keep["losses"] = AlignedBuffer(floats: k * b.batch)
            for o in ["logps_chosen", "logps_rejected", "logits_chosen", "logits_rejected"] { keep[o] = AlignedBuffer(floats: b.batch) }
            var bufs = policy.parameters.pointers.merging(policy.optimizer.gradientPointers()) { a, _ in a }
            for (n, v) in keep { bufs[n] = v.raw }
            for (name, p) in try saved.pointers(for: stepProgram, sizes: sizes(b)) { bufs[name] = p }
            try stepProgram.run(buffers: bufs, sizes: sizes(b))
            func get(_ n: String, _ count: Int) -> [Float] { keep[n]?.floatArray(count) ?? [] }
            acc.loss += Double(get("loss", 1)[0])
            acc.add(b, pc: get("logps_chosen", b.batch), pr: get("logps_rejected", b.batch), ref: ref,
                    losses: get("losses", k * b.batch),
                    logits: PairLogps(chosen: get("logits_chosen", b.batch), rejected: get("logits_rejected", b.batch)), beta: s.beta)
        }
        return acc
    }
    /// The loss and metrics at the current weights, forward only: the policy's log-probs,
    /// the reference's, then the loss family on them (`llama_dpo.dpo_loss`). Batches are shared
    /// out over the ranks of a data-parallel job and the sums added up.
    public func evaluate(_ batches: [PairBatch], references: [PairLogps]? = nil) throws -> Metrics {
        let pairs = batches.reduce(0) { $0 + $1.batch }
        guard pairs > 0 else { return [:] }
        let s = settings, k = DPOLossType.allCases.count
        let lossProgram = try CompiledProgram.load("llama_dpo.dpo_loss")
        var acc = MetricSums(k: k)
        for (i, b) in batches.enumerated() where World.owns(i) {
            let (p, logits) = try logps(b, under: policy.parameters)
            let ref = try references?[i] ?? referenceLogps(b)
            var keep: [String: AlignedBuffer] = [
                "logps_chosen": AlignedBuffer(copying: p.chosen), "logps_rejected": AlignedBuffer(copying: p.rejected),
                "ref_chosen": AlignedBuffer(copying: ref.chosen), "ref_rejected": AlignedBuffer(copying: ref.rejected),
                "len_chosen": AlignedBuffer(copying: b.lengths.chosen), "len_rejected": AlignedBuffer(copying: b.lengths.rejected),
                "pair_weight": AlignedBuffer(copying: [Float](repeating: 1 / Float(pairs), count: b.batch)),
                "loss_weights": AlignedBuffer(copying: s.weightVector),
                "losses": AlignedBuffer(floats: k * b.batch), "loss": AlignedBuffer(floats: 1),
                "d_chosen": AlignedBuffer(floats: b.batch), "d_rejected": AlignedBuffer(floats: b.batch),
            ]
            for scalar in DPOScalar.allCases where scalar != .prefLossRatio && scalar != .sftLossRatio {
                keep[scalar.rawValue] = AlignedBuffer(copying: [Float(s.value(scalar))])
            }
            try lossProgram.run(buffers: keep.mapValues(\.raw), sizes: LlamaSizes(config: policy.parameters.config, batch: b.batch).bindings)
            let losses = keep["losses"]?.floatArray(k * b.batch) ?? []
            // The ratios mix the preference and SFT terms exactly as dpo_step does.
            let pref = Double(keep["loss"]?.floats[0] ?? 0)
            let lengths = b.lengths
            let sft = (0..<b.batch).reduce(0.0) { $0 - Double(p.chosen[$1]) / Double(max(lengths.chosen[$1], 1)) } / Double(pairs)
            acc.loss += s.prefLossRatio * pref + s.sftLossRatio * sft
            acc.add(b, pc: p.chosen, pr: p.rejected, ref: ref, losses: losses, logits: logits, beta: s.beta)
        }
        try acc.sumOverRanks()
        return acc.metrics(pairs: pairs, types: s.lossTypes)
    }
}

/// Running sums of the per-pair DPO metrics.
struct MetricSums {
    var k: Int
    var loss = 0.0
    var sums: [String: Double] = [:]
    var lossTerms: [Double]
    var chosenTokens = 0.0, rejectedTokens = 0.0

    init(k: Int) { self.k = k; lossTerms = Array(repeating: 0, count: k) }

    mutating func add(_ b: PairBatch, pc: [Float], pr: [Float], ref: PairLogps, losses: [Float], logits: PairLogps, beta: Double) {
        for row in 0..<b.batch {
            let cr = beta * (Double(pc[row]) - Double(ref.chosen[row])), rj = beta * (Double(pr[row]) - Double(ref.rejected[row]))
            sums["rewards/chosen", default: 0] += cr
            sums["rewards/rejected", default: 0] += rj
            sums["rewards/accuracies", default: 0] += cr > rj ? 1 : 0
            sums["rewards/margins", default: 0] += cr - rj
            sums["logps/chosen", default: 0] += Double(pc[row])
            sums["logps/rejected", default: 0] += Double(pr[row])
            for t in 0..<k { lossTerms[t] += Double(losses[t * b.batch + row]) }
            let n = Double(b.lengths.chosen[row])
            sums["sft_loss", default: 0] += n > 0 ? -Double(pc[row]) / n : 0
        }
        sums["logits/chosen", default: 0] += logits.chosen.reduce(0) { $0 + Double($1) }
        sums["logits/rejected", default: 0] += logits.rejected.reduce(0) { $0 + Double($1) }
        chosenTokens += Double(b.chosenMask.reduce(0, +)); rejectedTokens += Double(b.rejectedMask.reduce(0, +))
    }

    /// The per-pair sums each rank kept, in a fixed order for the all-reduce.
    static let keys = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected",
                       "sft_loss", "logits/chosen", "logits/rejected"]

    /// Adds up every rank's sums (a no-op with one rank).
    mutating func sumOverRanks() throws {
        guard World.size > 1 else { return }
        let flat = [loss, chosenTokens, rejectedTokens] + Self.keys.map { sums[$0] ?? 0 } + lossTerms
        let total = try World.sum(flat)
        (loss, chosenTokens, rejectedTokens) = (total[0], total[1], total[2])
        for (i, key) in Self.keys.enumerated() { sums[key] = total[3 + i] }
        lossTerms = Array(total[(3 + Self.keys.count)...])
    }

    func metrics(pairs: Int, types: [DPOLossType]) -> DPOTrainer.Metrics {
        var m: DPOTrainer.Metrics = ["loss": loss]
        for key in ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"] {
            m[key] = (sums[key] ?? 0) / Double(pairs)
        }
        m["logits/chosen"] = (sums["logits/chosen"] ?? 0) / max(chosenTokens, 1)
        m["logits/rejected"] = (sums["logits/rejected"] ?? 0) / max(rejectedTokens, 1)
        for t in Set(types) { m["\(t.rawValue)_loss"] = lossTerms[t.index] / Double(pairs) }
        m["sft_loss"] = (sums["sft_loss"] ?? 0) / Double(pairs)
        return m
    }
}

import Foundation
import KernelRuntime
import LlamaGraphs

/// What a finished DPO run reports.
public struct DPOSummary: Sendable {
    public var steps: Int
    public var evalBefore: DPOTrainer.Metrics?
    public var evalAfter: DPOTrainer.Metrics?
    public var lastTrain: DPOTrainer.Metrics?
    public var data: PairDatasetSummary
    public var outputDir: String
}

/// DPO from an argument file: the policy starts from `model_name_or_path` (normally the SFT
/// model); the reference is a frozen copy of it, `ref_model_name_or_path`, or none
/// (`reference_free`); `precompute_ref_log_probs` computes the reference log-probs once and
/// caches them in `output_dir` under a hash of model, data and settings.
public struct DPORun {
    public let args: TrainingArguments
    /// Where notes go; rank 0's only in a data-parallel job.
    public var log: @Sendable (String) -> Void = { if World.isMain { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
    public var stopAfter: Int?

    public init(args: TrainingArguments) { self.args = args }

    func settings() throws -> DPOSettings { try DPOSettings(arguments: args) }

    @discardableResult
    public func run() throws -> DPOSummary {
        let settings = try settings()
        try World.start()
        let lock = World.isMain ? try OutputDirLock(outputDir: args.outputDir) : nil
        defer { lock?.release() }
        if let n = args.numThreads { KernelThreads.set(n) }
        for line in args.startNotes { log(line) }
        guard let modelPath = args.modelNameOrPath else { throw RuntimeError("model_name_or_path is required (the SFT model)") }
        let tokPath = try tokenizerPath(explicit: args.tokenizerNameOrPath, model: modelPath)
        let tok = try loadTokenizer(path: tokPath)
        let tokFiles = TrainingRun(args: args, task: .dpo).tokenizerFilesFor(tokPath)
        var weights = try loadModel(path: modelPath)
        if args.maxSeqLen > weights.config.maxSeqLen {
            let what = "max_seq_len \(args.maxSeqLen) is above the model's context (\(weights.config.maxSeqLen) positions, max_position_embeddings)"
            guard !args.maxSeqLenGiven else { throw RuntimeError(what) }
            log("note: \(what) (the default); rows longer than the context use positions the model was not made for — set max_seq_len")
        }
        guard let trainPath = args.trainDatasetPath else { throw RuntimeError("train_dataset_path (or dataset_name_or_path) is required") }
        let paths = try JSONLines.resolve(trainPath)
        let (template, templateNote) = try ChatTemplate.forRun(args.chatTemplate, tokenizerPath: tokPath)
        if let templateNote { log(templateNote) }
        let (train, summary) = try PreferenceDataset.load(path: paths.train, tokenizer: tok, maxSeqLen: args.maxSeqLen,
                                                          maxPromptLen: args.promptLimit, template: template)
        if !summary.warnings.isEmpty { log("data: \(summary.warnings)") }
        guard !train.isEmpty else { throw DataError(paths.train, "no usable pairs") }
        let devPath = args.devDatasetPath ?? paths.dev
        let dev = args.evaluationLimit(try devPath.map {
            try PreferenceDataset.load(path: $0, tokenizer: tok, maxSeqLen: args.maxSeqLen, maxPromptLen: args.promptLimit, template: template).0
        } ?? [])
        // The reference: another model, or a frozen copy of the starting policy. With LoRA the
        // starting policy is the base model (the adapters start at zero) or base + `lora_path`'s
        // adapter: the first is the policy's own weights with the adapters off (no copy,
        // `reference` nil); the second a frozen merged copy.
        let lora = try args.loraConfig()
        var reference: ParameterStore?
        if settings.needsReference {
            if let path = args.refModelNameOrPath {
                reference = try ParameterStore(weights: loadModel(path: path))
            } else if args.prefixTuning {
                // The policy's own weights without the prefix (`dpo_logps`): no copy — also
                // when `prefix_path` gives the starting prefix.
            } else if lora == nil {
                reference = try ParameterStore(weights: weights)
            } else if let adapter = args.loraPath {
                reference = try ParameterStore(weights: loadModel(path: modelPath, lora: adapter))
            }
        }
        if let note = args.evaluationNote(hasDev: !dev.isEmpty) { log(note) }
        let (maxSteps, schedule) = args.schedule(rows: train.count, ranks: World.size)
        if World.size > 1 { log("data parallel: \(World.size) ranks × \(args.perDeviceTrainBatchSize) pairs × \(args.gradientAccumulationSteps) accumulation steps per step") }
        var loop = TrainingLoop(args: args, loader: DataLoader(items: Array(train.indices), batchSize: args.perDeviceTrainBatchSize,
                                                          shuffle: args.shuffle, seed: UInt64(args.seed)),
                           maxSteps: maxSteps, schedule: schedule, metrics: try MetricsLogger(outputDir: args.outputDir),
                           label: "dpo", stopAfter: stopAfter)
        let resume = try ResumePoint.chosen(by: args, log: log)
        if let resume {
            if let w = resume.weights {
                guard lora == nil, !args.prefixTuning else {
                    throw RuntimeError("\(resume.path) holds a full model, not \(args.lora ? "a LoRA adapter" : "a prefix"); resume it with \(args.lora ? "lora" : "prefix_tuning") false or use another output_dir")
                }
                weights = w
            } else if lora == nil, !args.prefixTuning {
                throw RuntimeError("\(resume.path) holds an adapter, not a model; resume it with lora or prefix_tuning true")
            }
            loop.loader.state = resume.state.loader
            loop.bestSaved = BestModel.saved(in: resume.path)
            let refFile = (resume.path as NSString).appendingPathComponent("reference")
            if FileManager.default.fileExists(atPath: refFile) { try reference?.load(try HFCheckpoint.load(directory: refFile)) }
            log("resuming from \(resume.path) at step \(resume.state.step)")
        }
        let startStep = resume?.state.step ?? 0
        try loop.metrics.resume(truncatingAfter: startStep)
        let curves = try CurveReporting.tensorboard(args)
        for note in curves.notes { log(note) }
        loop.metrics.tensorboard = curves.writer
        var lm = TrainingRun(args: args, task: .dpo)
        lm.log = log
        let store = try lm.parameterStore(weights, resume: resume)
        try MemoryBudget.check(try MemoryBudget.trainingBytes(store: store, program: "llama_dpo.dpo_step",
                                                              rows: args.perDeviceTrainBatchSize, seq: args.maxSeqLen,
                                                              extraModels: reference == nil ? 0 : 1),
                               drivers: "per_device_train_batch_size (\(args.perDeviceTrainBatchSize)) or max_seq_len (\(args.maxSeqLen))")
        let policy = try LMTrainer(parameters: store, optimizer: OptimizerSettings(
            beta1: args.adamBeta1, beta2: args.adamBeta2, epsilon: args.adamEpsilon, weightDecay: args.weightDecay, maxGradNorm: args.maxGradNorm), bf16: args.bf16)
        if args.bf16 { log(MixedPrecision.banner) }
        policy.dropoutSeed = UInt64(args.seed)
        if let resume { try policy.loadOptimizerState(resume.optimizer) }
        let trainer = try DPOTrainer(policy: policy, reference: reference, settings: settings)
        let pad = tok.eosId
        // Precomputed reference log-probs: once, cached on disk.
        var cache: ReferenceCache?
        if args.precomputeRefLogProbs && args.refModelUpdateSteps != nil {
            log("note: precompute_ref_log_probs is ignored because ref_model_update_steps changes the reference")
        }
        if args.precomputeRefLogProbs && settings.needsReference && args.refModelUpdateSteps == nil {
            cache = try ReferenceCache.load(or: trainer, pairs: train, dev: dev, pad: pad, args: args, log: log)
        }
        var job = DPOJob(run: self, trainer: trainer, train: train, dev: dev, cache: cache, pad: pad, tokenizerFiles: tokFiles)
        job.maxSteps = maxSteps
        job.tokensSeen = resume?.state.numInputTokensSeen ?? 0
        let before = startStep == 0 ? try job.evaluateMetrics() : nil
        let outcome = try loop.run(&job, from: startStep)
        guard outcome.finished else {
            return DPOSummary(steps: outcome.steps, evalBefore: before, evalAfter: nil, lastTrain: job.last, data: summary, outputDir: args.outputDir)
        }
        if World.isMain {
            try policy.encodePrefix()   // a reparameterized prefix's table from its current MLP
            try TrainingCheckpoint.saveFinal(outputDir: args.outputDir, weights: policy.parameters.weights(), tokenizerFiles: tokFiles,
                                             adapter: lm.adapterSnapshot(policy.parameters))
            try args.restoreBest(outcome.best, finalStep: outcome.steps, log: log)
        }
        return DPOSummary(steps: outcome.steps, evalBefore: before, evalAfter: job.lastEval, lastTrain: job.last, data: summary, outputDir: args.outputDir)
    }

    func save(_ t: DPOTrainer, _ step: Int, loader: LoaderState, epoch: Double, maxSteps: Int, tokensSeen: Int, _ tokFiles: [String],
              protect: Int? = nil) throws {
        try t.policy.encodePrefix()
        var state = TrainerState(step: step, epoch: epoch, loader: loader, args: args, maxSteps: maxSteps)
        state.numInputTokensSeen = tokensSeen
        try TrainingCheckpoint.save(outputDir: args.outputDir, step: step, weights: t.policy.parameters.weights(),
                                    optimizer: t.policy.optimizerState(),
                                    state: state,
                                    tokenizerFiles: tokFiles, keep: args.saveTotalLimit,
                                    adapter: TrainingRun(args: args, task: .dpo).adapterSnapshot(t.policy.parameters), protect: protect)
        if args.refModelUpdateSteps != nil, let ref = t.reference {
            let dir = (args.outputDir as NSString).appendingPathComponent("checkpoint-\(step)/reference")
            try HFCheckpoint.save(ref.weights(), to: dir)
        }
    }
}

/// DPO steps for `TrainingLoop`: pairs by index into the training set, reference log-probs from the
/// cache or the live reference, reference updates every `ref_model_update_steps`.
struct DPOJob: RunJob {
    let run: DPORun
    let trainer: DPOTrainer
    let train: [PreferencePair]
    let dev: [PreferencePair]
    let cache: ReferenceCache?
    let pad: Int32
    let tokenizerFiles: [String]
    /// The run's `max_steps` (written into `trainer_state.json`).
    var maxSteps = 0
    /// Tokens of the training pairs so far (prompt once, then both answers; logged as `num_tokens`, kept across resumes).
    var tokensSeen = 0
    /// The latest step's metrics, as logged.
    var last: DPOTrainer.Metrics?
    /// The latest evaluation.
    var lastEval: DPOTrainer.Metrics?

    init(run: DPORun, trainer: DPOTrainer, train: [PreferencePair], dev: [PreferencePair], cache: ReferenceCache?, pad: Int32,
         tokenizerFiles: [String]) {
        self.run = run; self.trainer = trainer; self.train = train; self.dev = dev; self.cache = cache; self.pad = pad
        self.tokenizerFiles = tokenizerFiles
    }

    func batch(_ idx: [Int], _ pool: [PreferencePair]) -> PairBatch {
        let b = PairBatch(idx.map { pool[$0] }, pad: pad)
        return run.args.normalizeLogps ? b.normalizingLengths() : b
    }

    mutating func step(_ micro: [[Int]], lr: Double) throws -> RunStepReport {
        let batches = micro.map { batch($0, train) }
        var m = try trainer.step(batches, references: cache.map { c in micro.map { c.train($0) } }, lr: lr)
        tokensSeen += micro.joined().reduce(0) { $0 + train[$1].prompt.count + train[$1].chosen.count + train[$1].rejected.count }
        m["num_tokens"] = Double(tokensSeen)
        return RunStepReport(metrics: m, tokens: batches.reduce(0) { $0 + $1.batch * $1.seq },
                             progress: [("loss", String(format: "%.4f", m["loss"] ?? 0)),
                                        ("acc", String(format: "%.2f", m["rewards/accuracies"] ?? 0))])
    }

    mutating func afterStep(_ step: Int, metrics: [String: Double]) throws {
        last = metrics
        if let n = run.args.refModelUpdateSteps, step % n == 0 { try trainer.updateReference() }
    }

    /// The DPO metrics on the dev split (nil without one).
    func evaluateMetrics() throws -> DPOTrainer.Metrics? {
        guard !dev.isEmpty else { return nil }
        let size = run.args.perDeviceEvalBatchSize
        let chunks = stride(from: 0, to: dev.count, by: size).map { Array($0..<min($0 + size, dev.count)) }
        return try trainer.evaluate(chunks.map { batch($0, dev) }, references: cache.map { c in chunks.map { c.dev($0) } })
    }

    mutating func evaluate() throws -> [String: Double]? {
        guard let e = try evaluateMetrics() else { return nil }
        lastEval = e
        return e.reduce(into: [:]) { $0["eval_\($1.key)"] = $1.value }
    }

    func save(step: Int, loader: LoaderState, epoch: Double, protect: Int?) throws {
        try run.save(trainer, step, loader: loader, epoch: epoch, maxSteps: maxSteps, tokensSeen: tokensSeen, tokenizerFiles, protect: protect)
    }
}

extension TrainingRun {
    /// Tokenizer files to copy beside saved models (`HFFolder.complete` writes the Hugging Face
    /// files the tokenizer folder lacks).
    func tokenizerFilesFor(_ path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue { return [path] }
        return (tokenizerFileNames + HFFolder.tokenizerCompanions).map { (path as NSString).appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0) }
    }
}

/// Reference log-probs computed once before training, stored in `output_dir` as
/// `ref_logps-HASH.json` where HASH covers the reference weights, the pairs and the settings.
struct ReferenceCache: Codable {
    var trainLogps: PairLogps
    var devLogps: PairLogps

    func train(_ idx: [Int]) -> PairLogps { PairLogps(chosen: idx.map { trainLogps.chosen[$0] }, rejected: idx.map { trainLogps.rejected[$0] }) }
    func dev(_ idx: [Int]) -> PairLogps { PairLogps(chosen: idx.map { devLogps.chosen[$0] }, rejected: idx.map { devLogps.rejected[$0] }) }

    static func load(or trainer: DPOTrainer, pairs: [PreferencePair], dev: [PreferencePair], pad: Int32,
                     args: TrainingArguments, log: (String) -> Void) throws -> ReferenceCache {
        var h = FNV1a()
        // A LoRA policy's reference without a store of its own is its base model.
        if let ref = trainer.reference ?? (trainer.policy.parameters.adapted ? trainer.policy.parameters : nil) {
            let w = ref.weights()
            for name in ref.names { h.add(name); for v in w.tensors[name] ?? [] { h.add(v.bitPattern) } }
        }
        for p in pairs + dev { for id in p.prompt + p.chosen + p.rejected { h.add(UInt32(bitPattern: id)) }; h.add(p.promptScored.map { $0 ? "1" : "0" }.joined()) }
        h.add("\(args.maxSeqLen)/\(args.promptLimit)/\(args.chatTemplate ?? "")/\(pad)" + (args.normalizeLogps ? "/normalized" : ""))
        let path = (args.outputDir as NSString).appendingPathComponent(String(format: "ref_logps-%016llx.json", h.value))
        // Rank 0 decides whether the cache is usable, so every rank takes the same branch.
        let cached = FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(ReferenceCache.self, from: $0) }
        if try World.mainValue(cached == nil ? 0 : 1) == 1 {
            guard let c = cached else { throw RuntimeError("rank \(World.rank) cannot read \(path), which rank 0 read (is output_dir on a file system every rank shares?)") }
            log("reference log-probs: using \(path)")
            return c
        }
        // Batches are shared out over the ranks; each fills its rows, the sum gathers them.
        func compute(_ pool: [PreferencePair]) throws -> PairLogps {
            var chosen = [Float](repeating: 0, count: pool.count), rejected = chosen
            let step = max(args.perDeviceEvalBatchSize, 1)
            for (index, start) in stride(from: 0, to: pool.count, by: step).enumerated() where World.owns(index) {
                let end = min(start + step, pool.count)
                let b = PairBatch(Array(pool[start..<end]), pad: pad)
                let r = try trainer.referenceLogps(args.normalizeLogps ? b.normalizingLengths() : b)
                chosen.replaceSubrange(start..<end, with: r.chosen); rejected.replaceSubrange(start..<end, with: r.rejected)
            }
            return PairLogps(chosen: try World.sum(chosen), rejected: try World.sum(rejected))
        }
        let c = ReferenceCache(trainLogps: try compute(pairs), devLogps: try compute(dev))
        if World.isMain { try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: path), options: .atomic) }
        log("reference log-probs: computed for \(pairs.count + dev.count) pairs, cached in \(path)")
        return c
    }
}

/// 64-bit FNV-1a, for cache keys.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: some Sequence<UInt8>) { for b in bytes { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 } }
    mutating func add(_ v: UInt32) { add([UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]) }
    mutating func add(_ s: String) { add(s.utf8) }
}

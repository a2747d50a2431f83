import Foundation
import KernelRuntime
import LlamaGraphs

/// What a finished pretraining or SFT run reports.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var firstLoss: Double?
    public var lastLoss: Double?
    public var evalLossBefore: Double?
    public var evalLoss: Double?
    public var train: DatasetSummary
    public var outputDir: String
}

/// Pretraining and SFT from an argument file: reads the data, trains `LMTrainer` with gradient
/// accumulation, logs metrics, evaluates, saves checkpoints, and resumes from the newest one.
public struct TrainingRun {
    public let args: TrainingArguments
    public let task: TrainingArguments.Task
    /// Where notes go (progress goes to standard error); rank 0's only in a data-parallel job.
    public var log: @Sendable (String) -> Void = { if World.isMain { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
    /// Stops after this many steps of this process (for tests of resuming); nil runs to the end.
    public var stopAfter: Int?

    public init(args: TrainingArguments, task: TrainingArguments.Task) {
        self.args = args
        self.task = task
    }

    /// The starting weights: a checkpoint, or a directory with only `config.json` (random init).
    public func initialWeights() throws -> LlamaWeights {
        guard let path = args.modelNameOrPath else {
            throw RuntimeError("model_name_or_path is required (a checkpoint, or for pretraining a directory with config.json)")
        }
        let fm = FileManager.default
        let config = (path as NSString).appendingPathComponent("config.json")
        let hasWeights = ["model.safetensors", "model.safetensors.index.json"].contains {
            fm.fileExists(atPath: (path as NSString).appendingPathComponent($0))
        }
        if fm.fileExists(atPath: config), !hasWeights || !args.continueTraining {
            var (c, tied) = try HFConfig.load(path: config)
            c.tiedEmbeddings = tied ?? true
            log("note: \(path) \(hasWeights ? "(continue_training false)" : "has no weights"); initialising \(c.nLayers) layers × dim \(c.dim) at random (seed \(args.seed))")
            return LlamaWeights.random(config: c, seed: UInt64(args.seed), scale: 0.02)
        }
        return try loadModel(path: path)
    }

    /// The tokenizer named in the arguments, or the one beside the model.
    public func tokenizer() throws -> (any Tokenizer, files: [String]) {
        let path = try tokenizerPath(explicit: args.tokenizerNameOrPath, model: args.modelNameOrPath ?? "")
        return (try loadTokenizer(path: path), tokenizerFilesFor(path))
    }

    /// The chat template rows are rendered with (`chat_template`, else the tokenizer's own).
    func runTemplate() throws -> (template: ChatTemplate, note: String?) {
        try ChatTemplate.forRun(args.chatTemplate, tokenizerPath: tokenizerPath(explicit: args.tokenizerNameOrPath, model: args.modelNameOrPath ?? ""))
    }

    /// Reads a split of the dataset.
    public func read(_ path: String, _ tok: any Tokenizer) throws -> ([TokenizedExample], DatasetSummary) {
        switch task {
        case .pretrain: return try PretrainDataset.load(path: path, tokenizer: tok, maxSeqLen: args.maxSeqLen)
        default:
            return try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: args.maxSeqLen, maxPromptLen: args.promptLimit,
                                       template: try runTemplate().template)
        }
    }

    /// Runs to `max_steps` (or the epochs), resuming from the newest checkpoint in `output_dir`.
    @discardableResult
    public func run() throws -> TrainingSummary {
        try World.start()
        let lock = World.isMain ? try OutputDirLock(outputDir: args.outputDir) : nil
        defer { lock?.release() }
        if let n = args.numThreads { KernelThreads.set(n) }
        for line in args.startNotes { log(line) }
        let (tok, tokFiles) = try tokenizer()
        if task != .pretrain, let note = try runTemplate().note { log(note) }
        var weights = try initialWeights()
        if args.maxSeqLen > weights.config.maxSeqLen {
            let what = "max_seq_len \(args.maxSeqLen) is above the model's context (\(weights.config.maxSeqLen) positions, max_position_embeddings)"
            guard !args.maxSeqLenGiven else { throw RuntimeError(what) }
            log("note: \(what) (the default); rows longer than the context use positions the model was not made for — set max_seq_len")
        }
        guard tok.vocabSize <= weights.config.vocabSize else {
            throw RuntimeError("the tokenizer has \(tok.vocabSize) tokens but the model's vocabulary is \(weights.config.vocabSize)")
        }
        guard let trainPath = args.trainDatasetPath else { throw RuntimeError("train_dataset_path (or dataset_name_or_path) is required") }
        let paths = try JSONLines.resolve(trainPath)
        let (train, summary) = try read(paths.train, tok)
        guard !train.isEmpty else { throw DataError(paths.train, "no usable rows (\(summary.dropped) dropped)") }
        let devPath = args.devDatasetPath ?? paths.dev
        let dev = args.evaluationLimit(try devPath.map { try read($0, tok).0 } ?? [])
        if summary.dropped > 0 || summary.truncated > 0 {
            log("data: \(summary.examples) rows used, \(summary.truncated) truncated, \(summary.dropped) dropped \(summary.droppedReasons)")
        }
        if let note = args.evaluationNote(hasDev: !dev.isEmpty) { log(note) }
        let (maxSteps, schedule) = args.schedule(rows: train.count, ranks: World.size)
        if World.size > 1 { log("data parallel: \(World.size) ranks × \(args.perDeviceTrainBatchSize) rows × \(args.gradientAccumulationSteps) accumulation steps per step") }
        var loop = TrainingLoop(args: args, loader: DataLoader(items: train, batchSize: args.perDeviceTrainBatchSize, shuffle: args.shuffle,
                                                          seed: UInt64(args.seed)),
                           maxSteps: maxSteps, schedule: schedule, metrics: try MetricsLogger(outputDir: args.outputDir),
                           label: task.rawValue, stopAfter: stopAfter)
        let resume = try ResumePoint.chosen(by: args, log: log)
        if let resume {
            if let w = resume.weights {
                guard !args.lora && !args.prefixTuning else {
                    let kind = args.lora ? "a LoRA adapter; resume it with lora false" : "a prefix; resume it with prefix_tuning false"
                    throw RuntimeError("\(resume.path) holds a full model, not \(kind) or use another output_dir")
                }
                weights = w
            }
            loop.loader.state = resume.state.loader
            loop.bestSaved = BestModel.saved(in: resume.path)
            log("resuming from \(resume.path) at step \(resume.state.step)")
        }
        let startStep = resume?.state.step ?? 0
        try loop.metrics.resume(truncatingAfter: startStep)
        let curves = try CurveReporting.tensorboard(args)
        for note in curves.notes { log(note) }
        loop.metrics.tensorboard = curves.writer
        let store = try parameterStore(weights, resume: resume)
        try MemoryBudget.check(try MemoryBudget.trainingBytes(store: store, program: "llama_train.lm_step",
                                                              rows: args.perDeviceTrainBatchSize, seq: args.maxSeqLen),
                               drivers: "per_device_train_batch_size (\(args.perDeviceTrainBatchSize)) or max_seq_len (\(args.maxSeqLen))")
        let trainer = try LMTrainer(parameters: store, optimizer: OptimizerSettings(
            beta1: args.adamBeta1, beta2: args.adamBeta2, epsilon: args.adamEpsilon,
            weightDecay: args.weightDecay, maxGradNorm: args.maxGradNorm), bf16: args.bf16)
        if args.bf16 { log(MixedPrecision.banner) }
        trainer.dropoutSeed = UInt64(args.seed)
        if let resume { try trainer.loadOptimizerState(resume.optimizer) }
        var job = LMJob(run: self, trainer: trainer, dev: dev, pad: tok.eosId, tokenizerFiles: tokFiles)
        job.maxSteps = maxSteps
        job.tokensSeen = resume?.state.numInputTokensSeen ?? 0
        let evalBefore = dev.isEmpty || startStep > 0 ? nil : try evaluate(trainer, dev, pad: job.pad)
        let outcome = try loop.run(&job, from: startStep)
        if outcome.finished, World.isMain {
            try trainer.encodePrefix()
            try TrainingCheckpoint.saveFinal(outputDir: args.outputDir, weights: store.weights(), tokenizerFiles: tokFiles,
                                             adapter: adapterSnapshot(store))
            try args.restoreBest(outcome.best, finalStep: outcome.steps, log: log)
        }
        return TrainingSummary(steps: outcome.steps, firstLoss: job.firstLoss, lastLoss: job.lastLoss, evalLossBefore: evalBefore,
                               evalLoss: job.evalLoss, train: summary, outputDir: args.outputDir)
    }

    /// The store the run trains: the model, and with `lora` its adapters — from the checkpoint
    /// resumed, else from `lora_path`, else PEFT's initial ones (seeded by `seed`).
    func parameterStore(_ weights: LlamaWeights, resume: ResumePoint?) throws -> ParameterStore {
        if args.prefixTuning { return try prefixStore(weights, resume: resume) }
        guard var lora = try args.loraConfig() else { return try ParameterStore(weights: weights) }
        var adapters: [String: [Float]]?
        if let from = resume?.path ?? args.loraPath {
            let loaded = try PEFTAdapter.load(directory: from, config: weights.config)
            (lora, adapters) = (loaded.lora, loaded.adapters)
            if resume == nil { log("LoRA: starting from the adapter in \(from)") }
            // Training settings come from the arguments, not from the adapter's file.
            (lora.dropout, lora.plusScale) = (args.loraDropout, args.loraPlusScale)
        }
        log("LoRA: rank \(lora.rank), scale \(lora.scale), on \(lora.targets.compactMap { LoRAConfig.hfNames[$0] }.joined(separator: ", "))")
        return try ParameterStore(weights: weights, lora: lora, adapters: adapters, seed: UInt64(args.seed))
    }

    /// The store of a prefix-tuning run: the frozen model and `prefix_kv` — from the checkpoint
    /// resumed, else from `prefix_path`, else PEFT's initial N(0, 1) (seeded by `seed`).
    func prefixStore(_ weights: LlamaWeights, resume: ResumePoint?) throws -> ParameterStore {
        let c = weights.config
        guard var prefix = try args.prefixConfig(kvDim: c.kvDim) else { return try ParameterStore(weights: weights) }
        var tensors: [String: [Float]]?
        if let from = resume?.path ?? args.prefixPath {
            let loaded = try PEFTPrefix.load(directory: from, config: c)
            tensors = [Prefix.parameter: loaded.table]
            if let e = prefix.projection {
                // The MLP trained here (PEFT saves only the projected table).
                prefix = try PrefixConfig(tokens: loaded.prefix.tokens, projection: e)
                guard let encoder = try PEFTPrefix.loadEncoder(directory: from, prefix: prefix, config: c) else {
                    throw RuntimeError("\(from) has no \(PEFTPrefix.encoderFile) (PEFT saves only the projected table): set prefix_projection false to train that table, or start without prefix_path")
                }
                tensors?.merge(encoder) { a, _ in a }
            } else {
                prefix = loaded.prefix
            }
            if resume == nil { log("prefix tuning: starting from the prefix in \(from)") }
        }
        let trained = prefix.trainableNames.compactMap { n in prefix.tensorShapes(c).first { $0.name == n }?.shape.reduce(1, *) }.reduce(0, +)
        log("prefix tuning: \(prefix.tokens) prefix positions in each of \(c.nLayers) layers"
            + (prefix.projection.map { ", reparameterized through an MLP of width \($0)" } ?? "") + " (\(trained) trained values)")
        return try ParameterStore(weights: weights, adapters: tensors, seed: UInt64(args.seed), prefix: prefix)
    }

    /// The store a fresh run starts from: the initial weights, with LoRA adapters when the
    /// arguments ask for them (what `llama-align profile` steps).
    public func startingParameters() throws -> ParameterStore {
        try parameterStore(try initialWeights(), resume: nil)
    }

    /// What a LoRA or prefix-tuning run saves instead of the model: the adapter or the prefix
    /// (nil for full fine-tuning).
    func adapterSnapshot(_ store: ParameterStore) -> AdapterSnapshot? {
        AdapterSnapshot(store, baseModel: args.modelNameOrPath)
    }

    /// Mean NLL per supervised token over `examples` (chunks shared out over the ranks of a
    /// data-parallel job, their sums added up).
    func evaluate(_ trainer: LMTrainer, _ examples: [TokenizedExample], pad: Int32) throws -> Double {
        var sum = 0.0, n = 0.0
        for (index, start) in stride(from: 0, to: examples.count, by: max(args.perDeviceEvalBatchSize, 1)).enumerated() where World.owns(index) {
            let chunk = Array(examples[start..<min(start + args.perDeviceEvalBatchSize, examples.count)])
            let r = try trainer.evaluate(collate(chunk, padId: pad))
            sum += r.sum; n += Double(r.tokens)
        }
        let total = try World.sum([sum, n])
        return total[1] > 0 ? total[0] / total[1] : 0
    }

    func save(_ trainer: LMTrainer, step: Int, loader: LoaderState, epoch: Double, maxSteps: Int, tokensSeen: Int, _ tokFiles: [String],
              protect: Int? = nil) throws {
        try trainer.encodePrefix()   // a reparameterized prefix's table from its current MLP
        var state = TrainerState(step: step, epoch: epoch, loader: loader, args: args, maxSteps: maxSteps)
        state.numInputTokensSeen = tokensSeen
        try TrainingCheckpoint.save(outputDir: args.outputDir, step: step, weights: trainer.parameters.weights(),
                                    optimizer: trainer.optimizerState(),
                                    state: state,
                                    tokenizerFiles: tokFiles, keep: args.saveTotalLimit, adapter: adapterSnapshot(trainer.parameters),
                                    protect: protect)
    }
}

/// Pretraining and SFT steps for `TrainingLoop`: collate, train, evaluate the mean token NLL.
struct LMJob: RunJob {
    let run: TrainingRun
    let trainer: LMTrainer
    let dev: [TokenizedExample]
    let pad: Int32
    let tokenizerFiles: [String]
    /// The run's `max_steps` (written into `trainer_state.json`).
    var maxSteps = 0
    /// Tokens of the training rows so far, padding excluded (logged as TRL's `num_tokens`; kept across resumes).
    var tokensSeen = 0
    var firstLoss: Double?
    var lastLoss: Double?
    /// The latest evaluation.
    var evalLoss: Double?

    init(run: TrainingRun, trainer: LMTrainer, dev: [TokenizedExample], pad: Int32, tokenizerFiles: [String]) {
        self.run = run; self.trainer = trainer; self.dev = dev; self.pad = pad; self.tokenizerFiles = tokenizerFiles
    }

    mutating func step(_ micro: [[TokenizedExample]], lr: Double) throws -> RunStepReport {
        let batches = micro.map { collate($0, padId: pad) }
        let r = try trainer.trainStep(batches, lr: lr)
        firstLoss = firstLoss ?? r.loss
        lastLoss = r.loss
        tokensSeen += micro.joined().reduce(0) { $0 + $1.inputIds.count }
        return RunStepReport(metrics: ["loss": r.loss, "grad_norm": r.gradNorm, "num_tokens": Double(tokensSeen),
                                       "entropy": r.entropy, "mean_token_accuracy": r.accuracy], tokens: batches.reduce(0) { $0 + $1.batch * $1.seq },
                             progress: [("loss", String(format: "%.4f", r.loss)), ("lr", String(format: "%.2e", lr))])
    }

    func afterStep(_ step: Int, metrics: [String: Double]) {}

    mutating func evaluate() throws -> [String: Double]? {
        guard !dev.isEmpty else { return nil }
        let loss = try run.evaluate(trainer, dev, pad: pad)
        evalLoss = loss
        return ["eval_loss": loss]
    }

    func save(step: Int, loader: LoaderState, epoch: Double, protect: Int?) throws {
        try run.save(trainer, step: step, loader: loader, epoch: epoch, maxSteps: maxSteps, tokensSeen: tokensSeen, tokenizerFiles, protect: protect)
    }
}

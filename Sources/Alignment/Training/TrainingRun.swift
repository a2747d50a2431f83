import Foundation
import KernelRuntime

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
    /// Where notes go (progress goes to standard error).
    public var log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
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
        if fm.fileExists(atPath: config), !hasWeights {
            var (c, tied) = try HFConfig.load(path: config)
            c.tiedEmbeddings = tied ?? true
            log("note: \(path) has no weights; initialising \(c.nLayers) layers × dim \(c.dim) at random (seed \(args.seed))")
            return LlamaWeights.random(config: c, seed: UInt64(args.seed), scale: 0.02)
        }
        return try loadModel(path: path)
    }

    /// The tokenizer named in the arguments, or the one beside the model.
    public func tokenizer() throws -> (any Tokenizer, files: [String]) {
        let path = args.tokenizerNameOrPath ?? args.modelNameOrPath ?? ""
        return (try loadTokenizer(path: path), tokenizerFilesFor(path))
    }

    /// Reads a split of the dataset.
    public func read(_ path: String, _ tok: any Tokenizer) throws -> ([TokenizedExample], DatasetSummary) {
        switch task {
        case .pretrain: return try PretrainDataset.load(path: path, tokenizer: tok, maxSeqLen: args.maxSeqLen)
        default:
            return try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: args.maxSeqLen, maxPromptLen: args.promptLimit,
                                       template: try ChatTemplate.named(args.chatTemplate))
        }
    }

    /// Runs to `max_steps` (or the epochs), resuming from the newest checkpoint in `output_dir`.
    @discardableResult
    public func run() throws -> TrainingSummary {
        try TrainingCheckpoint.checkWritable(outputDir: args.outputDir)
        if let n = args.numThreads { KernelThreads.set(n) }
        for key in args.ignoredKeys { log("note: '\(key)' has no meaning here and is ignored") }
        let (tok, tokFiles) = try tokenizer()
        var weights = try initialWeights()
        guard tok.vocabSize <= weights.config.vocabSize else {
            throw RuntimeError("the tokenizer has \(tok.vocabSize) tokens but the model's vocabulary is \(weights.config.vocabSize)")
        }
        guard let trainPath = args.trainDatasetPath else { throw RuntimeError("train_dataset_path (or dataset_name_or_path) is required") }
        let paths = try JSONLines.resolve(trainPath)
        let (train, summary) = try read(paths.train, tok)
        guard !train.isEmpty else { throw DataError(paths.train, "no usable rows (\(summary.dropped) dropped)") }
        let devPath = args.devDatasetPath ?? paths.dev
        let dev = try devPath.map { try read($0, tok).0 } ?? []
        if summary.dropped > 0 || summary.truncated > 0 {
            log("data: \(summary.examples) rows used, \(summary.truncated) truncated, \(summary.dropped) dropped \(summary.droppedReasons)")
        }
        var loader = DataLoader(items: train, batchSize: args.perDeviceTrainBatchSize, shuffle: args.shuffle, seed: UInt64(args.seed))
        let (maxSteps, schedule) = args.schedule(rows: train.count)
        let metrics = try MetricsLogger(outputDir: args.outputDir)
        var startStep = 0
        var optimizerState: [String: [Float]]?
        if let ckpt = TrainingCheckpoint.latest(in: args.outputDir) {
            let restored = try TrainingCheckpoint.load(ckpt)
            weights = restored.weights
            optimizerState = restored.optimizer
            startStep = restored.state.step
            loader.state = restored.state.loader
            log("resuming from \(ckpt) at step \(startStep)")
        }
        try metrics.resume(truncatingAfter: startStep)
        let store = try ParameterStore(weights: weights)
        let trainer = try LMTrainer(parameters: store, optimizer: OptimizerSettings(
            beta1: args.adamBeta1, beta2: args.adamBeta2, epsilon: args.adamEpsilon,
            weightDecay: args.weightDecay, maxGradNorm: args.maxGradNorm))
        if let optimizerState { try trainer.loadOptimizerState(optimizerState) }
        let pad = tok.eosId
        let evalBefore = dev.isEmpty || startStep > 0 ? nil : try evaluate(trainer, dev, pad: pad)
        var firstLoss: Double?, lastLoss: Double?, evalLoss: Double?
        let progress = ProgressBar(total: maxSteps, label: task.rawValue, every: args.loggingSteps)
        var tokens = 0
        let started = Date()
        var step = startStep
        while step < maxSteps {
            if let stopAfter, step - startStep >= stopAfter { return summaryOf(step, firstLoss, lastLoss, evalBefore, evalLoss, summary) }
            var micro: [TokenBatch] = []
            for _ in 0..<args.gradientAccumulationSteps { micro.append(collate(loader.next(), padId: pad)) }
            let lr = schedule.rate(at: step)
            let t0 = Date()
            let r = try trainer.trainStep(micro, lr: lr)
            let stepTokens = micro.reduce(0) { $0 + $1.batch * $1.seq }
            tokens += stepTokens
            firstLoss = firstLoss ?? r.loss
            lastLoss = r.loss
            step += 1
            if step % args.loggingSteps == 0 || step == maxSteps {
                try metrics.log(["step": Double(step), "epoch": loader.epochProgress, "loss": r.loss, "learning_rate": lr,
                                 "grad_norm": r.gradNorm, "tokens_per_second": Double(stepTokens) / max(Date().timeIntervalSince(t0), 1e-9)])
            }
            progress.update(step: step, fields: [("loss", String(format: "%.4f", r.loss)), ("lr", String(format: "%.2e", lr)),
                                                 ("tok/s", String(format: "%.0f", Double(tokens) / max(Date().timeIntervalSince(started), 1e-9)))])
            if args.evalSteps > 0, step % args.evalSteps == 0, step < maxSteps, !dev.isEmpty {
                evalLoss = try evaluate(trainer, dev, pad: pad)
                try metrics.log(["step": Double(step), "eval_loss": evalLoss ?? 0])
            }
            if args.saveSteps > 0, step % args.saveSteps == 0, step < maxSteps {
                try save(trainer, step: step, loader: loader.state, epoch: loader.epochProgress, tokFiles)
            }
        }
        progress.finish()
        if !dev.isEmpty {
            evalLoss = try evaluate(trainer, dev, pad: pad)
            try metrics.log(["step": Double(maxSteps), "eval_loss": evalLoss ?? 0])
        }
        try save(trainer, step: maxSteps, loader: loader.state, epoch: loader.epochProgress, tokFiles)
        try TrainingCheckpoint.saveFinal(outputDir: args.outputDir, weights: store.weights(), tokenizerFiles: tokFiles)
        return summaryOf(maxSteps, firstLoss, lastLoss, evalBefore, evalLoss, summary)
    }

    private func summaryOf(_ steps: Int, _ first: Double?, _ last: Double?, _ before: Double?, _ after: Double?, _ s: DatasetSummary) -> TrainingSummary {
        TrainingSummary(steps: steps, firstLoss: first, lastLoss: last, evalLossBefore: before, evalLoss: after, train: s, outputDir: args.outputDir)
    }

    /// Mean NLL per supervised token over `examples`.
    func evaluate(_ trainer: LMTrainer, _ examples: [TokenizedExample], pad: Int32) throws -> Double {
        var sum = 0.0, n = 0
        var i = 0
        while i < examples.count {
            let chunk = Array(examples[i..<min(i + args.perDeviceEvalBatchSize, examples.count)])
            let r = try trainer.evaluate(collate(chunk, padId: pad))
            sum += r.sum; n += r.tokens
            i += chunk.count
        }
        return n > 0 ? sum / Double(n) : 0
    }

    func save(_ trainer: LMTrainer, step: Int, loader: LoaderState, epoch: Double, _ tokFiles: [String]) throws {
        try TrainingCheckpoint.save(outputDir: args.outputDir, step: step, weights: trainer.parameters.weights(),
                                    optimizer: trainer.optimizerState(),
                                    state: TrainerState(step: step, epoch: epoch, seed: args.seed, loader: loader),
                                    tokenizerFiles: tokFiles, keep: args.saveTotalLimit)
    }
}

import Foundation
import KernelRuntime

/// A bad argument file: one line `FILE: key 'x': problem`.
public struct ArgumentsError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ file: String, _ key: String?, _ problem: String) {
        // An unknown key may be any JSON string: at most 64 characters of it, on one line.
        let shown = key.map { k in String(k.prefix(64)).replacingOccurrences(of: "\n", with: "\\n") + (k.count > 64 ? "…" : "") }
        description = "\(file): " + (shown.map { "key '\($0)': " } ?? "") + problem
    }
}

/// A PaddleNLP-style argument file (`llama-align sft ARGS.json`). Field names and defaults
/// follow PaddleNLP/Hugging Face; see `Keys` for every accepted name.
public struct TrainingArguments: Sendable {
    public enum Task: String, Sendable { case pretrain, sft, dpo }

    public var modelNameOrPath: String?
    public var tokenizerNameOrPath: String?
    public var trainDatasetPath: String?
    public var devDatasetPath: String?
    public var outputDir = ""
    public var perDeviceTrainBatchSize = 4
    public var perDeviceEvalBatchSize = 4
    public var gradientAccumulationSteps = 1
    public var numTrainEpochs = 1.0
    public var maxSteps = -1
    public var learningRate = 5e-5
    public var lrSchedulerType = "linear"
    public var warmupSteps = 0
    public var warmupRatio = 0.0
    public var weightDecay = 0.0
    public var adamBeta1 = 0.9
    public var adamBeta2 = 0.999
    public var adamEpsilon = 1e-8
    public var maxGradNorm = 1.0
    public var loggingSteps = 1
    public var evalSteps = 0
    public var saveSteps = 0
    public var saveTotalLimit: Int?
    public var seed = 42
    public var shuffle = true
    public var maxSeqLen = 512
    /// Whether the file set `max_seq_len` (or `max_length`) rather than leaving the default.
    public var maxSeqLenGiven = false
    public var maxPromptLen: Int?
    public var chatTemplate: String?
    public var zeroPadding = false
    public var numThreads: Int?
    /// Mixed precision: bf16 products, float32 accumulation, weights and optimizer (`MixedPrecision`).
    public var bf16 = false
    // DPO
    public var beta = 0.1
    public var lossType: [String] = ["sigmoid"]
    public var lossWeights: [Double]?
    public var labelSmoothing = 0.0
    public var simpoGamma = 0.5
    public var dpopLambda = 50.0
    public var prefLossRatio = 1.0
    public var sftLossRatio = 0.0
    public var referenceFree = false
    public var refModelNameOrPath: String?
    public var precomputeRefLogProbs = false
    public var refModelUpdateSteps: Int?
    // LoRA and prefix tuning (pretraining, SFT and DPO; one or the other).
    public var lora = false
    public var loraRank = 8
    /// α; −1 (the default) means 2·r.
    public var loraAlpha = -1.0
    /// PEFT's dropout on the adapters' input in training (0 ≤ p < 1).
    public var loraDropout = 0.0
    /// LoRA+: the `B` matrices' learning rate is `learning_rate · lora_plus_scale`.
    public var loraPlusScale = 1.0
    public var rslora = false
    public var targetModules: [String] = []
    /// A saved PEFT adapter to start from (its own rank, α and targets apply).
    public var loraPath: String?
    public var prefixTuning = false
    /// `P`, PaddleNLP's SFT default.
    public var numPrefixTokens = 128
    /// PEFT's reparameterization (Embedding → Linear → Tanh → Linear).
    public var prefixProjection = false
    /// The MLP's hidden width (PEFT's `encoder_hidden_size`); default the model's KV width.
    public var prefixProjectionHiddenSize: Int?
    /// A saved PEFT prefix adapter to start from (its own `num_virtual_tokens` applies).
    public var prefixPath: String?
    // PaddleNLP / Hugging Face conveniences (`TrainingArguments+PaddleNLP.swift` parses them).
    /// `evaluation_strategy` / `eval_strategy` and `save_strategy`: "steps", "epoch" or "no"; nil keeps `eval_steps`/`save_steps` as given.
    public var evalStrategy: String?
    public var saveStrategy: String?
    public var loggingFirstStep = false
    /// Evaluation reads at most this many batches of the dev split (−1: all).
    public var maxEvaluateSteps = -1
    public var optim = "adamw"
    /// The floor the schedule decays to (`min_learning_rate`, `min_lr`).
    public var minLearningRate = 0.0
    /// Waves of the cosine schedule (0.5: one half-cycle to the floor).
    public var numCycles = 0.5
    /// Steps the decay spans (`decay_steps`; 0: the whole run); after them the rate stays at the floor.
    public var decaySteps = 0
    public var runName: String?
    public var loadBestModelAtEnd = false
    public var metricForBestModel: String?
    public var greaterIsBetter: Bool?
    public var earlyStoppingPatience: Int?
    public var earlyStoppingThreshold = 0.0
    /// `resume_from_checkpoint`: a checkpoint folder, or "true" for the newest in `output_dir`.
    public var resumeFromCheckpoint: String?
    public var overwriteOutputDir = false
    /// `continue_training: false` starts from random weights of the model's config.json.
    public var continueTraining = true
    /// PaddleNLP's `normalize_logps` (DPO): each side's log-prob scaled by (mean length of the pair) / (its length).
    public var normalizeLogps = false

    /// `report_to`: where curves go besides `metrics.jsonl` (see `CurveReporting`).
    public var reportTo: [String] = []
    /// `logging_dir`: TensorBoard's folder (default `output_dir/runs/`).
    public var loggingDir: String?

    /// PaddleNLP keys that have no meaning here; accepted with a note.
    public internal(set) var ignoredKeys: [String] = []

    public init(outputDir: String) { self.outputDir = outputDir }

    /// The LoRA setup these arguments ask for (`lora_rank`, `lora_alpha`, `rslora`,
    /// `target_modules`); nil without `lora`.
    public func loraConfig() throws -> LoRAConfig? {
        guard lora else { return nil }
        return try LoRAConfig(rank: loraRank, alpha: loraAlpha, rslora: rslora, targetModules: targetModules,
                              dropout: loraDropout, plusScale: loraPlusScale)
    }

    /// The prefix setup these arguments ask for (`num_prefix_tokens`, `prefix_projection` with
    /// `prefix_projection_hidden_size`, else `kvDim`, the model's KV width as PEFT's default);
    /// nil without `prefix_tuning`.
    public func prefixConfig(kvDim: Int = 0) throws -> PrefixConfig? {
        guard prefixTuning else { return nil }
        return try PrefixConfig(tokens: numPrefixTokens, projection: prefixProjection ? prefixProjectionHiddenSize ?? kvDim : nil)
    }

    /// The prompt budget: `max_prompt_len`, else half of `max_seq_len`.
    public var promptLimit: Int { maxPromptLen ?? maxSeqLen / 2 }

    static let ignorable: Set<String> = [
        "fp16", "fp16_opt_level", "amp_master_grad", "tensor_parallel_degree", "pipeline_parallel_degree",
        "sharding", "sharding_parallel_degree", "sep_parallel_degree", "use_flash_attention", "flash_mask", "recompute",
        "recompute_granularity", "do_train", "do_eval", "do_predict", "disable_tqdm",
        "dataloader_num_workers", "unified_checkpoint", "autotuner_benchmark",
        "benchmark", "use_fused_rms_norm", "use_fused_rope", "fuse_attention_qkv", "fuse_attention_ffn",
        "lazy", "use_attn_mask_startend_row_indices", "lr_end", "power",
    ]

    /// Every accepted key (aliases included), for suggestions.
    static let known: [String] = [
        "model_name_or_path", "tokenizer_name_or_path", "dataset_name_or_path", "train_dataset_path", "dev_dataset_path",
        "output_dir", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
        "num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay",
        "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "logging_steps", "eval_steps", "save_steps",
        "save_total_limit", "seed", "shuffle", "max_seq_len", "max_length", "max_prompt_len", "max_prompt_length", "src_length",
        "chat_template", "zero_padding", "num_threads", "beta", "loss_type", "loss_weights", "label_smoothing", "simpo_gamma",
        "dpop_lambda", "pref_loss_ratio", "sft_loss_ratio", "reference_free", "ref_model_name_or_path",
        "precompute_ref_log_probs", "ref_model_update_steps", "lora", "lora_rank", "lora_alpha", "lora_dropout", "rslora",
        "lora_plus_scale", "target_modules", "lora_path", "prefix_tuning", "num_prefix_tokens", "prefix_projection",
        "prefix_projection_hidden_size", "prefix_path", "report_to", "logging_dir", "bf16",
    ] + conveniences

    /// Parses an argument file for `task`.
    public static func load(path: String, task: Task) throws -> TrainingArguments {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ArgumentsError(path, nil, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return try parse(data, file: path, task: task)
    }

    /// Parses an argument file's contents `data` for `task`; `file` names it in errors.
    public static func parse(_ data: Data, file: String, task: Task) throws -> TrainingArguments {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ArgumentsError(file, nil, "malformed JSON (expected one object of arguments)")
        }
        return try parse(obj, file: file, task: task)
    }

    static func parse(_ obj: [String: Any], file: String, task: Task) throws -> TrainingArguments {
        var a = TrainingArguments(outputDir: "")
        a.learningRate = task == .dpo ? 1e-6 : (task == .pretrain ? 3e-4 : 5e-5)
        let r = ArgumentReader(obj: obj, file: file)
        for key in obj.keys.sorted() where !known.contains(key) {
            if let method = InertFields.unbuiltMethods[key] {
                guard let v = obj[key], InertFields.isOff(key, v) else { throw ArgumentsError(file, key, "\(method) is not available; set it to false (or remove it)") }
                continue
            }
            if ignorable.contains(key) || InertFields.reasons[key] != nil {
                if let v = obj[key], !InertFields.isOff(key, v) { a.noteIgnored(key) }
                continue
            }
            throw ArgumentsError(file, key, unknownKeyProblem(key))
        }
        a.modelNameOrPath = try r.string("model_name_or_path")
        a.tokenizerNameOrPath = try r.string("tokenizer_name_or_path")
        a.trainDatasetPath = try r.string("train_dataset_path") ?? r.string("dataset_name_or_path")
        a.devDatasetPath = try r.string("dev_dataset_path")
        guard let out = try r.string("output_dir"), !out.isEmpty else { throw ArgumentsError(file, "output_dir", "is required") }
        a.outputDir = out
        try r.int("per_device_train_batch_size", &a.perDeviceTrainBatchSize, min: 1)
        try r.int("per_device_eval_batch_size", &a.perDeviceEvalBatchSize, min: 1)
        try r.int("gradient_accumulation_steps", &a.gradientAccumulationSteps, min: 1)
        let (rowsPerStep, overflow) = a.perDeviceTrainBatchSize.multipliedReportingOverflow(by: a.gradientAccumulationSteps)
        guard !overflow, rowsPerStep <= Int(Int32.max) else {
            throw ArgumentsError(file, "gradient_accumulation_steps", "\(a.gradientAccumulationSteps) × per_device_train_batch_size "
                                 + "\(a.perDeviceTrainBatchSize) is more than \(Int32.max) rows a step")
        }
        try r.double("num_train_epochs", &a.numTrainEpochs, min: 0)
        try r.int("max_steps", &a.maxSteps, min: -1)
        try r.double("learning_rate", &a.learningRate, min: 0)
        if let s = try r.string("lr_scheduler_type") {
            guard ["linear", "cosine", "constant", "constant_with_warmup"].contains(s) else {
                throw ArgumentsError(file, "lr_scheduler_type", "'\(s)' is not one of linear, cosine, constant, constant_with_warmup")
            }
            a.lrSchedulerType = s
        }
        try r.int("warmup_steps", &a.warmupSteps, min: 0)
        try r.double("warmup_ratio", &a.warmupRatio, min: 0)
        guard a.warmupRatio <= 1 else { throw ArgumentsError(file, "warmup_ratio", "must be ≤ 1 (a fraction of the steps), got \(a.warmupRatio)") }
        try r.double("weight_decay", &a.weightDecay, min: 0)
        try r.double("adam_beta1", &a.adamBeta1, min: 0)
        try r.double("adam_beta2", &a.adamBeta2, min: 0)
        try r.double("adam_epsilon", &a.adamEpsilon, min: 0)
        try r.double("max_grad_norm", &a.maxGradNorm, min: 0)
        try r.int("logging_steps", &a.loggingSteps, min: 1)
        try r.int("eval_steps", &a.evalSteps, min: 0)
        try r.int("save_steps", &a.saveSteps, min: 0)
        var limit = -1
        try r.int("save_total_limit", &limit, min: 1)
        a.saveTotalLimit = limit > 0 ? limit : nil
        try r.int("seed", &a.seed, min: 0)
        try r.bool("shuffle", &a.shuffle)
        try r.int("max_length", &a.maxSeqLen, min: 2)
        try r.int("max_seq_len", &a.maxSeqLen, min: 2)
        a.maxSeqLenGiven = ["max_length", "max_seq_len"].contains { obj[$0] != nil && !(obj[$0] is NSNull) }
        var prompt = -1
        for k in ["src_length", "max_prompt_length", "max_prompt_len"] { try r.int(k, &prompt, min: 1) }
        a.maxPromptLen = prompt > 0 ? prompt : nil
        a.chatTemplate = try r.string("chat_template")
        try r.bool("zero_padding", &a.zeroPadding)
        a.reportTo = try r.strings("report_to") ?? []
        a.loggingDir = try r.string("logging_dir")
        // Not built (rows are padded per batch, never packed): when asked for, the run says so.
        if a.zeroPadding { a.noteIgnored("zero_padding") }
        var threads = -1
        try r.int("num_threads", &threads, min: 1)
        if threads > 0, let problem = KernelThreads.problem(with: threads) { throw ArgumentsError(r.file, "num_threads", problem) }
        a.numThreads = threads > 0 ? threads : nil
        try r.bool("bf16", &a.bf16)
        try r.double("beta", &a.beta, min: 0)
        if let l = try r.strings("loss_type") { a.lossType = l }
        a.lossWeights = try r.doubles("loss_weights")
        try r.double("label_smoothing", &a.labelSmoothing, min: 0)
        try r.double("simpo_gamma", &a.simpoGamma, min: -1e9)
        try r.double("dpop_lambda", &a.dpopLambda, min: 0)
        try r.double("pref_loss_ratio", &a.prefLossRatio, min: 0)
        try r.double("sft_loss_ratio", &a.sftLossRatio, min: 0)
        try r.bool("reference_free", &a.referenceFree)
        a.refModelNameOrPath = try r.string("ref_model_name_or_path")
        try r.bool("precompute_ref_log_probs", &a.precomputeRefLogProbs)
        var updates = -1
        try r.int("ref_model_update_steps", &updates, min: -1)   // PaddleNLP's −1 (and 0): never
        a.refModelUpdateSteps = updates > 0 ? updates : nil
        try r.bool("lora", &a.lora)
        try r.int("lora_rank", &a.loraRank, min: 1)
        try r.double("lora_alpha", &a.loraAlpha, min: -1)
        try r.double("lora_dropout", &a.loraDropout, min: 0)
        try r.double("lora_plus_scale", &a.loraPlusScale, min: 0)
        try r.bool("rslora", &a.rslora)
        if let t = try r.strings("target_modules") { a.targetModules = t }
        a.loraPath = try r.string("lora_path")
        try r.bool("prefix_tuning", &a.prefixTuning)
        try r.int("num_prefix_tokens", &a.numPrefixTokens, min: 1)
        try r.bool("prefix_projection", &a.prefixProjection)
        var hidden = -1
        try r.int("prefix_projection_hidden_size", &hidden, min: 1)
        a.prefixProjectionHiddenSize = hidden > 0 ? hidden : nil
        a.prefixPath = try r.string("prefix_path")
        try a.parseConveniences(r, task: task)
        for (key, value) in [("adam_beta1", a.adamBeta1), ("adam_beta2", a.adamBeta2)] where !(value < 1) {
            throw ArgumentsError(file, key, "must be in [0, 1), got \(value)")
        }
        if let model = a.modelNameOrPath, !model.isEmpty,
           URL(fileURLWithPath: model).standardizedFileURL.resolvingSymlinksInPath() == URL(fileURLWithPath: a.outputDir).standardizedFileURL.resolvingSymlinksInPath() {
            throw ArgumentsError(file, "output_dir", "is model_name_or_path itself; the run would overwrite its starting model — choose another folder")
        }
        if a.lora {
            if task == .dpo, a.refModelUpdateSteps != nil {
                throw ArgumentsError(file, "ref_model_update_steps", "with LoRA the reference is the frozen base model (or base + lora_path) and is never updated; remove it")
            }
            if !(a.loraDropout < 1) { throw ArgumentsError(file, "lora_dropout", "must be in [0, 1), got \(a.loraDropout)") }
            if !(a.loraPlusScale > 0) { throw ArgumentsError(file, "lora_plus_scale", "must be > 0, got \(a.loraPlusScale)") }
            do { _ = try a.loraConfig() } catch { throw ArgumentsError(file, "target_modules", "\(error)") }
        }
        try a.checkPrefix(file: file, task: task)
        // PaddleNLP's shipped files all say bf16: true: where it cannot apply the run says so and trains in float32.
        if a.bf16 && !MixedPrecision.available { a.bf16 = false; a.noteIgnored("bf16") }
        return a
    }
}

/// Typed access to the argument object, naming the key and the expected type on errors.
struct ArgumentReader {
    let obj: [String: Any]
    let file: String

    func wrong(_ key: String, _ expected: String) -> ArgumentsError {
        ArgumentsError(file, key, "expected \(expected), found \(typeName(obj[key] as Any))")
    }

    func string(_ key: String) throws -> String? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        guard let s = v as? String else { throw wrong(key, "a string") }
        return s
    }

    func int(_ key: String, _ into: inout Int, min: Int) throws {
        guard let v = obj[key], !(v is NSNull) else { return }
        guard let n = v as? NSNumber, !isJSONBool(v), n.doubleValue == n.doubleValue.rounded() else { throw wrong(key, "an integer") }
        // Exactly, not through intValue: that turns 1e20 into Int.min and 2^64 - 1 into -1.
        guard let value = exactInteger(n) else { throw ArgumentsError(file, key, "\(n) does not fit a 64-bit integer") }
        guard value >= min else { throw ArgumentsError(file, key, "must be ≥ \(min), got \(value)") }
        into = value
    }

    func double(_ key: String, _ into: inout Double, min: Double) throws {
        guard let v = obj[key], !(v is NSNull) else { return }
        guard let n = v as? NSNumber, !isJSONBool(v) else { throw wrong(key, "a number") }
        guard n.doubleValue >= min else { throw ArgumentsError(file, key, "must be ≥ \(min), got \(n.doubleValue)") }
        into = n.doubleValue
    }

    func bool(_ key: String, _ into: inout Bool) throws {
        guard let v = obj[key], !(v is NSNull) else { return }
        guard isJSONBool(v), let b = v as? Bool else { throw wrong(key, "true or false") }
        into = b
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return [s] }
        guard let l = v as? [Any], l.allSatisfy({ $0 is String }) else { throw wrong(key, "a string or a list of strings") }
        return l.compactMap { $0 as? String }
    }

    func doubles(_ key: String) throws -> [Double]? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        guard let l = v as? [Any], l.allSatisfy({ $0 is NSNumber && !isJSONBool($0) }) else { throw wrong(key, "a list of numbers") }
        return l.compactMap { ($0 as? NSNumber)?.doubleValue }
    }
}

/// The candidate nearest to `name` by edit distance (the first on ties), for "did you mean"
/// suggestions. Only the first 64 characters of `name` are compared, so a name of megabytes
/// costs no more than a long one (each distance is computed once).
func closest(to name: String, in candidates: [String]) -> String {
    let name = String(name.prefix(64))
    var best: (name: String, distance: Int)?
    for c in candidates {
        let d = editDistance(c, name)
        if let b = best, b.distance <= d { continue }
        best = (c, d)
    }
    return best?.name ?? ""
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var prev = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let cur = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
            prev = cur
        }
    }
    return row[b.count]
}

extension TrainingArguments {
    /// Prefix-tuning fields that cannot be honoured: refused naming the field.
    func checkPrefix(file: String, task: Task) throws {
        guard prefixTuning else {
            if prefixPath != nil { throw ArgumentsError(file, "prefix_path", "needs prefix_tuning: true") }
            return
        }
        if lora { throw ArgumentsError(file, "prefix_tuning", "lora and prefix_tuning together are not supported; choose one") }
        if task == .dpo, refModelUpdateSteps != nil {
            throw ArgumentsError(file, "ref_model_update_steps", "with prefix tuning the reference is the frozen base model and is never updated; remove it")
        }
    }
}

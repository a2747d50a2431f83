import Foundation

/// PaddleNLP's and Hugging Face's run conveniences: evaluation and save strategies, early
/// stopping and the best model, resuming, the learning-rate floor, the optimizer name, and the
/// aliases PaddleNLP keeps for old names.
extension TrainingArguments {
    /// The keys parsed here (added to `known`).
    static let conveniences: [String] = [
        "evaluation_strategy", "eval_strategy", "save_strategy", "logging_first_step", "max_evaluate_steps", "optim",
        "min_learning_rate", "min_lr", "num_cycles", "decay_steps", "run_name", "load_best_model_at_end", "metric_for_best_model",
        "greater_is_better", "early_stopping_patience", "early_stopping_threshold", "resume_from_checkpoint",
        "overwrite_output_dir", "continue_training", "normalize_logps", "task_name_or_path", "intokens", "max_seq_length",
        "input_dir", "rslora_plus", "offset_alpha",
    ]

    /// The optimizers that are AdamW here (Hugging Face's and PaddleNLP's names for it).
    static let adamwNames = ["adamw", "adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_apex_fused", "adamw_custom"]

    /// Notes `key` as accepted with no effect (printed once when the run starts).
    mutating func noteIgnored(_ key: String) {
        if !ignoredKeys.contains(key) { ignoredKeys.append(key) }
    }

    /// One line per ignored key: the key and why it has no effect here.
    public var ignoredNotes: [String] {
        ignoredKeys.map { key in
            let why = Self.extraReasons[key] ?? InertFields.reasons[key] ?? "it has no meaning here"
            return "note: '\(key)' has no effect here: \(why)"
        }
    }

    static let extraReasons: [String: String] = [
        "zero_padding": "rows are padded per batch, never packed",
        "bf16": "bf16 products need a CPU with AVX-512 BF16; this one trains in float32",
        "continue_training": "DPO starts from model_name_or_path's weights (only pretraining and SFT start from random ones)",
        "intokens": "PaddleNLP's old name for zero_padding; rows are padded per batch, never packed",
    ]

    mutating func parseConveniences(_ r: ArgumentReader, task: Task) throws {
        let file = r.file
        for key in ["evaluation_strategy", "eval_strategy", "save_strategy"] {
            guard let s = try r.string(key) else { continue }
            guard ["steps", "epoch", "no"].contains(s) else { throw ArgumentsError(file, key, "'\(s)' is not one of steps, epoch, no") }
            if key == "save_strategy" { saveStrategy = s } else { evalStrategy = s }
        }
        try r.bool("logging_first_step", &loggingFirstStep)
        try r.int("max_evaluate_steps", &maxEvaluateSteps, min: -1)
        if let o = try r.string("optim") {
            guard Self.adamwNames.contains(o) else {
                throw ArgumentsError(file, "optim", "'\(o)' is not available; the optimizer is AdamW (accepted names: \(Self.adamwNames.joined(separator: ", ")))")
            }
            optim = o
        }
        try r.double("min_lr", &minLearningRate, min: 0)
        try r.double("min_learning_rate", &minLearningRate, min: 0)
        guard minLearningRate <= learningRate else {
            throw ArgumentsError(file, "min_learning_rate", "\(minLearningRate) is above learning_rate \(learningRate)")
        }
        try r.double("num_cycles", &numCycles, min: 0)
        try r.int("decay_steps", &decaySteps, min: 0)
        runName = try r.string("run_name")
        try r.bool("load_best_model_at_end", &loadBestModelAtEnd)
        metricForBestModel = try r.string("metric_for_best_model")
        var greater = false
        if r.obj["greater_is_better"] != nil, !(r.obj["greater_is_better"] is NSNull) { try r.bool("greater_is_better", &greater); greaterIsBetter = greater }
        var patience = -1
        try r.int("early_stopping_patience", &patience, min: 1)
        earlyStoppingPatience = patience > 0 ? patience : nil
        try r.double("early_stopping_threshold", &earlyStoppingThreshold, min: 0)
        switch r.obj["resume_from_checkpoint"] {
        case nil, is NSNull: break
        case let v? where isJSONBool(v): resumeFromCheckpoint = (v as? Bool) == true ? "true" : nil
        case let s as String: resumeFromCheckpoint = s.isEmpty ? nil : s
        default: throw r.wrong("resume_from_checkpoint", "a checkpoint folder or true")
        }
        try r.bool("overwrite_output_dir", &overwriteOutputDir)
        try Self.readTruth(r, "continue_training", &continueTraining)
        if task == .dpo, !continueTraining { noteIgnored("continue_training") }
        try r.bool("normalize_logps", &normalizeLogps)
        var offset = 0.0
        try r.double("offset_alpha", &offset, min: 0)
        if offset > 0 { throw ArgumentsError(file, "offset_alpha", "score-based DPO (offset_alpha > 0) is not available; rows carry no scores here") }
        // PaddleNLP's old names.
        if trainDatasetPath == nil { trainDatasetPath = try r.string("task_name_or_path") ?? r.string("input_dir") }
        var intokens = false
        try r.bool("intokens", &intokens)
        if intokens { zeroPadding = true; noteIgnored("intokens") }
        if r.obj["max_seq_length"] != nil, r.obj["max_seq_len"] == nil, r.obj["max_length"] == nil {
            try r.int("max_seq_length", &maxSeqLen, min: 2)
            maxSeqLenGiven = !(r.obj["max_seq_length"] is NSNull)
        }
        // PaddleNLP's rslora_plus: rsLoRA with α 4 and LoRA+ with B at 4 × learning_rate.
        var rsloraPlus = false
        try r.bool("rslora_plus", &rsloraPlus)
        if rsloraPlus { rslora = true; loraAlpha = 4; loraPlusScale = 4 }
        try checkBestModel(file)
    }

    /// `continue_training` is a boolean in ModelConfig but written 0/1 in PaddleNLP's pretraining files.
    static func readTruth(_ r: ArgumentReader, _ key: String, _ into: inout Bool) throws {
        guard let v = r.obj[key], !(v is NSNull) else { return }
        if isJSONBool(v) { into = (v as? Bool) ?? into; return }
        guard let n = v as? NSNumber, n.doubleValue == 0 || n.doubleValue == 1 else { throw r.wrong(key, "true, false, 0 or 1") }
        into = n.doubleValue == 1
    }

    func checkBestModel(_ file: String) throws {
        if earlyStoppingPatience != nil || loadBestModelAtEnd, evalStrategy == "no" {
            throw ArgumentsError(file, loadBestModelAtEnd ? "load_best_model_at_end" : "early_stopping_patience",
                                 "needs evaluations, but evaluation_strategy is \"no\"")
        }
        if let m = metricForBestModel, m.isEmpty { throw ArgumentsError(file, "metric_for_best_model", "is empty") }
    }

    /// The metric best-model selection and early stopping compare (`eval_` prefixed as logged),
    /// and whether larger is better (Hugging Face's rule: not for a loss, unless told).
    public var bestMetric: (name: String, greaterIsBetter: Bool) {
        let raw = metricForBestModel ?? "loss"
        let name = raw.hasPrefix("eval_") ? raw : "eval_" + raw
        return (name, greaterIsBetter ?? !(name == "eval_loss" || name.hasSuffix("loss")))
    }

    /// Evaluation and save intervals in optimizer steps for a run of `stepsPerEpoch` steps an
    /// epoch: "epoch" is once an epoch, "steps" is `eval_steps` (else `logging_steps`, as
    /// PaddleNLP does), "no" is none; without a strategy the numbers are used as given.
    public func cadence(stepsPerEpoch: Int) -> (eval: Int, save: Int) {
        var eval = evalSteps, save = saveSteps
        switch evalStrategy {
        case "epoch": eval = stepsPerEpoch
        case "no": eval = 0
        case "steps": eval = evalSteps > 0 ? evalSteps : loggingSteps
        default: break
        }
        switch saveStrategy {
        case "epoch": save = stepsPerEpoch
        case "no": save = 0
        default: break
        }
        return (eval, save)
    }

    /// The dev rows evaluation reads: all, or `max_evaluate_steps` batches of them.
    public func evaluationLimit<T>(_ dev: [T]) -> [T] {
        guard maxEvaluateSteps > 0 else { return dev }
        let (n, overflow) = maxEvaluateSteps.multipliedReportingOverflow(by: perDeviceEvalBatchSize)
        return overflow ? dev : Array(dev.prefix(n))
    }
}

/// "unknown argument" with a suggestion only when a known key is close (never a far-off guess).
func unknownKeyProblem(_ key: String) -> String {
    let guess = closest(to: key, in: TrainingArguments.known)
    let distance = editDistance(guess, String(key.prefix(64)))
    if distance <= max(2, min(key.count, 64) / 4) { return "unknown argument; did you mean '\(guess)'?" }
    return "unknown argument (not a llama-align or PaddleNLP field; see README \"Coming from PaddleNLP\")"
}

import Foundation

/// `trainer_state.json`: Hugging Face's `TrainerState` layout (`global_step`, `epoch`,
/// `max_steps`, `logging_steps`, `eval_steps`, `save_steps`, `train_batch_size`,
/// `num_train_epochs`, `log_history`, `best_metric`, `best_global_step`,
/// `best_model_checkpoint`, …), which `transformers.TrainerState.load_from_json` reads, with
/// what this project needs to resume on the same trajectory (seed, data position) under
/// `stateful_callbacks["LlamaAlign"]["attributes"]`: `load_from_json` passes every top-level key
/// to the dataclass, so a key of our own beside them would make it raise.
public struct TrainerState: Sendable, Equatable {
    /// `global_step`.
    public var step: Int
    public var epoch: Double
    public var seed: Int
    public var loader: LoaderState
    public var maxSteps = 0
    public var loggingSteps = 500
    public var evalSteps = 500
    public var saveSteps = 500
    public var trainBatchSize: Int?
    public var numTrainEpochs = 0
    /// `num_input_tokens_seen`: tokens of the training rows so far, padding excluded (TRL's `num_tokens`).
    public var numInputTokensSeen = 0
    /// One entry per line of `metrics.jsonl` up to `step` (train and eval); NaN is written as null.
    public var logHistory: [[String: Double]] = []
    public var bestMetric: Double?
    public var bestGlobalStep: Int?
    public var bestModelCheckpoint: String?

    public init(step: Int, epoch: Double, seed: Int, loader: LoaderState) {
        self.step = step; self.epoch = epoch; self.seed = seed; self.loader = loader
    }

    /// The state of a run with `args` (whose `max_steps` is `maxSteps`) at `step`, its log history read from
    /// `output_dir/metrics.jsonl`.
    public init(step: Int, epoch: Double, loader: LoaderState, args: TrainingArguments, maxSteps: Int) {
        self.init(step: step, epoch: epoch, seed: args.seed, loader: loader)
        self.maxSteps = maxSteps
        loggingSteps = args.loggingSteps
        evalSteps = args.evalSteps > 0 ? args.evalSteps : 500
        saveSteps = args.saveSteps > 0 ? args.saveSteps : 500
        trainBatchSize = args.perDeviceTrainBatchSize
        numTrainEpochs = Int(args.numTrainEpochs.rounded(.up))
        logHistory = Self.history(path: (args.outputDir as NSString).appendingPathComponent("metrics.jsonl"), upTo: step)
    }

    /// The lines of a `metrics.jsonl` with `step` ≤ `upTo`, in order (null values as NaN).
    static func history(path: String, upTo: Int) -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let s = (obj["step"] as? NSNumber)?.intValue, s <= upTo else { return nil }
            return obj.mapValues { ($0 as? NSNumber)?.doubleValue ?? .nan }
        }
    }

    /// The JSON text: keys sorted, two-space indentation (as transformers writes it).
    public func json() throws -> Data {
        func number(_ v: Double) -> Any {
            guard v.isFinite else { return NSNull() }
            return v == v.rounded() && abs(v) < 1e15 ? Int(v) as Any : v as Any
        }
        let o: [String: Any] = [
            "global_step": step, "epoch": number(epoch), "max_steps": maxSteps,
            "logging_steps": loggingSteps, "eval_steps": evalSteps, "save_steps": saveSteps,
            "train_batch_size": trainBatchSize.map { $0 as Any } ?? NSNull(), "num_train_epochs": numTrainEpochs,
            "num_input_tokens_seen": numInputTokensSeen, "total_flos": 0,
            "log_history": logHistory.map { $0.mapValues(number) },
            "best_metric": bestMetric.map(number) ?? NSNull(), "best_global_step": bestGlobalStep.map { $0 as Any } ?? NSNull(),
            "best_model_checkpoint": bestModelCheckpoint.map { $0 as Any } ?? NSNull(),
            "is_local_process_zero": true, "is_world_process_zero": true, "is_hyper_param_search": false,
            "trial_name": NSNull(), "trial_params": NSNull(),
            "stateful_callbacks": ["LlamaAlign": ["args": [String: Any](), "attributes": [
                "seed": seed, "loader": ["epoch": loader.epoch, "position": loader.position]] as [String: Any]] as [String: Any]],
        ]
        let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return Data((HFConfig.pythonSpacing(String(decoding: data, as: UTF8.self)) + "\n").utf8)
    }

    /// Reads `json()`'s layout, or this project's earlier one (`step`, `epoch`, `seed`, `loader` at the top).
    public init(json data: Data, path: String) throws {
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw RuntimeIOError("\(path): not a trainer state (not a JSON object)")
        }
        let ours = ((o["stateful_callbacks"] as? [String: Any])?["LlamaAlign"] as? [String: Any])?["attributes"] as? [String: Any] ?? o
        func int(_ obj: [String: Any], _ key: String) throws -> Int {
            guard let n = obj[key] as? NSNumber, let i = Int(exactly: n.doubleValue) else {
                throw RuntimeIOError("\(path): not a trainer state written by llama-align ('\(key)' is missing or not an integer)")
            }
            return i
        }
        guard let loader = ours["loader"] as? [String: Any] else {
            throw RuntimeIOError("\(path): not a trainer state written by llama-align (no data position: stateful_callbacks.LlamaAlign.attributes.loader)")
        }
        let step = try int(o, o["global_step"] != nil ? "global_step" : "step")
        self.init(step: step, epoch: (o["epoch"] as? NSNumber)?.doubleValue ?? 0, seed: try int(ours, "seed"),
                  loader: LoaderState(epoch: try int(loader, "epoch"), position: try int(loader, "position")))
        maxSteps = (o["max_steps"] as? NSNumber)?.intValue ?? 0
        loggingSteps = (o["logging_steps"] as? NSNumber)?.intValue ?? 500
        evalSteps = (o["eval_steps"] as? NSNumber)?.intValue ?? 500
        saveSteps = (o["save_steps"] as? NSNumber)?.intValue ?? 500
        trainBatchSize = (o["train_batch_size"] as? NSNumber)?.intValue
        numTrainEpochs = (o["num_train_epochs"] as? NSNumber)?.intValue ?? 0
        numInputTokensSeen = (o["num_input_tokens_seen"] as? NSNumber)?.intValue ?? 0
        logHistory = (o["log_history"] as? [[String: Any]] ?? []).map { $0.mapValues { ($0 as? NSNumber)?.doubleValue ?? .nan } }
        bestMetric = (o["best_metric"] as? NSNumber)?.doubleValue
        bestGlobalStep = (o["best_global_step"] as? NSNumber)?.intValue
        bestModelCheckpoint = o["best_model_checkpoint"] as? String
    }
}

import Foundation
import KernelRuntime

/// Best-model selection and early stopping over the evaluations of a run (Hugging Face's rules):
/// an evaluation improves on the best when its `metric_for_best_model` is better (larger when
/// `greater_is_better`) by more than `early_stopping_threshold`; after `early_stopping_patience`
/// evaluations in a row without improvement the run stops.
struct BestModel {
    private(set) var metric: String
    private(set) var greaterIsBetter: Bool
    let threshold: Double
    let patience: Int?
    private(set) var best: Double?
    private(set) var bestStep: Int?
    private(set) var misses = 0

    /// What a checkpoint keeps of it (`checkpoint-N/best_model.json`), so a resumed run compares
    /// with the same best and counts the same misses.
    struct State: Codable, Equatable {
        var metric: String
        var greaterIsBetter: Bool
        var best: Double?
        var bestStep: Int?
        var misses: Int
    }
    static let file = "best_model.json"

    /// nil when the arguments ask for neither a best model nor early stopping. `restoring` is
    /// the state saved with the checkpoint a run resumes from.
    init?(_ args: TrainingArguments, restoring saved: State? = nil) {
        guard args.loadBestModelAtEnd || args.earlyStoppingPatience != nil || args.metricForBestModel != nil else { return nil }
        (metric, greaterIsBetter) = args.bestMetric
        threshold = args.earlyStoppingThreshold
        patience = args.earlyStoppingPatience
        if let saved {
            (metric, greaterIsBetter, best, bestStep, misses) = (saved.metric, saved.greaterIsBetter, saved.best, saved.bestStep, saved.misses)
        }
    }

    var state: State { State(metric: metric, greaterIsBetter: greaterIsBetter, best: best, bestStep: bestStep, misses: misses) }

    /// True when the saved misses already reached the patience (an early-stopped run started again).
    var stopped: Bool { patience.map { misses >= $0 } ?? false }

    /// The state saved in checkpoint folder `dir`, if any.
    static func saved(in dir: String) -> State? {
        FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(file)).flatMap { try? JSONDecoder().decode(State.self, from: $0) }
    }

    /// Writes the state into checkpoint folder `dir`.
    func write(to dir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try BinaryIO.writeAtomically(try enc.encode(state), to: (dir as NSString).appendingPathComponent(Self.file))
    }

    /// Records the evaluation at `step`; returns whether it is the new best and whether to stop.
    /// A metric the evaluation does not report is looked up as TRL's `mean_token_accuracy` for
    /// PaddleNLP's `accuracy`, else replaced by `eval_loss` with a note (`note` gets the line).
    mutating func record(_ metrics: [String: Double], step: Int, note: (String) -> Void = { _ in }) throws -> (improved: Bool, stop: Bool) {
        if metrics[metric] == nil {
            let have = metrics.keys.filter { $0.hasPrefix("eval_") }.sorted().joined(separator: ", ")
            if metric == "eval_accuracy", metrics["eval_mean_token_accuracy"] != nil {
                metric = "eval_mean_token_accuracy"
            } else if metrics["eval_loss"] != nil {
                note("note: metric_for_best_model '\(metric)' is not computed here (evaluation reports \(have)); eval_loss (lower is better) is used")
                (metric, greaterIsBetter) = ("eval_loss", false)
            } else {
                throw RuntimeError("metric_for_best_model '\(metric)' is not among the evaluation's metrics (\(have))")
            }
        }
        let v = metrics[metric] ?? .nan
        let better = best.map { b in (greaterIsBetter ? v > b : v < b) && abs(v - b) > threshold } ?? true
        if better { best = v; bestStep = step; misses = 0 } else { misses += 1 }
        return (better, patience.map { misses >= $0 } ?? false)
    }
}

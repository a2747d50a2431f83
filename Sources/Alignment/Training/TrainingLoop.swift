import Foundation
import KernelRuntime

/// What one optimizer step of a run reports to `TrainingLoop`.
struct RunStepReport {
    /// The step's own metrics (`TrainingLoop` adds `step`, `epoch`, `learning_rate` and `tokens_per_second`).
    var metrics: [String: Double]
    /// Tokens in the step's rows, padding included (for `tokens_per_second`).
    var tokens: Int
    /// The job's progress fields (`TrainingLoop` appends the running `tok/s`).
    var progress: [(String, String)]
}

/// The job-specific half of a training run (pretraining and SFT, DPO): `TrainingLoop` drives it.
protocol RunJob {
    associatedtype Item: Sendable
    /// One optimizer step over `micro` (the micro-batches of one gradient-accumulation step) at `lr`.
    mutating func step(_ micro: [[Item]], lr: Double) throws -> RunStepReport
    /// After step `step`, logged as `metrics`, and before its evaluation and save.
    mutating func afterStep(_ step: Int, metrics: [String: Double]) throws
    /// Metrics on the dev split, named as `metrics.jsonl` records them (`eval_…`); nil without dev data.
    mutating func evaluate() throws -> [String: Double]?
    /// Writes `checkpoint-STEP`; `save_total_limit` never removes `checkpoint-PROTECT` (the best model's).
    func save(step: Int, loader: LoaderState, epoch: Double, protect: Int?) throws
}

/// The newest checkpoint in `output_dir`: a run started again resumes from it.
struct ResumePoint {
    var path: String
    /// The model; nil for a LoRA checkpoint (adapter only).
    var weights: LlamaWeights?
    var optimizer: [String: [Float]]
    var state: TrainerState

    /// The newest complete checkpoint in `outputDir`, loaded; nil when there is none.
    static func latest(in outputDir: String) throws -> ResumePoint? {
        for skipped in TrainingCheckpoint.incompleteNewer(in: outputDir) {
            FileHandle.standardError.write(Data("note: \(skipped) has no trainer_state.json (not a complete checkpoint); it is not resumed from\n".utf8))
        }
        guard let path = TrainingCheckpoint.latest(in: outputDir) else { return nil }
        let c = try TrainingCheckpoint.load(path)
        return ResumePoint(path: path, weights: c.weights, optimizer: c.optimizer, state: c.state)
    }
}

/// The loop every training job shares: draws the micro-batches of each step from the loader,
/// takes the learning rate from the schedule, runs the job's step, and keeps the cadence of the
/// argument file — metrics every `logging_steps` (and the last step), the progress line, an
/// evaluation every `eval_steps` and a checkpoint every `save_steps` (neither at the last step),
/// then the final evaluation and checkpoint.
///
/// Under `mpirun -np N` every rank runs the same loop: each step draws the micro-batches of the
/// whole global batch (N × `gradient_accumulation_steps`, the same on every rank) and the job
/// runs its share; only rank 0 logs, draws the progress line and saves.
struct TrainingLoop<Item: Sendable> {
    let args: TrainingArguments
    var loader: DataLoader<Item>
    let maxSteps: Int
    let schedule: LRSchedule
    let metrics: MetricsLogger
    /// The progress line's label.
    let label: String
    /// Stops after this many steps of this process (for tests of resuming); nil runs to the end.
    var stopAfter: Int?
    /// The best-model / early-stopping state of the checkpoint resumed from.
    var bestSaved: BestModel.State?

    /// Where the loop stopped: the last step when it finished (after the final evaluation and
    /// checkpoint; before `maxSteps` when early stopping ended it), else the step it was stopped
    /// at by `stopAfter`. `best` is the best evaluation's checkpoint when `load_best_model_at_end`.
    struct Outcome {
        var steps: Int
        var finished: Bool
        var best: (step: Int, path: String, value: Double, metric: String)? = nil
    }

    /// Runs steps `startStep ..< maxSteps`.
    mutating func run<Job: RunJob>(_ job: inout Job, from startStep: Int) throws -> Outcome where Job.Item == Item {
        let progress = ProgressBar(total: maxSteps, label: label, every: args.loggingSteps, silent: !World.isMain)
        StopRequest.install()
        let started = Date()
        var tokens = 0
        var step = startStep
        let cadence = args.cadence(stepsPerEpoch: args.stepsPerEpoch(rows: loader.items.count, ranks: World.size))
        var tracker = BestModel(args, restoring: bestSaved)
        var stopEarly = false
        if let t = tracker, t.stopped {
            // Early stopping had ended this run; it was saved then: nothing more to do.
            progress.message("early stopping had ended this run at step \(step) (best \(t.metric) \(Self.number(t.best ?? .nan)) at step \(t.bestStep ?? 0))")
            return Outcome(steps: step, finished: true, best: bestOutcome(t))
        }
        while step < maxSteps && !stopEarly {
            if let stopAfter, step - startStep >= stopAfter { break }
            let micro = (0..<args.gradientAccumulationSteps * World.size).map { _ in loader.next() }
            let lr = schedule.rate(at: step)
            let t0 = Date()
            var report = try job.step(micro, lr: lr)
            step += 1
            if let bad = NonFiniteStep.check(step: step, metrics: report.metrics, optimizer: { (job as? HasOptimizer)?.optimizerForDiagnosis }) {
                progress.finish()
                throw bad
            }
            tokens += report.tokens
            report.metrics["step"] = Double(step)
            report.metrics["epoch"] = loader.epochProgress
            report.metrics["learning_rate"] = lr
            report.metrics["tokens_per_second"] = Double(report.tokens) / max(Date().timeIntervalSince(t0), 1e-9)
            if step % args.loggingSteps == 0 || step == maxSteps || (args.loggingFirstStep && step == 1) { try metrics.log(report.metrics) }
            let rate = Double(tokens) / max(Date().timeIntervalSince(started), 1e-9)
            progress.update(step: step, fields: report.progress + [("tok/s", String(format: "%.0f", rate))])
            try job.afterStep(step, metrics: report.metrics)
            var saved = false
            if cadence.eval > 0, step % cadence.eval == 0, step < maxSteps, let e = try job.evaluate() {
                try metrics.log(e.merging(["step": Double(step)]) { _, s in s })
                progress.message("eval at step \(step): " + Self.describe(e))
                if var t = tracker {
                    let (improved, stop) = try t.record(e, step: step, note: progress.message)
                    tracker = t
                    stopEarly = stop
                    // The best model must be on disk to be restored at the end.
                    if improved, args.loadBestModelAtEnd { try save(&job, step, progress, protect: step, tracker: t); saved = true }
                    if stop { progress.message("early stopping: \(t.metric) has not improved for \(t.misses) evaluations (best \(Self.number(t.best ?? .nan)) at step \(t.bestStep ?? 0))") }
                }
            }
            if !saved, cadence.save > 0, step % cadence.save == 0, step < maxSteps, !stopEarly {
                try save(&job, step, progress, protect: tracker?.bestStep, tracker: tracker)
                saved = true
            }
            // Every rank stops at the same step when any of them was signalled.
            if try World.any(StopRequest.signal != nil), step < maxSteps, !stopEarly {
                let signal = StopRequest.signal ?? SIGTERM
                if !saved { try save(&job, step, progress, protect: tracker?.bestStep, tracker: tracker) }
                progress.finish()
                throw Interrupted(signal: signal, step: step, outputDir: args.outputDir)
            }
        }
        progress.finish()
        guard step >= maxSteps || stopEarly else { return Outcome(steps: step, finished: false) }
        // (Early stopping has just evaluated this step.)
        if !stopEarly, let e = try job.evaluate() {
            try metrics.log(e.merging(["step": Double(step)]) { _, s in s })
            progress.message("eval at step \(step): " + Self.describe(e))
            if var t = tracker { _ = try t.record(e, step: step, note: progress.message); tracker = t }
        }
        try save(&job, step, progress, protect: tracker?.bestStep, tracker: tracker)
        return Outcome(steps: step, finished: true, best: tracker.flatMap(bestOutcome))
    }

    /// The best checkpoint to restore at the end (only with `load_best_model_at_end`).
    func bestOutcome(_ t: BestModel) -> (step: Int, path: String, value: Double, metric: String)? {
        guard args.loadBestModelAtEnd, let s = t.bestStep, let v = t.best else { return nil }
        return (s, checkpoint(s), v, t.metric)
    }

    func checkpoint(_ step: Int) -> String { (args.outputDir as NSString).appendingPathComponent("checkpoint-\(step)") }

    /// Rank 0 writes the checkpoint (and the best-model record beside it); the other ranks of a
    /// data-parallel job write nothing.
    func save<Job: RunJob>(_ job: inout Job, _ step: Int, _ progress: ProgressBar, protect: Int?, tracker: BestModel?) throws {
        guard World.isMain else { return }
        try job.save(step: step, loader: loader.state, epoch: loader.epochProgress, protect: protect)
        try tracker?.write(to: checkpoint(step))
        progress.message("saved \(checkpoint(step))")
    }

    /// `eval_loss 1.2345  eval_rewards/accuracies 0.7500`: the loss, DPO's accuracy and margin
    /// when present (every metric is in metrics.jsonl).
    static func describe(_ m: [String: Double]) -> String {
        let main = ["eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"].filter { m[$0] != nil }
        return (main.isEmpty ? m.keys.sorted() : main).map { "\($0) \(number(m[$0] ?? .nan))" }.joined(separator: "  ")
    }

    static func number(_ v: Double) -> String { v.isFinite && abs(v) < 1e5 ? String(format: "%.4f", v) : "\(v)" }
}

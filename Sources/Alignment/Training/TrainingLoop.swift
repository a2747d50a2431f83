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
    /// Writes `checkpoint-STEP`.
    func save(step: Int, loader: LoaderState, epoch: Double) throws
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

    /// Where the loop stopped: `maxSteps` when it finished (after the final evaluation and
    /// checkpoint), else the step it was stopped at by `stopAfter`.
    struct Outcome {
        var steps: Int
        var finished: Bool
    }

    /// Runs steps `startStep ..< maxSteps`.
    mutating func run<Job: RunJob>(_ job: inout Job, from startStep: Int) throws -> Outcome where Job.Item == Item {
        let progress = ProgressBar(total: maxSteps, label: label, every: args.loggingSteps, silent: !World.isMain)
        StopRequest.install()
        let started = Date()
        var tokens = 0
        var step = startStep
        while step < maxSteps {
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
            if step % args.loggingSteps == 0 || step == maxSteps { try metrics.log(report.metrics) }
            let rate = Double(tokens) / max(Date().timeIntervalSince(started), 1e-9)
            progress.update(step: step, fields: report.progress + [("tok/s", String(format: "%.0f", rate))])
            try job.afterStep(step, metrics: report.metrics)
            if args.evalSteps > 0, step % args.evalSteps == 0, step < maxSteps, let e = try job.evaluate() {
                try metrics.log(e.merging(["step": Double(step)]) { _, s in s })
            }
            let saved = args.saveSteps > 0 && step % args.saveSteps == 0
            if saved, step < maxSteps, World.isMain {
                try job.save(step: step, loader: loader.state, epoch: loader.epochProgress)
            }
            // Every rank stops at the same step when any of them was signalled.
            if try World.any(StopRequest.signal != nil), step < maxSteps {
                let signal = StopRequest.signal ?? SIGTERM
                if !saved, World.isMain { try job.save(step: step, loader: loader.state, epoch: loader.epochProgress) }
                progress.finish()
                throw Interrupted(signal: signal, step: step, outputDir: args.outputDir)
            }
        }
        progress.finish()
        guard step >= maxSteps else { return Outcome(steps: step, finished: false) }
        if let e = try job.evaluate() { try metrics.log(e.merging(["step": Double(maxSteps)]) { _, s in s }) }
        if World.isMain { try job.save(step: maxSteps, loader: loader.state, epoch: loader.epochProgress) }
        return Outcome(steps: maxSteps, finished: true)
    }
}

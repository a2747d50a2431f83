import Foundation
import KernelRuntime

extension ResumePoint {
    /// The checkpoint a run starts from: `resume_from_checkpoint` (a folder, or "true" for the
    /// newest in `output_dir`, which must exist), else the newest in `output_dir` — unless
    /// `overwrite_output_dir`, which starts afresh and removes the earlier `checkpoint-N` folders.
    static func chosen(by args: TrainingArguments, log: (String) -> Void) throws -> ResumePoint? {
        switch args.resumeFromCheckpoint {
        case "true"?:
            guard let point = try latest(in: args.outputDir) else {
                throw RuntimeError("resume_from_checkpoint is true but \(args.outputDir) holds no complete checkpoint-N folder")
            }
            return point
        case let path?:
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
                throw RuntimeError("resume_from_checkpoint: \(path) is not a folder")
            }
            guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("trainer_state.json")) else {
                throw RuntimeError("resume_from_checkpoint: \(path) has no trainer_state.json (not a checkpoint written by a training run)")
            }
            let c = try TrainingCheckpoint.load(path)
            return ResumePoint(path: path, weights: c.weights, optimizer: c.optimizer, state: c.state)
        case nil:
            guard args.overwriteOutputDir else { return try latest(in: args.outputDir) }
            // In a data-parallel job rank 0 alone removes them.
            guard World.isMain else { return nil }
            let old = TrainingCheckpoint.all(in: args.outputDir)
            for c in old { try FileManager.default.removeItem(atPath: c.path) }
            if !old.isEmpty { log("overwrite_output_dir: removed \(old.count) earlier checkpoint folder(s) in \(args.outputDir); starting afresh") }
            return nil
        }
    }
}

extension TrainingArguments {
    /// What a run prints before it starts: its name and a line for every accepted field that has no effect here.
    var startNotes: [String] {
        (runName.map { ["run: \($0)"] } ?? []) + ignoredNotes
    }

    /// A note when best-model selection or early stopping is asked for but there is nothing to evaluate.
    func evaluationNote(hasDev: Bool) -> String? {
        guard !hasDev, loadBestModelAtEnd || earlyStoppingPatience != nil else { return nil }
        return "note: '\(loadBestModelAtEnd ? "load_best_model_at_end" : "early_stopping_patience")' has no effect here: there is no dev data "
            + "to evaluate (set dev_dataset_path or put dev.jsonl / dev.json beside train)"
    }
}

extension TrainingArguments {
    /// With `load_best_model_at_end`: the best evaluation's model (or adapter) replaces the final
    /// one in `output_dir` — its checkpoint's model files are copied over (the optimizer and
    /// trainer state stay in the checkpoint).
    func restoreBest(_ best: (step: Int, path: String, value: Double, metric: String)?, finalStep: Int, log: (String) -> Void) throws {
        guard let best else { return }
        let metric = best.metric
        guard best.step != finalStep else {
            log("best model: the final one (step \(best.step), \(metric) \(best.value)) is in \(outputDir)")
            return
        }
        let fm = FileManager.default
        for name in try fm.contentsOfDirectory(atPath: best.path).sorted() where !["optimizer.safetensors", "trainer_state.json"].contains(name) {
            let from = (best.path as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: from, isDirectory: &isDir), !isDir.boolValue else { continue }
            try BinaryIO.writeAtomically(try BinaryIO.readFile(from), to: (outputDir as NSString).appendingPathComponent(name))
        }
        log("best model: step \(best.step) (\(metric) \(best.value)) from \(best.path) is now the model in \(outputDir)")
    }
}

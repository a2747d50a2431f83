import Foundation
import Testing
@testable import Alignment

/// Early stopping, the best model, `resume_from_checkpoint`, `max_evaluate_steps`,
/// `normalize_logps` and the progress line, through the library's runs.
@Suite(.serialized) struct TrainingConveniencesTests {
    @Test func earlyStoppingStopsAfterPatienceEvaluationsWithoutImprovement() throws {
        // learning_rate 0: the model never changes, so no evaluation after the first improves.
        // (A threshold, so a last-digit wobble of the evaluation cannot count as an improvement.)
        let a = try Demo.args(.sft, ["learning_rate": 0.0, "eval_steps": 2, "early_stopping_patience": 2, "early_stopping_threshold": 1e-4,
                                     "max_steps": 40])
        let s = try TrainingRun(args: a, task: .sft).run()
        #expect(s.steps == 6)
        let m = try Demo.metrics(a.outputDir)
        #expect(m.compactMap { $0["step"] }.max() == 6)
        #expect(m.filter { $0["eval_loss"] != nil }.compactMap { $0["step"] } == [2, 4, 6])
        #expect(TrainingCheckpoint.latest(in: a.outputDir)?.hasSuffix("checkpoint-6") == true)
        let saved = try #require(BestModel.saved(in: a.outputDir + "/checkpoint-6"))
        #expect(saved.bestStep == 2 && saved.misses == 2 && saved.metric == "eval_loss" && !saved.greaterIsBetter)
        // Started again, the run knows it had stopped: no more steps, nothing more logged.
        let again = try TrainingRun(args: a, task: .sft).run()
        let after = try Demo.metrics(a.outputDir)
        #expect(again.steps == 6 && after.count == m.count)
    }

    @Test func theBestCheckpointBecomesTheFinalModelAndSurvivesTheSaveLimit() throws {
        // greater_is_better on eval_loss: the worst model wins, which is the first evaluation's.
        let a = try Demo.args(.sft, ["eval_steps": 5, "save_steps": 5, "save_total_limit": 1, "load_best_model_at_end": true,
                                     "metric_for_best_model": "loss", "greater_is_better": true, "max_steps": 20])
        _ = try TrainingRun(args: a, task: .sft).run()
        let evals = try Demo.metrics(a.outputDir).filter { $0["eval_loss"] != nil }
        let worst = try #require(evals.max { ($0["eval_loss"] ?? 0) < ($1["eval_loss"] ?? 0) }?["step"]).rounded()
        #expect(worst == 5)
        #expect(TrainingCheckpoint.all(in: a.outputDir).map(\.step) == [5, 20])
        let best = try Data(contentsOf: URL(fileURLWithPath: a.outputDir + "/checkpoint-5/model.safetensors"))
        let final = try Data(contentsOf: URL(fileURLWithPath: a.outputDir + "/model.safetensors"))
        let last = try Data(contentsOf: URL(fileURLWithPath: a.outputDir + "/checkpoint-20/model.safetensors"))
        #expect(final == best && final != last)
    }

    @Test func resumeFromACheckpointElsewhereContinuesTheSameTrajectory() throws {
        // Two in-process runs compared bit for bit: no thread-count change beside them.
        try KernelThreadsLock.held {
            let whole = try Demo.args(.sft, ["save_steps": 5, "max_steps": 10])
            _ = try TrainingRun(args: whole, task: .sft).run()
            let other = try Demo.args(.sft, ["max_steps": 10, "resume_from_checkpoint": whole.outputDir + "/checkpoint-5"])
            _ = try TrainingRun(args: other, task: .sft).run()
            let a = try Demo.metrics(whole.outputDir).filter { ($0["step"] ?? 0) > 5 && $0["loss"] != nil }
            let b = try Demo.metrics(other.outputDir).filter { $0["loss"] != nil }
            #expect(a.count == 5 && b.map { $0["loss"] } == a.map { $0["loss"] } && b.first?["step"] == 6)
            let none = try Demo.args(.sft, ["resume_from_checkpoint": true])
            #expect { try TrainingRun(args: none, task: .sft).run() } throws: { "\($0)".contains("resume_from_checkpoint is true") }
            let missing = try Demo.args(.sft, ["resume_from_checkpoint": "/nonexistent/checkpoint-3"])
            #expect { try TrainingRun(args: missing, task: .sft).run() } throws: { "\($0)".contains("/nonexistent/checkpoint-3") }
        }
    }

    @Test func maxEvaluateStepsReadsThatManyBatches() throws {
        let two = SharedFixtures.tempDir("dev2").appendingPathComponent("dev.jsonl")
        let dev = try String(contentsOfFile: Demo.root + "/examples/data/sft_dev.jsonl", encoding: .utf8).split(separator: "\n").prefix(4)
        try (dev.joined(separator: "\n") + "\n").write(to: two, atomically: true, encoding: .utf8)
        let limited = try Demo.args(.sft, ["learning_rate": 0.0, "max_steps": 1, "per_device_eval_batch_size": 2, "max_evaluate_steps": 2])
        let exact = try Demo.args(.sft, ["learning_rate": 0.0, "max_steps": 1, "per_device_eval_batch_size": 2, "dev_dataset_path": two.path])
        let full = try Demo.args(.sft, ["learning_rate": 0.0, "max_steps": 1, "per_device_eval_batch_size": 2])
        let l = try TrainingRun(args: limited, task: .sft).run().evalLoss, e = try TrainingRun(args: exact, task: .sft).run().evalLoss
        let f = try TrainingRun(args: full, task: .sft).run().evalLoss
        #expect(l != nil && l == e && l != f)
    }

    /// PaddleNLP's normalize_logps: each side's summed log-prob times (mean length)/(its length).
    @Test func normalizeLogpsScalesEachSideByTheMeanLength() throws {
        let data = SharedFixtures.tempDir("norm").appendingPathComponent("pairs.jsonl")
        try #"{"prompt": "Q?", "chosen": "a long chosen answer", "rejected": "no"}"#.write(to: data, atomically: true, encoding: .utf8)
        func run(_ normalize: Bool) throws -> DPOTrainer.Metrics {
            let obj: [String: Any] = ["model_name_or_path": PaddleNLPConfigTests.setup.model, "train_dataset_path": data.path,
                                      "output_dir": SharedFixtures.tempDir("norm-out").path, "max_steps": 1, "learning_rate": 0.0,
                                      "per_device_train_batch_size": 1, "max_seq_len": 64, "normalize_logps": normalize]
            return try #require(try DPORun(args: TrainingArguments.parse(obj, file: "n.json", task: .dpo)).run().lastTrain)
        }
        let raw = try run(false), norm = try run(true)
        // Byte tokens: chosen 20 + EOS = 21, rejected 2 + EOS = 3; the mean is 12.
        let c = try #require(raw["logps/chosen"]), r = try #require(raw["logps/rejected"])
        #expect(abs((norm["logps/chosen"] ?? 0) - c * 12 / 21) < 1e-4 * abs(c))
        #expect(abs((norm["logps/rejected"] ?? 0) - r * 12 / 3) < 1e-4 * abs(r))
    }

    @Test func theProgressLineFitsTheTerminalAndMessagesGoAboveIt() throws {
        let bar = ProgressBar(total: 100, label: "sft", output: FileHandle.nullDevice, forceTerminal: true)
        let fields = [("loss", "1.2345"), ("lr", "3.00e-04"), ("grad", "0.9876"), ("tok/s", "12345")]
        for width in [20, 40, 60, 80, 200] {
            bar.width = width
            let l = bar.line(step: 42, fields: fields)
            #expect(l.count <= width - 1, "\(width): \(l)")
            #expect(l.contains("42/100") || width < 30, "\(width): \(l)")
        }
        bar.width = 200
        #expect(bar.line(step: 42, fields: fields).contains("tok/s 12345"))
        bar.width = 50   // the bar narrows before the loss goes
        let narrow = bar.line(step: 42, fields: fields)
        #expect(!narrow.contains("tok/s") && narrow.contains("loss 1.2345"), "\(narrow)")
        // A message on a terminal clears the line, prints, and redraws the progress line.
        let pipe = Pipe()
        let t = ProgressBar(total: 10, label: "x", output: pipe.fileHandleForWriting, forceTerminal: true)
        t.width = 80
        t.update(step: 10, fields: [])
        t.message("eval at step 10: eval_loss 1.0000")
        t.finish()
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.contains("\r\u{1B}[Keval at step 10: eval_loss 1.0000\nx "))
        #expect(!text.contains("\n\n"))
    }
}

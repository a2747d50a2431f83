import Foundation
import Testing
@testable import Alignment

/// Non-finite numbers never pass silently (issue: nothing lost, nothing silent): a diverging run
/// stops naming the step and keeps its last good checkpoint; `eval` and `generate` refuse a model
/// whose weights are not finite; `generate` refuses meaningless sampling settings.
@Suite struct NonFiniteTests {
    static let config = LlamaConfig(dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 64, maxSeqLen: 24)

    /// A saved random model, with `poison` (a tensor name) holding one NaN.
    func model(poison: String? = nil) throws -> String {
        var w = LlamaWeights.random(config: Self.config, seed: 3)
        if let poison { w.tensors[poison]?[5] = .nan }
        let dir = SharedFixtures.tempDir("nonfinite-model").path
        try HFCheckpoint.save(w, to: dir)
        return dir
    }

    @Test func aDivergingRunStopsAtTheStepAndKeepsTheLastGoodCheckpoint() throws {
        let out = SharedFixtures.tempDir("nan-run").path
        let obj: [String: Any] = [
            "model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
            "output_dir": out, "per_device_train_batch_size": 2, "max_seq_len": 32, "max_steps": 8, "save_steps": 1,
            "learning_rate": 1e38, "max_grad_norm": 0, "logging_steps": 1, "seed": 3,
        ]
        let args = SharedFixtures.tempDir("nan-args").appendingPathComponent("args.json")
        try JSONSerialization.data(withJSONObject: obj).write(to: args)
        guard let r = try CLI.run(["sft", args.path]) else { return }
        #expect(r.status != 0)
        let last = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("step ") && last.contains("Stopped without saving") && (last.contains("nan") || last.contains("inf")), "\(r.stderr)")
        // Every logged step is finite, and the newest checkpoint is the step before the bad one.
        let logged = try Demo.metrics(out)
        #expect(logged.allSatisfy { ($0["loss"] ?? .nan).isFinite && ($0["grad_norm"] ?? .nan).isFinite }, "\(logged)")
        let badStep = logged.count + 1
        #expect(badStep < 8, "the run never diverged")
        #expect(TrainingCheckpoint.latest(in: out)?.hasSuffix("checkpoint-\(badStep - 1)") == true)
        #expect(!FileManager.default.fileExists(atPath: out + "/checkpoint-\(badStep)"))
    }

    @Test func evalAndGenerateRefuseNonFiniteWeights() throws {
        let dir = try model(poison: "wv")
        guard let g = try CLI.run(["generate", "--model", dir, "--prompt-ids", "1 2", "--max-new-tokens", "3", "--temperature", "0"]) else { return }
        #expect(g.status != 0 && g.stderr.contains("'wv'") && g.stderr.contains("non-finite"), "\(g.stderr)")
        // Pre-tokenized rows: no tokenizer needed, so the weights are what stops it.
        let rows = SharedFixtures.tempDir("nonfinite-data").appendingPathComponent("ids.jsonl")
        try #"{"input_ids": [1, 5, 9, 12, 3]}"#.write(to: rows, atomically: true, encoding: .utf8)
        guard let e = try CLI.run(["eval", "--model", dir, "--data", rows.path]) else { return }
        #expect(e.status != 0 && e.stderr.contains("'wv'") && e.stderr.contains("non-finite"), "\(e.stderr)")
    }

    @Test func generateRefusesMeaninglessSettingsAndCapsHugeCounts() throws {
        let dir = try model()
        let base = ["generate", "--model", dir, "--prompt-ids", "1 2", "--temperature", "0"]
        let bad: [([String], String)] = [
            (["--max-new-tokens", "-5"], "--max-new-tokens must be ≥ 0"),
            (["--top-k=-3"], "--top-k must be ≥ 0"),
            (["--repetition-penalty", "0"], "--repetition-penalty must be"),
            (["--repetition-penalty", "-1"], "--repetition-penalty must be"),
            (["--temperature", "nan"], "--temperature must be"),
        ]
        for (extra, message) in bad {
            guard let r = try CLI.run(base + extra) else { return }
            #expect(r.status != 0 && r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        // A count past the context generates up to the context (no overflow trap).
        guard let r = try CLI.run(base + ["--max-new-tokens", "9223372036854775807", "--print-ids"]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let ids = r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(!ids.isEmpty && ids.count <= Self.config.maxSeqLen)
    }
}

import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// SFT, pretraining and DPO with `prefix_tuning: true` from an argument file: the prefix (PEFT's
/// layout) in `output_dir` and every checkpoint, the base untouched, exact resume, `prefix_path`,
/// and the argument errors.
@Suite struct PrefixRunTests {
    static var prefix: [String: Any] { ["prefix_tuning": true, "num_prefix_tokens": 4, "learning_rate": 1e-2] }

    static func exists(_ dir: String, _ file: String) -> Bool {
        FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(file))
    }

    @Test func sftWithPrefixSavesThePrefixAndLearns() throws {
        // A trained starting model (a random one gives a prefix little to steer).
        let model = try #require(DPORunTests.sftModel)
        let args = try Demo.args(.sft, Self.prefix.merging(["max_steps": 24, "save_steps": 10, "learning_rate": 5e-2]) { $1 }, model: model)
        let summary = try TrainingRun(args: args, task: .sft).run()
        let out = args.outputDir
        for dir in [out, out + "/checkpoint-10", out + "/checkpoint-20"] {
            #expect(Self.exists(dir, PEFTAdapter.configFile) && Self.exists(dir, PEFTAdapter.weightsFile), "\(dir)")
            #expect(PEFTPrefix.isPrefix(directory: dir), "\(dir) does not hold a PREFIX_TUNING adapter")
            #expect(!Self.exists(dir, "model.safetensors"), "\(dir) holds a model copy")
        }
        let before = try #require(summary.evalLossBefore), after = try #require(summary.evalLoss)
        #expect(after < before - 0.02, "eval loss \(before) → \(after)")
        let run = TrainingRun(args: args, task: .sft)
        let base = try run.initialWeights()
        let saved = try TrainedPrefix(directory: out, config: base.config)
        #expect(saved.prefix.tokens == 4)
        let initial = try #require(try args.prefixConfig()).initialTable(base.config, seed: UInt64(args.seed))
        #expect(zip(initial, saved.table).allSatisfy { $0 != $1 }, "some prefix values did not change")
        // The saved prefix gives the run's final eval loss through the prefix graph; the base on disk is unchanged.
        let store = try loadParameters(path: model, lora: nil, prefix: out)
        #expect(store.weights().tensors == base.tensors)
        let (tok, _) = try run.tokenizer()
        let dev = try run.read(try #require(args.devDatasetPath), tok).0
        #expect(abs(try run.evaluate(LMTrainer(parameters: store), dev, pad: tok.eosId) - after) <= 1e-5 * after)
    }

    @Test func interruptedPrefixRunResumesOnTheSameTrajectory() throws {
        try KernelThreadsLock.held {
            let extra = Self.prefix.merging(["max_steps": 9, "save_steps": 4, "eval_steps": 6]) { $1 }
            let whole = try Demo.args(.sft, extra)
            try TrainingRun(args: whole, task: .sft).run()
            let cut = try Demo.args(.sft, extra)
            var first = TrainingRun(args: cut, task: .sft)
            first.stopAfter = 5
            try first.run()
            try TrainingRun(args: cut, task: .sft).run()
            let a = try Demo.metrics(whole.outputDir), b = try Demo.metrics(cut.outputDir)
            #expect(a.count == b.count && a.count > 0)
            for (x, y) in zip(a, b) {
                for key in ["step", "loss", "grad_norm", "eval_loss"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
            }
            let config = try TrainingRun(args: whole, task: .sft).initialWeights().config
            #expect(try TrainedPrefix(directory: whole.outputDir, config: config).table == TrainedPrefix(directory: cut.outputDir, config: config).table)
        }
    }

    /// `prefix_projection`: the MLP trains, PEFT's table (its output) is saved beside the MLP,
    /// and an interrupted run resumes on the same trajectory.
    @Test func projectedPrefixSavesTheTableAndResumesExactly() throws {
        try KernelThreadsLock.held {
            let extra = Self.prefix.merging(["max_steps": 6, "save_steps": 3, "prefix_projection": true, "prefix_projection_hidden_size": 8,
                                             "learning_rate": 1e-3]) { $1 }
            let whole = try Demo.args(.sft, extra)
            try TrainingRun(args: whole, task: .sft).run()
            let cut = try Demo.args(.sft, extra)
            var first = TrainingRun(args: cut, task: .sft)
            first.stopAfter = 4
            try first.run()
            try TrainingRun(args: cut, task: .sft).run()
            let a = try Demo.metrics(whole.outputDir), b = try Demo.metrics(cut.outputDir)
            #expect(a.count == b.count && a.count > 0)
            for (x, y) in zip(a, b) {
                for key in ["step", "loss", "grad_norm"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
            }
            let c = try TrainingRun(args: whole, task: .sft).initialWeights().config
            for dir in [whole.outputDir, whole.outputDir + "/checkpoint-3"] {
                #expect(Self.exists(dir, PEFTPrefix.encoderFile), "\(dir)")
                let settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + PEFTAdapter.configFile))) as? [String: Any])
                #expect(settings["prefix_projection"] as? Bool == true && settings["encoder_hidden_size"] as? Int == 8)
            }
            let saved = try TrainedPrefix(directory: whole.outputDir, config: c)
            #expect(saved.table == (try TrainedPrefix(directory: cut.outputDir, config: c)).table)
            // The saved table is the saved MLP's output, and the MLP moved from its start.
            let prefix = try PrefixConfig(tokens: 4, projection: 8)
            let mlp = try #require(try PEFTPrefix.loadEncoder(directory: whole.outputDir, prefix: prefix, config: c))
            let store = try ParameterStore(weights: TrainingRun(args: whole, task: .sft).initialWeights(),
                                           adapters: mlp.merging([Prefix.parameter: saved.table.map { _ in 0 }]) { a, _ in a }, prefix: prefix)
            _ = try LMTrainer(parameters: store)
            #expect(relativeError(try #require(store.adapters()[Prefix.parameter]), saved.table) <= 1e-6)
            let start = prefix.initialTensors(c, seed: UInt64(whole.seed))
            for name in PrefixEncoderPrograms.parameters {
                #expect(zip(try #require(start[name]), try #require(mlp[name])).allSatisfy { $0 != $1 }, "\(name): some values did not change")
            }
        }
    }

    @Test func pretrainingStartsFromPrefixPath() throws {
        let sft = try Demo.args(.sft, Self.prefix.merging(["max_steps": 2]) { $1 })
        try TrainingRun(args: sft, task: .sft).run()
        let pre = try Demo.args(.pretrain, Self.prefix.merging(["max_steps": 2, "prefix_path": sft.outputDir, "num_prefix_tokens": 9]) { $1 })
        try TrainingRun(args: pre, task: .pretrain).run()
        let config = try TrainingRun(args: pre, task: .pretrain).initialWeights().config
        let start = try TrainedPrefix(directory: sft.outputDir, config: config)
        let end = try TrainedPrefix(directory: pre.outputDir, config: config)
        // The saved prefix's own length applies, and training went on from its values.
        #expect(end.prefix.tokens == 4 && end.table.count == start.table.count && end.table != start.table)
    }

    /// DPO with a prefix: saved in PEFT's layout, no model copy, and an interrupted run resumes
    /// on the same trajectory.
    @Test func dpoWithPrefixSavesThePrefixAndResumesExactly() throws {
        guard DPORunTests.sftModel != nil else { return }
        try KernelThreadsLock.held {
            let extra: [String: Any] = ["prefix_tuning": true, "num_prefix_tokens": 2, "learning_rate": 1e-3, "max_steps": 4, "save_steps": 2]
            let whole = try DPORunTests().dpoArgs(extra)
            let s = try DPORun(args: whole).run()
            #expect(s.steps == 4)
            for dir in [whole.outputDir, whole.outputDir + "/checkpoint-2"] {
                #expect(PEFTPrefix.isPrefix(directory: dir), "\(dir)")
                #expect(!Self.exists(dir, "model.safetensors"), "\(dir) holds a model copy")
            }
            let cut = try DPORunTests().dpoArgs(extra)
            var first = DPORun(args: cut)
            first.stopAfter = 3
            try first.run()
            try DPORun(args: cut).run()
            let x = try Demo.metrics(whole.outputDir), y = try Demo.metrics(cut.outputDir)
            #expect(x.count == y.count && !x.isEmpty)
            for (p, q) in zip(x, y) {
                for key in ["step", "loss", "grad_norm", "rewards/margins"] { #expect(p[key] == q[key], "\(key) at step \(p["step"] ?? -1)") }
            }
        }
    }

    @Test func badPrefixArgumentsAreErrors() throws {
        let cases: [([String: Any], String)] = [
            (["num_prefix_tokens": 0], "num_prefix_tokens"),
            (["lora": true], "lora and prefix_tuning together"),
            (["prefix_projection": true, "prefix_projection_hidden_size": 0], "prefix_projection_hidden_size"),
        ]
        for (extra, word) in cases {
            #expect { try Demo.args(.sft, Self.prefix.merging(extra) { $1 }) } throws: { "\($0)".contains(word) && "\($0)".contains("test-args.json") }
        }
        #expect { try Demo.args(.sft, ["prefix_path": "/tmp/x"]) } throws: { "\($0)".contains("prefix_path") }
        let example = try TrainingArguments.load(path: Demo.root + "/examples/sft_prefix.json", task: .sft)
        #expect(example.prefixTuning && example.numPrefixTokens > 0)
    }
}

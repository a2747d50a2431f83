import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// SFT and pretraining with `lora: true` from an argument file: the adapter (PEFT's layout) in
/// `output_dir` and every checkpoint, the base untouched, exact resume, `lora_path`.
@Suite struct LoRARunTests {
    static var lora: [String: Any] { ["lora": true, "lora_rank": 4, "learning_rate": 1e-2] }

    static func exists(_ dir: String, _ file: String) -> Bool {
        FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(file))
    }

    @Test func sftWithLoRASavesTheAdapterAndLearns() throws {
        let args = try Demo.args(.sft, Self.lora.merging(["max_steps": 12, "save_steps": 5]) { $1 })
        let summary = try TrainingRun(args: args, task: .sft).run()
        let out = args.outputDir
        for dir in [out, out + "/checkpoint-5", out + "/checkpoint-10"] {
            #expect(Self.exists(dir, PEFTAdapter.configFile) && Self.exists(dir, PEFTAdapter.weightsFile), "\(dir)")
            #expect(!Self.exists(dir, "model.safetensors"), "\(dir) holds a model copy")
        }
        let before = try #require(summary.evalLossBefore), after = try #require(summary.evalLoss)
        #expect(after < before - 0.05, "eval loss \(before) → \(after)")
        let base = try TrainingRun(args: args, task: .sft).initialWeights()
        let saved = try PEFTAdapter.load(directory: out, config: base.config)
        #expect(saved.lora.rank == 4 && saved.lora.alpha == 8 && saved.lora.targets == LoRA.modules)
        let initial = try #require(try args.loraConfig()).initialAdapters(base.config, seed: UInt64(args.seed))
        for name in saved.lora.trainableNames {
            let was = try #require(initial[name]), now = try #require(saved.adapters[name])
            #expect(zip(was, now).allSatisfy { $0 != $1 }, "\(name): some values did not change")
        }
        // The saved adapter gives the run's final eval loss through the unmerged graph.
        let trainer = try LMTrainer(parameters: ParameterStore(weights: base, lora: saved.lora, adapters: saved.adapters))
        let run = TrainingRun(args: args, task: .sft)
        let (tok, _) = try run.tokenizer()
        let dev = try run.read(try #require(args.devDatasetPath), tok).0
        #expect(abs(try run.evaluate(trainer, dev, pad: tok.eosId) - after) <= 1e-5 * after)
    }

    @Test func interruptedLoRARunResumesOnTheSameTrajectory() throws {
        try KernelThreadsLock.held {
            let extra = Self.lora.merging(["max_steps": 12, "save_steps": 5, "eval_steps": 6, "target_modules": ["q_proj", "v_proj", "down_proj"]]) { $1 }
            let whole = try Demo.args(.sft, extra)
            try TrainingRun(args: whole, task: .sft).run()
            let cut = try Demo.args(.sft, extra)
            var first = TrainingRun(args: cut, task: .sft)
            first.stopAfter = 7
            try first.run()
            try TrainingRun(args: cut, task: .sft).run()
            let a = try Demo.metrics(whole.outputDir), b = try Demo.metrics(cut.outputDir)
            #expect(a.count == b.count && a.count > 0)
            for (x, y) in zip(a, b) {
                for key in ["step", "loss", "grad_norm", "eval_loss"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
            }
            let config = try TrainingRun(args: whole, task: .sft).initialWeights().config
            #expect(try PEFTAdapter.load(directory: whole.outputDir, config: config).adapters == PEFTAdapter.load(directory: cut.outputDir, config: config).adapters)
        }
    }

    @Test func exampleArgumentFileAsksForLoRAOnEveryProjection() throws {
        let a = try TrainingArguments.load(path: Demo.root + "/examples/sft_lora.json", task: .sft)
        let c = try #require(try a.loraConfig())
        #expect(c.rank == 8 && c.scale == 2 && c.targets == LoRA.modules && c.dropout == 0.05 && c.plusScale == 1)
        let d = try TrainingArguments.load(path: Demo.root + "/examples/dpo_lora.json", task: .dpo)
        #expect(try d.loraConfig()?.targets == LoRA.modules)
    }

    @Test func pretrainingStartsFromLoRAPath() throws {
        let sft = try Demo.args(.sft, Self.lora.merging(["max_steps": 3]) { $1 })
        try TrainingRun(args: sft, task: .sft).run()
        let pre = try Demo.args(.pretrain, Self.lora.merging(["max_steps": 2, "lora_path": sft.outputDir, "lora_rank": 8]) { $1 })
        try TrainingRun(args: pre, task: .pretrain).run()
        let config = try TrainingRun(args: pre, task: .pretrain).initialWeights().config
        let start = try PEFTAdapter.load(directory: sft.outputDir, config: config)
        let end = try PEFTAdapter.load(directory: pre.outputDir, config: config)
        // The adapter's own rank applies, and training went on from its values.
        #expect(end.lora.rank == 4 && end.adapters.keys == start.adapters.keys && end.adapters != start.adapters)
    }
}

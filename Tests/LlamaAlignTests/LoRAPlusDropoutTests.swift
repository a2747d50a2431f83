import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// LoRA dropout and LoRA+ through `LMTrainer` (compiled programs) and argument files: masks
/// seeded by the run's seed and step, no dropout in evaluation, `B` learning at `lr · scale`,
/// and an interrupted run with both resuming on the same trajectory.
@Suite struct LoRAPlusDropoutTests {
    static let config = TrainerTests.config

    static func trainer(dropout: Double = 0, plusScale: Double = 1, seed: UInt64 = 9) throws -> LMTrainer {
        let w = LlamaWeights.random(config: config, seed: 21, scale: 0.1)
        let lora = try LoRAConfig(rank: 4, alpha: 16, dropout: dropout, plusScale: plusScale)
        let t = try LMTrainer(parameters: ParameterStore(weights: w, lora: lora, seed: 3), optimizer: OptimizerSettings(weightDecay: 0.1))
        t.dropoutSeed = seed
        return t
    }

    static func gradients(_ t: LMTrainer, _ batches: [TokenBatch]) throws -> [String: [Float]] {
        t.zeroGradients()
        _ = try t.accumulateGradients(batches)
        let names = t.parameters.lora?.trainableNames ?? []
        return Dictionary(uniqueKeysWithValues: names.map { ($0, t.gradient($0) ?? []) })
    }

    @Test func dropoutMasksAreSeededByTheRunAndStepAndOffInEvaluation() throws {
        let batches = [syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1), syntheticBatch(batch: 2, seq: 9, v: 37, seed: 2)]
        // B is zero at the start, so A's gradient is too: one step first makes both non-zero.
        let plain = try Self.trainer(), drop = try Self.trainer(dropout: 0.5), again = try Self.trainer(dropout: 0.5)
        let other = try Self.trainer(dropout: 0.5, seed: 10)
        let warm = try Self.trainer()
        _ = try warm.trainStep(batches, lr: 1e-2)
        let adapters = warm.parameters.adapters()
        for t in [plain, drop, again, other] { try t.parameters.loadAdapters(adapters) }
        let g0 = try Self.gradients(plain, batches), g1 = try Self.gradients(drop, batches)
        let g2 = try Self.gradients(again, batches), g3 = try Self.gradients(other, batches)
        #expect(g1 == g2, "same seed and step: the same masks")
        for name in g0.keys.sorted() {
            #expect(g1[name] != g0[name], "\(name): dropout changed nothing")
            #expect(g1[name] != g3[name], "\(name): another seed drew the same masks")
        }
        // The next step draws other masks.
        _ = try again.applyOptimizer(lr: 0)
        #expect(try Self.gradients(again, batches) != g1, "step 2 drew step 1's masks")
        // Evaluation never drops out.
        let e0 = try plain.evaluate(batches[0]), e1 = try drop.evaluate(batches[0])
        #expect(e0.sum == e1.sum && e0.tokens == e1.tokens)
    }

    /// With `lora_plus_scale` s, one step moves every `B` exactly as AdamW at `lr·s` and every
    /// `A` as AdamW at `lr` (weight decay and clipping included; s = 4 keeps `lr·s` exact).
    @Test func loraPlusUpdatesBAsAdamWAtTheScaledRate() throws {
        let batches = [syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1)]
        let lr = 3e-3
        let warm = try Self.trainer()
        _ = try warm.trainStep(batches, lr: 1e-2)
        let start = warm.parameters.adapters()
        let plus = try Self.trainer(plusScale: 4), atLR = try Self.trainer(), atScaled = try Self.trainer()
        for t in [plus, atLR, atScaled] { try t.parameters.loadAdapters(start) }
        let n0 = try plus.trainStep(batches, lr: lr).gradNorm
        let n1 = try atLR.trainStep(batches, lr: lr).gradNorm
        _ = try atScaled.trainStep(batches, lr: 4 * lr)
        #expect(n0 == n1)
        let got = plus.parameters.adapters(), a = atLR.parameters.adapters(), b = atScaled.parameters.adapters()
        for m in LoRA.modules {
            #expect(got[LoRA.aName(m)] == a[LoRA.aName(m)], "A of \(m) is not AdamW at lr")
            #expect(got[LoRA.bName(m)] == b[LoRA.bName(m)], "B of \(m) is not AdamW at lr·4")
            #expect(got[LoRA.bName(m)] != a[LoRA.bName(m)])
        }
    }

    /// `llama-align sft` in its own processes (one thread each, so no other test's kernels share
    /// them): 8 steps at once, and 5 steps then the same folder run again to 8, give the same
    /// metrics and adapter bit for bit; with `lora_dropout` 0 the run differs.
    @Test func interruptedRunWithDropoutAndLoRAPlusResumesOnTheSameTrajectory() throws {
        func args(_ name: String, steps: Int, dropout: Double = 0.1) throws -> (file: String, out: String) {
            let dir = SharedFixtures.tempDir("lora-dropout-\(name)")
            let out = dir.appendingPathComponent("out").path
            let obj: [String: Any] = [
                "model_name_or_path": Demo.root + "/examples/tiny-model", "output_dir": out,
                "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl", "dev_dataset_path": Demo.root + "/examples/data/sft_dev.jsonl",
                "per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_seq_len": 64, "max_steps": steps,
                "learning_rate": 1e-2, "lr_scheduler_type": "constant", "logging_steps": 1, "eval_steps": 4, "save_steps": 3,
                "seed": 5, "num_threads": 1, "lora": true, "lora_rank": 4, "lora_dropout": dropout, "lora_plus_scale": 4,
            ]
            let file = dir.appendingPathComponent("args.json").path
            try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: file))
            return (file, out)
        }
        func sft(_ file: String) throws -> String? {
            guard let r = try CLI.run(["sft", file]) else { return nil }
            #expect(r.status == 0, "\(r.stderr)")
            return r.stderr + r.stdout
        }
        let whole = try args("whole", steps: 8), cut = try args("cut", steps: 5), plain = try args("plain", steps: 8, dropout: 0)
        guard try sft(whole.file) != nil else { return }
        _ = try sft(cut.file)
        var obj = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cut.file))) as? [String: Any])
        obj["max_steps"] = 8
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: cut.file))
        let resumed = try sft(cut.file) ?? ""
        #expect(resumed.contains("resuming from") && resumed.contains("checkpoint-5"), "\(resumed)")
        _ = try sft(plain.file)
        let a = try Demo.metrics(whole.out), b = try Demo.metrics(cut.out), c = try Demo.metrics(plain.out)
        let steps = { (m: [[String: Double]]) in m.filter { $0["loss"] != nil } }
        #expect(steps(a).count == 8 && steps(b).count == 8, "\(steps(a).count) and \(steps(b).count) logged steps")
        for (x, y) in zip(steps(a), steps(b)) {
            for key in ["step", "loss", "grad_norm"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
        }
        // The interrupted run also evaluated at its stop (step 5); the others agree step by step.
        let evals = { (m: [[String: Double]]) in
            Dictionary(m.compactMap { r in r["eval_loss"].flatMap { e in r["step"].map { ($0, e) } } }) { $1 }
        }
        let ea = evals(a), eb = evals(b)
        #expect(!ea.isEmpty && ea.allSatisfy { eb[$0.key] == $0.value }, "\(ea) vs \(eb)")
        #expect(steps(a).last?["loss"] != steps(c).last?["loss"], "dropout 0.1 gave the run without dropout")
        let config = try TrainingRun(args: TrainingArguments.load(path: whole.file, task: .sft), task: .sft).initialWeights().config
        #expect(try PEFTAdapter.load(directory: whole.out, config: config).adapters == PEFTAdapter.load(directory: cut.out, config: config).adapters)
    }
}

/// DPO with LoRA dropout (`dpo_step_lora_dropout`): the step's masks act, the reference (the
/// base model) and evaluation (`dpo_logps_lora`) never drop out.
@Suite struct DPOLoRADropoutTests {
    @Test func dropoutActsInTheStepOnlyAndTheReferenceStaysTheBase() throws {
        let w = LlamaWeights.random(config: DPOTrainerTests.config, seed: 4, scale: 0.2)
        func trainer(_ dropout: Double) throws -> DPOTrainer {
            let store = try ParameterStore(weights: w, lora: try LoRAConfig(rank: 4, alpha: 8, dropout: dropout), seed: 5)
            let policy = try LMTrainer(parameters: store)
            policy.dropoutSeed = 11
            return try DPOTrainer(policy: policy, reference: nil, settings: DPOSettings())
        }
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        let plain = try trainer(0), drop = try trainer(0.3)
        // One plain step makes B non-zero; both policies then hold the same adapters.
        _ = try plain.step([batch], lr: 1e-2)
        try drop.policy.parameters.loadAdapters(plain.policy.parameters.adapters())
        #expect(try drop.referenceLogps(batch) == plain.referenceLogps(batch))
        let e0 = try plain.evaluate([batch]), e1 = try drop.evaluate([batch])
        #expect(e0["loss"] == e1["loss"] && e0["logps/chosen"] == e1["logps/chosen"])
        let s0 = try plain.step([batch], lr: 0), s1 = try drop.step([batch], lr: 0)
        #expect(s0["logps/chosen"] != s1["logps/chosen"] && s0["grad_norm"] != s1["grad_norm"], "dropout did not act: \(s0) vs \(s1)")
        #expect(drop.policy.parameters.weights().tensors == w.tensors)
    }
}

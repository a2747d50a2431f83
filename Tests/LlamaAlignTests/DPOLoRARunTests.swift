import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// `llama-align dpo` with `lora: true`: the reference is the SFT model itself (adapters off) or
/// SFT model + `lora_path`'s adapter; the adapter is saved in PEFT's layout; resume is exact.
@Suite(.serialized) struct DPOLoRARunTests {
    func args(_ extra: [String: Any]) throws -> TrainingArguments {
        try DPORunTests().dpoArgs(["lora": true, "lora_rank": 4, "learning_rate": 4e-3].merging(extra) { $1 })
    }

    @Test func dpoWithLoRALearnsThePreferenceAndSavesTheAdapter() throws {
        let a = try args(["max_steps": 16, "save_steps": 4])
        let s = try DPORun(args: a).run()
        let before = try #require(s.evalBefore), after = try #require(s.evalAfter)
        #expect(abs((before["loss"] ?? 0) - log(2.0)) < 1e-6, "the policy starts as its reference: \(before)")
        #expect((after["loss"] ?? 1) < log(2.0) - 0.002 && (after["rewards/margins"] ?? 0) > 0, "\(after) before \(before)")
        for dir in [a.outputDir, a.outputDir + "/checkpoint-4"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + PEFTAdapter.weightsFile), "\(dir)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/model.safetensors"), "\(dir) holds a model copy")
        }
    }

    @Test func interruptedDPOLoRARunResumesOnTheSameTrajectory() throws {
        try KernelThreadsLock.held {
            let whole = try args(["max_steps": 6, "save_steps": 3])
            try DPORun(args: whole).run()
            let cut = try args(["max_steps": 6, "save_steps": 3])
            var first = DPORun(args: cut)
            first.stopAfter = 4
            try first.run()
            try DPORun(args: cut).run()
            let x = try Demo.metrics(whole.outputDir), y = try Demo.metrics(cut.outputDir)
            #expect(x.count == y.count && !x.isEmpty)
            for (p, q) in zip(x, y) {
                for key in ["step", "loss", "grad_norm", "rewards/margins"] { #expect(p[key] == q[key], "\(key) at step \(p["step"] ?? -1)") }
            }
        }
    }

    /// Reference log-probs precomputed once (the base model's) give the live run's metrics.
    @Test func precomputedReferenceGivesTheLiveMetrics() throws {
        let live = try args(["max_steps": 3]), pre = try args(["max_steps": 3, "precompute_ref_log_probs": true])
        try DPORun(args: live).run()
        try DPORun(args: pre).run()
        let x = try Demo.metrics(live.outputDir), y = try Demo.metrics(pre.outputDir)
        #expect(x.count == y.count && !x.isEmpty)
        for (p, q) in zip(x, y) {
            for key in ["loss", "grad_norm", "rewards/margins", "eval_loss"] {
                guard let v = p[key] else { #expect(q[key] == nil); continue }
                #expect(abs(v - (q[key] ?? .nan)) <= 1e-5 * max(1, abs(v)), "\(key) at step \(p["step"] ?? -1)")
            }
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: pre.outputDir)) ?? []).contains { $0.hasPrefix("ref_logps-") })
    }

    /// With `lora_path` the policy starts from that adapter and the reference is base + adapter.
    @Test func loraPathIsTheStartAndTheReference() throws {
        let sftModel = try #require(DPORunTests.sftModel)
        let sft = try Demo.args(.sft, ["lora": true, "lora_rank": 4, "learning_rate": 1e-2, "max_steps": 3], model: sftModel)
        try TrainingRun(args: sft, task: .sft).run()
        let a = try args(["max_steps": 2, "lora_path": sft.outputDir])
        let s = try DPORun(args: a).run()
        #expect(abs((s.evalBefore?["loss"] ?? 0) - log(2.0)) < 1e-5, "\(s.evalBefore ?? [:])")
        #expect(abs(s.evalBefore?["rewards/margins"] ?? 1) < 1e-4)
    }
}

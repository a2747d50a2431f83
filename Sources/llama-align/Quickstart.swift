import Alignment
import ArgumentParser
import Foundation

/// `llama-align quickstart`: the whole pipeline on the bundled demo data.
struct Quickstart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain → SFT → DPO → generate on the bundled data (a few minutes on 2 cores).",
        discussion: "Shows the held-out reward accuracy and margin before and after DPO, and what the model answers before and after.")

    @Option(help: "The bundled examples folder.") var examples = "examples"
    @Option(help: "Where the three runs are written.") var output = "runs/quickstart"
    @Option(help: "Steps per stage: pretrain, SFT, DPO.") var steps = "200,120,240"

    func argsFile(_ dir: String, _ name: String, _ obj: [String: Any]) throws -> String {
        let path = (dir as NSString).appendingPathComponent("\(name).json")
        try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Sampled answers (temperature 1, four seeds) to the held-out prompts, and how many are
    /// exactly the preferred answer: the rule that checks the preference.
    func answers(_ model: String, _ rows: [(prompt: String, chosen: String)]) throws -> (samples: [String], correct: Int, total: Int) {
        let m = try LlamaModel(weights: loadModel(path: model))
        let tok = try loadTokenizer(path: model)
        var samples: [String] = [], correct = 0, total = 0
        for (i, r) in rows.enumerated() {
            for seed in 0..<4 {
                let gen = Generator(model: m, settings: SamplerSettings(temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1,
                                                                        seed: UInt64(i * 4 + seed)), stopIds: [tok.eosId])
                let text = tok.decode(try gen.generate(prompt: [tok.bosId] + tok.encode(r.prompt), maxNewTokens: 40))
                total += 1
                if text == r.chosen { correct += 1 }
                if seed == 0 { samples.append("\(r.prompt) → \(text)") }
            }
        }
        return (samples, correct, total)
    }

    func run() throws {
        let n = steps.split(separator: ",").compactMap { Int($0) }
        guard n.count == 3 else { throw CLIError("--steps takes three numbers: pretrain,SFT,DPO") }
        let data = (examples as NSString).appendingPathComponent("data")
        guard FileManager.default.fileExists(atPath: data + "/pretrain.jsonl") else {
            throw CLIError("\(data)/pretrain.jsonl not found: run from the project root or pass --examples")
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let pre = output + "/pretrain", sft = output + "/sft", dpo = output + "/dpo"
        for d in [pre, sft, dpo] { try? FileManager.default.removeItem(atPath: d) }
        let t0 = Date()
        print("1/4 pretraining a 3-layer byte-level LLaMA on \(data)/pretrain.jsonl")
        try runTraining(try argsFile(output, "pretrain", [
            "model_name_or_path": examples + "/tiny-model", "train_dataset_path": data + "/pretrain.jsonl", "output_dir": pre,
            "per_device_train_batch_size": 8, "max_seq_len": 128, "max_steps": n[0], "learning_rate": 3e-3, "warmup_steps": 10,
            "lr_scheduler_type": "cosine", "logging_steps": 20, "seed": 7]), .pretrain, threads: nil)
        print("2/4 supervised fine-tuning on \(data)/sft_train.jsonl")
        try runTraining(try argsFile(output, "sft", [
            "model_name_or_path": pre, "train_dataset_path": data + "/sft_train.jsonl", "dev_dataset_path": data + "/sft_dev.jsonl",
            "output_dir": sft, "per_device_train_batch_size": 8, "max_seq_len": 128, "max_steps": n[1], "learning_rate": 2e-3,
            "warmup_ratio": 0.05, "logging_steps": 20, "seed": 7]), .sft, threads: nil)
        let held = try JSONLines.read(data + "/dpo_dev.jsonl").prefix(24).map { (try $0.string("prompt"), try $0.string("chosen")) }
        let before = try answers(sft, held)
        print("3/4 DPO on \(data)/dpo_train.jsonl (chosen answers are correct, rejected ones wrong)")
        var args = try TrainingArguments.load(path: try argsFile(output, "dpo", [
            "model_name_or_path": sft, "train_dataset_path": data + "/dpo_train.jsonl", "dev_dataset_path": data + "/dpo_dev.jsonl",
            "output_dir": dpo, "per_device_train_batch_size": 8, "max_seq_len": 128, "max_steps": n[2], "learning_rate": 3e-4,
            "beta": 0.1, "loss_type": "sigmoid", "sft_loss_ratio": 1.0, "logging_steps": 20, "seed": 7,
            "precompute_ref_log_probs": true]), task: .dpo)
        args.numThreads = nil
        let s = try DPORun(args: args).run()
        let after = try answers(dpo, held)
        print("4/4 results on held-out pairs (\(data)/dpo_dev.jsonl)")
        if let b = s.evalBefore, let a = s.evalAfter {
            print(String(format: "  reward accuracy  %.3f → %.3f", b["rewards/accuracies"] ?? 0, a["rewards/accuracies"] ?? 0))
            print(String(format: "  reward margin    %.4f → %.4f", b["rewards/margins"] ?? 0, a["rewards/margins"] ?? 0))
            print(String(format: "  DPO loss         %.4f → %.4f", b["loss"] ?? 0, a["loss"] ?? 0))
        }
        print(String(format: "  sampled answers (T = 1) that are the preferred one: %.0f%% after SFT → %.0f%% after DPO",
                     100 * Double(before.correct) / Double(max(before.total, 1)), 100 * Double(after.correct) / Double(max(after.total, 1))))
        print("  samples after SFT:")
        for line in before.samples.prefix(4) { print("    \(line)") }
        print("  samples after DPO:")
        for line in after.samples.prefix(4) { print("    \(line)") }
        print(String(format: "done in %.0f s; models in %@", Date().timeIntervalSince(t0), output))
    }
}

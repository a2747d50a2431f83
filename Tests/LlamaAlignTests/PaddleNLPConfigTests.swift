import Foundation
import Testing
@testable import Alignment

/// PaddleNLP's own LLaMA argument files (`Fixtures/paddlenlp`, adapted only in paths, sizes and
/// step counts; see its NOTES.md) run through the CLI on a tiny model, with PaddleNLP's data
/// folder layout (`train.json` / `dev.json`) and its `src`/`tgt`/`response`/`sort` preference rows.
@Suite(.serialized) struct PaddleNLPConfigTests {
    static let fixtures = SharedFixtures.projectRoot.path + "/Tests/LlamaAlignTests/Fixtures/paddlenlp"

    /// A random tiny model with weights and the byte tokenizer, and the three data folders.
    static let setup: (model: String, sft: String, dpo: String, pretrain: String) = {
        let root = SharedFixtures.tempDir("paddlenlp")
        let model = root.appendingPathComponent("model").path
        var (c, tied) = try! HFConfig.load(path: Demo.root + "/examples/tiny-model/config.json")
        c.tiedEmbeddings = tied ?? true
        try! HFCheckpoint.save(LlamaWeights.random(config: c, seed: 5, scale: 0.02), to: model)
        try! FileManager.default.copyItem(atPath: Demo.root + "/examples/tiny-model/tokenizer.byte", toPath: model + "/tokenizer.byte")
        func lines(_ file: String, _ n: Int) -> [String] {
            Array((try! String(contentsOfFile: Demo.root + "/examples/data/" + file, encoding: .utf8)).split(separator: "\n").prefix(n).map(String.init))
        }
        func folder(_ name: String, _ train: [String], _ dev: [String], ext: String) -> String {
            let dir = root.appendingPathComponent(name)
            try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try! (train.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("train." + ext), atomically: true, encoding: .utf8)
            try! (dev.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("dev." + ext), atomically: true, encoding: .utf8)
            return dir.path
        }
        // PaddleNLP's preference rows: src (user turns), tgt (earlier answers), response (two answers), sort (ranks).
        func paddle(_ row: String) -> String {
            let o = try! JSONSerialization.jsonObject(with: Data(row.utf8)) as! [String: Any]
            let p: [String: Any] = ["src": [o["prompt"]!], "tgt": [String](), "response": [o["rejected"]!, o["chosen"]!], "sort": [0, 1]]
            return String(decoding: try! JSONSerialization.data(withJSONObject: p), as: UTF8.self)
        }
        return (model, folder("sft", lines("sft_train.jsonl", 8), lines("sft_dev.jsonl", 4), ext: "json"),
                folder("dpo", lines("dpo_train.jsonl", 8).map(paddle), lines("dpo_dev.jsonl", 4).map(paddle), ext: "jsonl"),
                folder("pretrain", lines("pretrain.jsonl", 8), lines("pretrain.jsonl", 2), ext: "json"))
    }()

    /// Fills the fixture's placeholders, runs `llama-align TASK FILE`, returns the result and output folder.
    func run(_ name: String, _ task: String, data: String) throws -> (CLI.Result, String)? {
        let out = SharedFixtures.tempDir("paddlenlp-out").path
        let text = try String(contentsOfFile: Self.fixtures + "/" + name, encoding: .utf8)
            .replacingOccurrences(of: "@MODEL@", with: Self.setup.model).replacingOccurrences(of: "@DATA@", with: data)
            .replacingOccurrences(of: "@OUT@", with: out)
        let file = SharedFixtures.tempDir("paddlenlp-args").appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        guard let r = try CLI.run([task, file.path, "--threads", "1"]) else { return nil }
        return (r, out)
    }

    func evalSteps(_ out: String) throws -> [Int] {
        try Demo.metrics(out).filter { $0["eval_loss"] != nil }.compactMap { $0["step"].map { Int($0) } }
    }

    @Test(arguments: ["config-llama-sft_argument.json", "llama-sft_argument.json", "config-llama-lora_argument.json",
                      "llama-lora_argument.json", "config-llama-qlora_argument.json", "llama-qlora_argument.json"])
    func sftConfigsRun(_ name: String) throws {
        guard let (r, out) = try run(name, "sft", data: Self.setup.sft) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let m = try Demo.metrics(out)
        // 8 rows, 1 × 2 rows a step: 4 steps an epoch, 3 epochs; evaluation once an epoch
        // (evaluation_strategy "epoch") or every logging step ("steps" without eval_steps).
        let steps = m.compactMap { $0["step"] }.max().map(Int.init)
        #expect(steps == 12, "\(name)")
        let evals = try evalSteps(out)
        #expect(evals == (name == "config-llama-lora_argument.json" ? Array(1...12) : [4, 8, 12]), "\(name): \(evals)")
        #expect(r.stderr.contains("note: metric_for_best_model 'eval_accuracy' is not computed here"), "\(r.stderr)")
        #expect(r.stderr.contains("best model:"), "\(r.stderr)")
        #expect(r.stderr.contains("note: 'fp16_opt_level' has no effect here: training runs in float32"), "\(r.stderr)")
        if name.contains("qlora") { #expect(r.stderr.contains("note: 'weight_quantize_algo' has no effect here: training on a quantized base (QLoRA) is not built")) }
        if name == "llama-sft_argument.json" {
            #expect(r.stderr.contains("'tensor_parallel_degree' has no effect") && r.stderr.contains("'use_sparse_mask' has no effect"))
        }
        // save_total_limit 1: only the newest checkpoint (and the best one, kept for load_best_model_at_end).
        #expect(TrainingCheckpoint.all(in: out).count <= 2)
        #expect(!r.stderr.contains("did you mean"))
    }

    @Test(arguments: ["config-llama-dpo_argument.json", "config-llama-simpo_argument.json", "config-llama-dpo_lora_argument.json",
                      "llama-dpo_argument.json"])
    func dpoConfigsRun(_ name: String) throws {
        guard let (r, out) = try run(name, "dpo", data: Self.setup.dpo) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let m = try Demo.metrics(out)
        let expected = name == "llama-dpo_argument.json" ? 12 : 4   // 3 epochs of 4 steps, else max_steps 4
        #expect(m.compactMap { $0["step"] }.max().map(Int.init) == expected, "\(name)")
        let evals = try evalSteps(out)
        #expect(evals == (name == "llama-dpo_argument.json" ? [2, 4, 6, 8, 10, 12] : [2, 4]), "\(name): \(evals)")
        #expect(m.contains { $0["rewards/accuracies"] != nil })
        #expect(r.stderr.contains("best model:"), "\(r.stderr)")
        if name.contains("lora") {
            #expect(!r.stderr.contains("'rslora_plus' has no effect"), "\(r.stderr)")   // rsLoRA, α 4 and LoRA+ 4 apply
            #expect(FileManager.default.fileExists(atPath: out + "/adapter_config.json"))
        }
    }

    @Test func pretrainConfigRuns() throws {
        guard let (r, out) = try run("config-llama-pretrain_argument.json", "pretrain", data: Self.setup.pretrain) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("(continue_training false); initialising"), "\(r.stderr)")
        let m = try Demo.metrics(out)
        #expect(m.compactMap { $0["step"] }.max() == 4)
        #expect(r.stderr.contains("'tensor_parallel_degree' has no effect"))
    }

    /// Both prefix-tuning files run as shipped (128 prefix positions) and save a PEFT prefix adapter.
    @Test(arguments: ["config-llama-pt_argument.json", "llama-pt_argument.json"])
    func prefixTuningConfigsRun(_ name: String) throws {
        guard let (r, out) = try run(name, "sft", data: Self.setup.sft) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let config = try String(contentsOfFile: out + "/adapter_config.json", encoding: .utf8)
        #expect(config.contains("PREFIX_TUNING"))
        #expect(!FileManager.default.fileExists(atPath: out + "/model.safetensors"))
    }
}

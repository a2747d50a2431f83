import Foundation
import Testing
@testable import Alignment
import LlamaGraphs

@Suite struct ArgumentTests {
    func write(_ json: String) throws -> String {
        let url = SharedFixtures.tempDir("args").appendingPathComponent("args.json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func defaultsAliasesAndIgnoredKeys() throws {
        let a = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "max_length": 77, "src_length": 30, "fp16": true, "loss_type": "ipo"}"#), task: .dpo)
        #expect(a.maxSeqLen == 77 && a.promptLimit == 30 && a.ignoredKeys == ["fp16"] && a.lossType == ["ipo"])
        #expect(a.learningRate == 1e-6 && a.perDeviceTrainBatchSize == 4 && a.lrSchedulerType == "linear")
    }

    /// `zero_padding: true` is not built: it is listed with the keys the run notes as ignored.
    @Test func zeroPaddingSaysItHasNoEffect() throws {
        let on = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "zero_padding": true}"#), task: .sft)
        #expect(on.ignoredKeys == ["zero_padding"])
        let off = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "zero_padding": false}"#), task: .sft)
        #expect(off.ignoredKeys.isEmpty)
    }

    @Test func unknownKeysWrongTypesAndMissingOutputDir() throws {
        func message(_ json: String) throws -> String {
            do { _ = try TrainingArguments.load(path: try write(json), task: .sft); return "" } catch { return "\(error)" }
        }
        #expect(try message(#"{"output_dir": "o", "learning_rat": 0.1}"#).contains("did you mean 'learning_rate'?"))
        let wrong = try message(#"{"output_dir": "o", "per_device_train_batch_size": "four"}"#)
        #expect(wrong.contains("per_device_train_batch_size") && wrong.contains("an integer") && wrong.contains("a string"))
        #expect(try message(#"{"learning_rate": 0.1}"#).contains("output_dir"))
        #expect(try message(#"{"output_dir": "o", "lr_scheduler_type": "poly"}"#).contains("poly"))
    }

    /// Prefix tuning's fields: PaddleNLP's default length (128), and what is not allowed (with
    /// `lora`, a length or projection width ≤ 0) fails naming the field,
    /// through the library and the CLI (never a silent full fine-tuning).
    @Test func prefixFieldsParseAndBadOnesNameTheField() throws {
        let a = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "prefix_tuning": true}"#), task: .sft)
        #expect(try a.prefixConfig()?.tokens == 128 && a.prefixConfig()?.projection == nil)
        let p = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "prefix_tuning": true, "prefix_projection": true}"#), task: .sft)
        #expect(try p.prefixConfig(kvDim: 64)?.projection == 64)
        let cases = [(#""prefix_projection": true, "prefix_projection_hidden_size": 0"#, "prefix_projection_hidden_size", "must be ≥ 1", "sft"),
                     (#""lora": true"#, "prefix_tuning", "lora and prefix_tuning together", "sft"),
                     (#""num_prefix_tokens": 0"#, "num_prefix_tokens", "must be ≥ 1", "dpo")]
        for (extra, key, what, task) in cases {
            let path = try write(#"{"output_dir": "o", "prefix_tuning": true, \#(extra)}"#)
            do {
                _ = try TrainingArguments.load(path: path, task: task == "dpo" ? .dpo : .sft)
                Issue.record("\(extra) was accepted")
            } catch {
                #expect("\(error)".contains(path) && "\(error)".contains(key) && "\(error)".contains(what), "\(error)")
            }
            guard let r = try CLI.run([task, path]) else { continue }
            #expect(r.status != 0 && r.stderr.contains(what), "\(r.stderr)")
        }
        _ = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "lora": false, "prefix_tuning": false}"#), task: .sft)
    }

    /// LoRA's fields: defaults as PaddleNLP (α −1 → 2r), and bad values name the field.
    @Test func loraFieldsParseAndBadOnesNameTheField() throws {
        let a = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "lora": true, "lora_rank": 4, "target_modules": [".*q_proj.*", ".*v_proj.*"], "rslora": true}"#), task: .sft)
        let c = try #require(try a.loraConfig())
        #expect(c.rank == 4 && c.alpha == 8 && c.rslora && c.targets == ["wq", "wv"] && c.scale == 4)
        let rank = try write(#"{"output_dir": "o", "lora": true, "lora_rank": 0}"#)
        #expect { try TrainingArguments.load(path: rank, task: .sft) } throws: { "\($0)".contains("lora_rank") }
        let none = try write(#"{"output_dir": "o", "lora": true, "target_modules": ["attn.c_attn"]}"#)
        #expect { try TrainingArguments.load(path: none, task: .pretrain) } throws: {
            let s = "\($0)"
            return s.contains(none) && s.contains("target_modules") && s.contains("q_proj, k_proj, v_proj, o_proj, gate_proj, down_proj, up_proj")
        }
        let update = try write(#"{"output_dir": "o", "lora": true, "ref_model_update_steps": 5}"#)
        #expect { try TrainingArguments.load(path: update, task: .dpo) } throws: { "\($0)".contains("ref_model_update_steps") }
        _ = try TrainingArguments.load(path: try write(#"{"output_dir": "o", "lora": true}"#), task: .dpo)
        let plus = try #require(try TrainingArguments.load(path: try write(#"{"output_dir": "o", "lora": true, "lora_dropout": 0.1, "lora_plus_scale": 16}"#), task: .sft).loraConfig())
        #expect(plus.dropout == 0.1 && plus.plusScale == 16 && plus.learningRateFactors[LoRA.bName("wq")] == 16 && plus.learningRateFactors[LoRA.aName("wq")] == 1)
        let dropout = try write(#"{"output_dir": "o", "lora": true, "lora_dropout": 1}"#)
        #expect { try TrainingArguments.load(path: dropout, task: .sft) } throws: { "\($0)".contains("lora_dropout") && "\($0)".contains("[0, 1)") }
        let scale = try write(#"{"output_dir": "o", "lora": true, "lora_plus_scale": 0}"#)
        #expect { try TrainingArguments.load(path: scale, task: .sft) } throws: { "\($0)".contains("lora_plus_scale") }
    }

    @Test func scheduleMatchesHuggingFace() {
        let lin = LRSchedule(kind: "linear", peak: 1, warmupSteps: 2, totalSteps: 10)
        #expect([0, 1, 2, 6, 10].map { lin.rate(at: $0) } == [0, 0.5, 1, 0.5, 0])
        let cos = LRSchedule(kind: "cosine", peak: 2, warmupSteps: 0, totalSteps: 4)
        #expect(abs(cos.rate(at: 2) - 1) < 1e-12 && abs(cos.rate(at: 1) - (1 + cos45)) < 1e-12)
        let c = LRSchedule(kind: "constant", peak: 3, warmupSteps: 3, totalSteps: 9)
        #expect(c.rate(at: 1) == 1 && c.rate(at: 8) == 3)
    }
    var cos45: Double { Foundation.cos(Double.pi / 4) }
}

/// Values accepted before without a word are now errors naming the field.
@Suite struct ArgumentRangeTests {
    func run(_ extra: [String: Any]) throws -> CLI.Result? {
        let dir = SharedFixtures.tempDir("ranges").path
        var obj: [String: Any] = ["model_name_or_path": Demo.root + "/examples/tiny-model",
                                  "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl", "output_dir": dir + "/out", "max_steps": 1]
        for (k, v) in extra { obj[k] = v }
        let args = dir + "/args.json"
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: args))
        return try CLI.run(["sft", args])
    }

    @Test func betasOutputOverTheModelAndContextAreChecked() throws {
        let cases: [([String: Any], String)] = [
            (["adam_beta2": 1.5], "adam_beta2"), (["adam_beta1": 1], "adam_beta1"),
            (["output_dir": Demo.root + "/examples/tiny-model"], "overwrite its starting model"),
            (["max_seq_len": 100_000], "above the model's context"),
        ]
        for (extra, message) in cases {
            guard let r = try run(extra) else { return }
            #expect(r.status != 0 && r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: Demo.root + "/examples/tiny-model/config.json"))
    }

    @Test func aStepLargerThanTheMachineFailsBeforeAllocating() throws {
        guard let r = try run(["per_device_train_batch_size": 10_000_000, "max_seq_len": 32]) else { return }
        #expect(r.status != 0 && r.stderr.contains("more than this machine's") && r.stderr.contains("per_device_train_batch_size (10000000)"),
                "\(r.stderr)")
        let planned = try MemoryBudget.trainingBytes(config: LlamaConfig(dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 4, nKVHeads: 4, vocabSize: 256,
                                                                         maxSeqLen: 64), program: "llama_train.lm_step", rows: 4, seq: 64)
        #expect(planned > 4 * 256 * 64 * 4 && planned < MemoryBudget.machineBytes)
    }

    @Test func anAdapterStepIsSizedByItsOwnProgram() throws {
        let config = LlamaConfig(dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 4, nKVHeads: 2, vocabSize: 256, maxSeqLen: 64)
        let w = LlamaWeights.random(config: config, seed: 7)
        let full = try MemoryBudget.trainingBytes(store: try ParameterStore(weights: w), program: "llama_train.lm_step", rows: 4, seq: 64)
        #expect(full == (try MemoryBudget.trainingBytes(config: config, program: "llama_train.lm_step", rows: 4, seq: 64)))
        let lora = try ParameterStore(weights: w, lora: try LoRAConfig(rank: 4, alpha: 8), seed: 1)
        let adapted = try MemoryBudget.trainingBytes(store: lora, program: "llama_train.lm_step", rows: 4, seq: 64)
        // One frozen copy of the weights instead of four (weights, gradients, two moments), and
        // lm_step_lora's own buffers (its kept `[B·T, R]` adapter activations: R is bound).
        let parameters = config.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(adapted < full && adapted > parameters * 4, "\(adapted) \(full) \(parameters)")
        let dropout = try ParameterStore(weights: w, lora: try LoRAConfig(rank: 4, alpha: 8, dropout: 0.1), seed: 1)
        #expect(try MemoryBudget.trainingBytes(store: dropout, program: "llama_dpo.dpo_step", rows: 4, seq: 64) > parameters * 4)
    }

    @Test func anIncompleteNewerCheckpointIsNamed() throws {
        let dir = SharedFixtures.tempDir("incomplete").path
        let obj: [String: Any] = ["model_name_or_path": Demo.root + "/examples/tiny-model",
                                  "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl", "output_dir": dir,
                                  "max_steps": 2, "save_steps": 1, "max_seq_len": 32, "per_device_train_batch_size": 2]
        let args = SharedFixtures.tempDir("incomplete-args").path + "/args.json"
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: args))
        guard let first = try CLI.run(["sft", args]) else { return }
        #expect(first.status == 0, "\(first.stderr)")
        try FileManager.default.createDirectory(atPath: dir + "/checkpoint-9", withIntermediateDirectories: true)
        guard let again = try CLI.run(["sft", args]) else { return }
        #expect(again.status == 0 && again.stderr.contains("checkpoint-9 has no trainer_state.json"), "\(again.stderr)")
    }
}

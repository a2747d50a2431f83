import Foundation
@testable import Alignment

/// Argument files over the bundled demo (paths absolute, output in a fresh temp folder).
enum Demo {
    static let root = SharedFixtures.projectRoot.path

    static func args(_ task: TrainingArguments.Task, _ extra: [String: Any] = [:], model: String? = nil) throws -> TrainingArguments {
        var obj: [String: Any] = [
            "model_name_or_path": model ?? root + "/examples/tiny-model",
            "output_dir": SharedFixtures.tempDir("run").path,
            "per_device_train_batch_size": 8, "max_seq_len": 96, "seed": 3, "logging_steps": 1,
        ]
        switch task {
        case .pretrain:
            obj["train_dataset_path"] = root + "/examples/data/pretrain.jsonl"
            obj["learning_rate"] = 3e-3; obj["max_steps"] = 60; obj["warmup_steps"] = 5
        default:
            obj["train_dataset_path"] = root + "/examples/data/sft_train.jsonl"
            obj["dev_dataset_path"] = root + "/examples/data/sft_dev.jsonl"
            obj["learning_rate"] = 2e-3; obj["max_steps"] = 40
        }
        for (k, v) in extra { obj[k] = v }
        return try TrainingArguments.parse(obj, file: "test-args.json", task: task)
    }

    static func metrics(_ dir: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }
}

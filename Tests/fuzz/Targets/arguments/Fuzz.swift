import Alignment
import Foundation
import FuzzSupport
import KernelRuntime

// Argument files (PaddleNLP-style JSON): TrainingArguments.parse for pretrain, SFT and DPO,
// then what a run derives from them at once: the step count and learning-rate schedule, the
// prompt budget, and for DPO the loss settings (DPOSettings(arguments:)).

/// One input: parsed for each task, and the parsed arguments used as a run uses them first.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    for task in [TrainingArguments.Task.pretrain, .sft, .dpo] {
        let args: TrainingArguments
        do {
            args = try TrainingArguments.parse(data, file: "args.json", task: task)
        } catch let e as ArgumentsError {
            Fuzz.require(e.description.hasPrefix("args.json: "), "error without the file name: \(e)")
            continue
        } catch {
            Fuzz.require(false, "not an ArgumentsError: \(error)")
            continue
        }
        Fuzz.require(!args.outputDir.isEmpty && args.maxSeqLen >= 2 && args.promptLimit >= 1, "accepted unusable lengths")
        for rows in [0, 1, 7, 1_000_000] {
            let (steps, lr) = args.schedule(rows: rows)
            Fuzz.require(steps >= 1, "\(steps) steps for \(rows) rows")
            for step in [0, 1, steps / 2, steps - 1, steps] {
                let r = lr.rate(at: step)
                Fuzz.require(r.isFinite && r >= 0 && r <= args.learningRate, "learning rate \(r) at step \(step) of \(steps) (peak \(args.learningRate))")
            }
        }
        if task == .dpo {
            do {
                let s = try DPOSettings(arguments: args)
                _ = s.needsReference
            } catch is RuntimeError {
            } catch {
                Fuzz.require(false, "DPO settings threw \(error)")
            }
        }
    }
    return 0
}

/// The shapes of argument files the examples and the quickstart use, and near misses.
func seeds() -> [(String, Data)] {
    [
        ("dpo", #"{"model_name_or_path": "out/sft", "train_dataset_path": "data/dpo_train.jsonl", "output_dir": "out/dpo", "#
            + #""per_device_train_batch_size": 8, "max_seq_len": 128, "max_prompt_len": 64, "max_steps": 40, "learning_rate": 1e-3, "#
            + #""beta": 0.1, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5], "label_smoothing": 0.1, "#
            + #""precompute_ref_log_probs": true, "reference_free": false, "seed": 7, "fp16": true}"#),
        ("aliases", #"{"output_dir": "o", "max_length": 77, "src_length": 30, "dataset_name_or_path": "d", "warmup_ratio": 0.1, "#
            + #""lr_scheduler_type": "cosine", "num_train_epochs": 2.5, "gradient_accumulation_steps": 2, "save_total_limit": 2}"#),
        ("lora", #"{"output_dir": "o", "lora": true, "lora_rank": 4, "target_modules": ["q_proj", "v_proj"], "prefix_tuning": false}"#),
        ("bad", #"{"output_dir": "o", "learning_rat": 0.1, "per_device_train_batch_size": "four", "max_steps": 1e20}"#),
        ("paddlenlp", #"{"output_dir": "o", "input_dir": "d", "max_seq_length": 64, "min_learning_rate": 3e-6, "learning_rate": 3e-5, "#
            + #""continue_training": 0, "tensor_parallel_degree": 2, "evaluation_strategy": "epoch", "load_best_model_at_end": true, "#
            + #""metric_for_best_model": "accuracy", "early_stopping_patience": 2, "decay_steps": 7, "num_cycles": 1.5, "#
            + #""lr_scheduler_type": "cosine", "optim": "adamw_torch", "resume_from_checkpoint": true, "rslora_plus": true, "lora": true}"#),
        ("nulls", #"{"output_dir": "o", "seed": null, "num_threads": 2, "simpo_gamma": -3, "loss_type": "simpo", "reference_free": true}"#),
    ].map { ($0.0, Data($0.1.utf8)) }
}

/// libFuzzer calls this once before fuzzing: when run.sh asks (`LLAMA_ALIGN_FUZZ_WRITE_SEEDS`),
/// writes this target's seeds and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Fuzz.writeSeedsIfAsked(seeds)
    return 0
}

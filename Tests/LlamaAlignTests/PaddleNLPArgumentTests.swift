import Foundation
import Testing
@testable import Alignment

/// Every field of PaddleNLP's LLaMA argument dataclasses is accepted: implemented, or noted with
/// the reason it has no effect here; unknown fields fail without a far-fetched suggestion.
@Suite struct PaddleNLPArgumentTests {
    /// Each field with its PaddleNLP default, from `paddlenlp/trainer/training_args.py`
    /// (TrainingArguments), `paddlenlp/trl/{sft_config,model_config,sftdata_config,quant_config}.py`,
    /// `llm/utils/argument.py` (DataArgument, ModelArgument, QuantArgument, GenerateArgument,
    /// ReftArgument) and `llm/alignment/dpo/dpo_argument.py` (DPO*).
    nonisolated(unsafe) static let dataclassDefaults: [String: Any] = [
        // TrainingArguments
        "output_dir": "o", "overwrite_output_dir": false, "do_train": false, "do_eval": false, "do_predict": false, "do_export": false,
        "evaluation_strategy": "no", "prediction_loss_only": false, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8,
        "gradient_accumulation_steps": 1, "eval_accumulation_steps": NSNull(), "learning_rate": 5e-5, "weight_decay": 0.0,
        "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "max_grad_norm": 1.0, "num_train_epochs": 1.0, "max_steps": -1,
        "lr_scheduler_type": "linear", "warmup_ratio": 0.0, "warmup_steps": 0, "num_cycles": 0.5, "lr_end": 1e-7, "power": 1.0,
        "log_on_each_node": true, "logging_dir": NSNull(), "output_signal_dir": NSNull(), "logging_strategy": "steps",
        "logging_first_step": false, "logging_steps": 500, "save_strategy": "steps", "save_steps": 500, "save_total_limit": NSNull(),
        "save_on_each_node": false, "no_cuda": false, "seed": 42, "bf16": false, "fp16": false, "fp16_opt_level": "O1",
        "amp_master_grad": false, "bf16_full_eval": false, "fp16_full_eval": false, "amp_custom_black_list": NSNull(),
        "amp_custom_white_list": NSNull(), "sharding": "", "sharding_degree": -1, "sharding_parallel_degree": -1,
        "sharding_parallel_mesh_dimension": "dp", "sharding_comm_buffer_size_MB": -1, "save_sharded_model": false,
        "load_sharded_model": false, "tensor_parallel_degree": -1, "pipeline_parallel_degree": -1, "sep_parallel_degree": -1,
        "context_parallel_degree": -1, "data_parallel_config": "", "sequence_parallel": false, "fuse_sequence_parallel_allreduce": false,
        "sequence_parallel_config": "", "tensor_parallel_config": "", "pipeline_parallel_config": "", "sharding_parallel_config": "",
        "hybrid_parallel_topo_order": NSNull(), "recompute": false, "refined_recompute": "", "scale_loss": 32768.0,
        "minimum_eval_times": NSNull(), "local_rank": -1, "dataloader_drop_last": false, "eval_steps": NSNull(), "max_evaluate_steps": -1,
        "dataloader_num_workers": 0, "past_index": -1, "run_name": NSNull(), "device": "gpu", "disable_tqdm": NSNull(),
        "remove_unused_columns": true, "label_names": NSNull(), "load_best_model_at_end": false, "metric_for_best_model": NSNull(),
        "greater_is_better": NSNull(), "ignore_data_skip": false, "optim": "adamw", "report_to": NSNull(),
        "ddp_find_unused_parameters": NSNull(), "wandb_api_key": NSNull(), "resume_from_checkpoint": NSNull(),
        "auto_parallel_resume_form_hybrid_parallel": false, "skip_memory_metrics": true, "flatten_param_grads": false,
        "lazy_data_processing": true, "use_async_save": false, "ordered_save_group_size": 0, "metrics_output_path": NSNull(),
        "skip_profile_timer": true, "distributed_dataloader": false, "unified_checkpoint": false, "to_static": false,
        "unified_checkpoint_config": "", "ckpt_quant_stage": "O0", "ignore_load_lr_and_optim": false, "ignore_save_lr_and_optim": false,
        "force_reshard_pp": false, "enable_auto_parallel": false, "use_expert_parallel": false, "expert_max_capacity": 4294967296,
        "expert_min_capacity": 1, "release_grads": false, "skip_data_intervals": NSNull(), "offload_optim": false,
        "save_sharding_stage1_model_include_freeze_params": false, "pdc_download_ckpt": false, "pdc_download_timeout": 300,
        // SFTConfig / DataArgument / DataConfig
        "benchmark": false, "autotuner_benchmark": false, "decay_steps": 0, "tensor_parallel_output": false,
        "dataset_name_or_path": NSNull(), "task_name": NSNull(), "zero_padding": false, "greedy_zero_padding": false,
        "pad_to_multiple_of": NSNull(), "src_length": 1024, "max_length": 2048, "eval_with_do_generation": false,
        "save_generation_output": false, "lazy": false, "chat_template": NSNull(), "pad_to_max_length": false,
        "task_name_or_path": NSNull(), "intokens": NSNull(),
        // ModelConfig / ModelArgument
        "model_name_or_path": NSNull(), "tokenizer_name_or_path": NSNull(), "use_fast_layer_norm": false, "fuse_attention_qkv": NSNull(),
        "fuse_attention_ffn": NSNull(), "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "continue_training": true,
        "weight_quantize_algo": NSNull(), "weight_blocksize": 64, "weight_double_quant": false, "weight_double_quant_block_size": 256,
        "qlora_weight_blocksize": 64, "qlora_weight_double_quant": false, "qlora_weight_double_quant_block_size": 256,
        "lora": false, "lora_path": NSNull(), "lora_rank": 8, "use_quick_lora": false, "rslora": false, "lora_plus_scale": 1.0,
        "pissa": false, "lora_use_mixer": false, "use_mora": false, "vera": false, "vera_rank": 8, "lokr": false, "lokr_path": NSNull(),
        "lokr_dim": 8, "prefix_tuning": false, "prefix_path": NSNull(), "num_prefix_tokens": 128, "reft": false, "from_aistudio": false,
        "save_to_aistudio": false, "aistudio_repo_id": NSNull(), "aistudio_repo_private": true, "aistudio_repo_license": "Apache License 2.0",
        "aistudio_token": NSNull(), "neftune": false, "neftune_noise_alpha": 5.0, "flash_mask": false,
        "use_long_sequence_strategies": false, "rope_scaling_factor": 1.0, "strategy_type": NSNull(), "strategy_name": NSNull(),
        // QuantConfig / QuantArgument
        "quant_type": "a8w8", "fp8_type": ["e4m3", "e4m3"], "skip_list_names": [String](), "weight_quant_method": "abs_max_channel_wise",
        "act_quant_method": "avg", "cachekv_quant_method": "avg_headwise", "search_alpha_min": 0.2, "search_alpha_max": 0.8,
        "search_scale_min": 1.0, "search_scale_max": 5.0, "do_qat": false, "do_ptq": false, "ptq_step": 32, "shift": false,
        "shift_all_linears": false, "shift_sampler": "ema", "shift_step": 32, "smooth": false, "smooth_all_linears": false,
        "smooth_sampler": "none", "smooth_step": 32, "smooth_piecewise_search": false, "smooth_k_piece": 3, "smooth_search_piece": false,
        "do_gptq": false, "gptq_step": 8, "do_awq": false, "auto_clip": false, "awq_step": 8, "autoclip_step": 8,
        "load_quant_model": false, "do_quant_debug": false, "test_sample": NSNull(),
        // GenerateArgument, ReftArgument
        "top_k": 1, "top_p": 1.0, "layers": "all", "position": "f7+l7", "intervention_type": "LoreftIntervention", "rank": 8,
        "act_fn": "linear", "add_bias": false, "dropout": 0.0,
        // DPOConfig, DPODataArgument, DPOModelArgument
        "beta": 0.1, "offset_alpha": 0.0, "simpo_gamma": 0.5, "normalize_logps": true, "label_smoothing": 0.0, "loss_type": "sigmoid",
        "pref_loss_ratio": 1.0, "sft_loss_ratio": 0.0, "dpop_lambda": 50, "ref_model_update_steps": -1, "reference_free": false,
        "train_dataset_path": NSNull(), "dev_dataset_path": NSNull(), "max_seq_len": 4096, "max_prompt_len": 2048,
        "use_flash_attention": false, "recompute_granularity": "full", "virtual_pp_degree": 1, "lora_alpha": -1, "rslora_plus": false,
    ]

    @Test func everyDataclassFieldIsAcceptedAtItsDefault() throws {
        for task in [TrainingArguments.Task.pretrain, .sft, .dpo] {
            let a = try TrainingArguments.parse(Self.dataclassDefaults, file: "all.json", task: task)
            #expect(a.normalizeLogps && a.refModelUpdateSteps == nil && a.optim == "adamw" && a.maxSeqLen == 4096)
            // Off values are taken silently; values that ask for something are noted with a reason.
            #expect(!a.ignoredKeys.contains("fp16") && !a.ignoredKeys.contains("tensor_parallel_degree"))
            #expect(a.ignoredKeys.contains("quant_type") && a.ignoredNotes.allSatisfy { $0.contains("has no effect here: ") })
        }
        // Each field, alone with a value that asks for it, is either parsed or noted, never unknown.
        for (key, value) in Self.dataclassDefaults where key != "output_dir" {
            do { _ = try TrainingArguments.parse(["output_dir": "o", key: value], file: "one.json", task: .sft) } catch {
                Issue.record("\(key): \(error)")
            }
        }
    }

    @Test func unbuiltMethodsFailNamingThemAndUnknownKeysDoNotGuessWildly() throws {
        for key in ["pissa", "vera", "lokr", "reft", "use_mora", "lora_use_mixer"] {
            #expect { try TrainingArguments.parse(["output_dir": "o", key: true], file: "f.json", task: .sft) } throws: {
                "\($0)".contains(key) && "\($0)".contains("not available")
            }
        }
        #expect { try TrainingArguments.parse(["output_dir": "o", "zzz_totally_new_field": 1], file: "f.json", task: .sft) } throws: {
            "\($0)".contains("zzz_totally_new_field") && !"\($0)".contains("did you mean")
        }
        #expect { try TrainingArguments.parse(["output_dir": "o", "optim": "adafactor"], file: "f.json", task: .sft) } throws: {
            "\($0)".contains("optim") && "\($0)".contains("adamw_torch")
        }
        #expect { try TrainingArguments.parse(["output_dir": "o", "offset_alpha": 0.5], file: "f.json", task: .dpo) } throws: {
            "\($0)".contains("offset_alpha")
        }
        let a = try TrainingArguments.parse(["output_dir": "o", "optim": "adamw_torch", "intokens": true, "max_seq_length": 99,
                                             "task_name_or_path": "d.jsonl", "run_name": "r1"], file: "f.json", task: .sft)
        let dpo = try TrainingArguments.parse(["output_dir": "o", "continue_training": 0], file: "f.json", task: .dpo)
        #expect(dpo.ignoredNotes == ["note: 'continue_training' has no effect here: DPO starts from model_name_or_path's weights (only pretraining and SFT start from random ones)"])
        #expect(a.zeroPadding && a.ignoredKeys == ["intokens"] && a.maxSeqLen == 99 && a.trainDatasetPath == "d.jsonl" && a.startNotes.first == "run: r1")
    }

    /// `min_learning_rate`, `num_cycles` and `decay_steps` in the schedule (PaddleNLP's
    /// CosineAnnealingWithWarmupDecay / LinearAnnealingWithWarmupDecay: floor + (peak − floor)·f).
    @Test func scheduleFloorCyclesAndDecaySteps() throws {
        let a = try TrainingArguments.parse(["output_dir": "o", "learning_rate": 1.0, "min_learning_rate": 0.1, "warmup_steps": 2,
                                             "max_steps": 12, "lr_scheduler_type": "cosine", "decay_steps": 7], file: "f.json", task: .sft)
        let s = a.schedule(rows: 10).lr
        // Warm-up 0, 0.5; decay over steps 2..7: at 2 the peak, halfway (4.5) 0.55, from 7 on the floor.
        #expect(s.rate(at: 0) == 0 && s.rate(at: 1) == 0.5 && s.rate(at: 2) == 1)
        #expect(abs(s.rate(at: 7) - 0.1) < 1e-12 && abs(s.rate(at: 11) - 0.1) < 1e-12)
        var lin = LRSchedule(kind: "linear", peak: 2, warmupSteps: 0, totalSteps: 10)
        lin.floor = 0.5
        #expect(abs(lin.rate(at: 5) - 1.25) < 1e-12 && lin.rate(at: 10) == 0.5)
        var cyc = LRSchedule(kind: "cosine", peak: 1, warmupSteps: 0, totalSteps: 4)
        cyc.numCycles = 1   // a full wave: back at the peak at the end
        #expect(abs(cyc.rate(at: 2)) < 1e-12 && abs(cyc.rate(at: 4) - 1) < 1e-12)
        #expect { try TrainingArguments.parse(["output_dir": "o", "learning_rate": 1e-4, "min_lr": 1e-3], file: "f.json", task: .sft) } throws: {
            "\($0)".contains("min_learning_rate")
        }
    }

    @Test func strategiesGiveTheCadence() throws {
        func cadence(_ o: [String: Any]) throws -> (Int, Int) {
            let c = try TrainingArguments.parse(o.merging(["output_dir": "o", "logging_steps": 3, "eval_steps": 0]) { a, _ in a },
                                                file: "f.json", task: .sft).cadence(stepsPerEpoch: 5)
            return (c.eval, c.save)
        }
        #expect(try cadence(["evaluation_strategy": "epoch", "save_strategy": "epoch"]) == (5, 5))
        #expect(try cadence(["eval_strategy": "steps", "save_strategy": "no", "save_steps": 4]) == (3, 0))
        #expect(try cadence(["evaluation_strategy": "steps", "eval_steps": 2, "save_steps": 4]) == (2, 4))
        #expect(try cadence(["eval_steps": 7, "save_steps": 4]) == (7, 4))
    }
}

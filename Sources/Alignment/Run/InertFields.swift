import Foundation

/// Fields of PaddleNLP's (and Hugging Face's) argument dataclasses that llama-align accepts but
/// that change nothing here, each with the reason the run prints once when the field asks for
/// something (`fp16: true`); the off values (false, null, "", [], a parallel degree ≤ 1, 0) are
/// accepted without a note. Sources: PaddleNLP `paddlenlp/trainer/training_args.py`
/// (TrainingArguments), `paddlenlp/trl/{sft_config,model_config,sftdata_config,quant_config}.py`,
/// `llm/utils/argument.py` (DataArgument, ModelArgument, QuantArgument, GenerateArgument),
/// `llm/alignment/dpo/dpo_argument.py` (DPOTrainingArguments, DPOConfig, DPODataArgument,
/// DPOModelArgument), and the shipped `llm/config/llama/*_argument.json`.
enum InertFields {
    static let float32 = "training runs in float32, or with bf16 products when bf16 is true (f16/bf16 checkpoints are read and widened)"
    static let oneProcess = "one process on this machine's cores (num_threads sets them); no model, data or pipeline parallelism"
    static let compiled = "the graph compiler emits its own fused kernels (causal attention, RMSNorm, RoPE, SiLU·up) and keeps each layer's activations; there is nothing to switch"
    static let quantization = "training on a quantized base (QLoRA) is not built: the base weights stay float32 (llama-align quantize quantizes a model for inference)"
    static let noHub = "models are read from and written to local folders only"
    static let commandDecides = "the command (pretrain, sft, dpo, eval, generate) decides what runs"
    static let loaderStream = "batches are drawn from a seeded shuffled stream over the rows; every batch is padded to its longest row"

    /// Field → why it has no effect here.
    static let reasons: [String: String] = {
        var r: [String: String] = [:]
        func add(_ keys: [String], _ why: String) { for k in keys { r[k] = why } }
        add(["fp16", "fp16_opt_level", "amp_master_grad", "bf16_full_eval", "fp16_full_eval", "amp_custom_black_list",
             "amp_custom_white_list", "scale_loss", "amp_level", "dtype"], float32)
        add(["tensor_parallel_degree", "pipeline_parallel_degree", "sharding", "sharding_parallel_degree", "sharding_degree",
             "sep_parallel_degree", "context_parallel_degree", "data_parallel_degree", "sequence_parallel", "virtual_pp_degree",
             "pipeline_parallel_config", "sharding_parallel_config", "tensor_parallel_config", "data_parallel_config",
             "sequence_parallel_config", "hybrid_parallel_topo_order", "tensor_parallel_output", "fuse_sequence_parallel_allreduce",
             "sharding_parallel_mesh_dimension", "sharding_comm_buffer_size_MB", "save_sharded_model", "load_sharded_model",
             "local_rank", "log_on_each_node", "save_on_each_node", "distributed_dataloader", "enable_auto_parallel",
             "use_expert_parallel", "expert_max_capacity", "expert_min_capacity", "ddp_find_unused_parameters",
             "auto_parallel_resume_form_hybrid_parallel", "force_reshard_pp", "save_sharding_stage1_model_include_freeze_params",
             "unified_checkpoint", "unified_checkpoint_config", "use_async_save", "ordered_save_group_size", "num_of_gpus",
             "pdc_download_ckpt", "pdc_download_timeout", "output_signal_dir"], oneProcess)
        add(["use_flash_attention", "flash_mask", "use_fused_rms_norm", "use_fused_rope", "fuse_attention_qkv", "fuse_attention_ffn",
             "use_fast_layer_norm", "use_fused_linear", "use_fused_dropout_add", "use_sparse_mask", "use_attn_mask_startend_row_indices",
             "use_quick_lora", "recompute", "recompute_granularity", "refined_recompute", "recompute_use_reentrant", "no_recompute_layers",
             "pp_recompute_interval", "release_grads", "flatten_param_grads", "to_static", "offload_optim",
             "autotuner_benchmark", "benchmark", "skip_profile_timer", "skip_memory_metrics", "use_ssa", "sft_benchmark",
             "dpo_benchmark"], compiled)
        add(["device", "no_cuda"], "the model runs on this machine's CPU cores (compiled C kernels with OpenMP)")
        add(["hidden_dropout_prob", "attention_probs_dropout_prob"], "LLaMA has no dropout layers; the model's graph has none")
        add(["dataloader_num_workers", "dataloader_drop_last", "lazy", "lazy_data_processing", "remove_unused_columns",
             "label_names", "past_index", "prediction_loss_only", "pad_to_multiple_of", "pad_to_max_length", "greedy_zero_padding",
             "group_by_length", "length_column_name", "minimum_eval_times", "task_name", "data_cache", "share_folder",
             "skip_warmup", "data_impl"], loaderStream)
        add(["eval_accumulation_steps"], "evaluation adds loss and token counts batch by batch; nothing is held to move between devices")
        add(["ignore_data_skip"], "a resumed run always continues at the checkpoint's exact data position")
        add(["split"], "dev data comes from dev_dataset_path (or dev.jsonl / dev.json beside train)")
        add(["logging_dir", "log_level", "log_level_replica", "metrics_output_path", "wandb_api_key", "disable_tqdm"],
            "metrics go to output_dir/metrics.jsonl; the progress line is redrawn only on a terminal")
        add(["logging_strategy"], "metrics are logged every logging_steps (and at the last step)")
        add(["from_aistudio", "save_to_aistudio", "aistudio_repo_id", "aistudio_repo_private", "aistudio_repo_license",
             "aistudio_token", "push_to_hub", "hub_model_id", "hub_token", "hub_strategy"], noHub)
        add(["do_train", "do_eval", "do_predict", "do_export"], commandDecides + "; evaluation runs whenever there is dev data")
        add(["eval_with_do_generation", "save_generation_output"], "evaluation reports loss (and DPO rewards); use `llama-align generate` for text")
        add(["ckpt_quant_stage"], "checkpoints are saved in float32 safetensors")
        add(["ignore_load_lr_and_optim", "ignore_save_lr_and_optim"], "checkpoints always hold the optimizer moments for an exact resume")
        add(["skip_data_intervals"], "rows are never skipped")
        add(["weight_quantize_algo", "weight_blocksize", "weight_double_quant", "weight_double_quant_block_size",
             "qlora_weight_blocksize", "qlora_weight_double_quant", "qlora_weight_double_quant_block_size", "quant_type",
             "fp8_type", "skip_list_names", "weight_quant_method", "act_quant_method", "cachekv_quant_method", "load_quant_model",
             "do_quant_debug", "test_sample"], quantization)
        add(["search_alpha_min", "search_alpha_max", "search_scale_min", "search_scale_max", "do_qat", "do_ptq", "ptq_step",
             "shift", "shift_all_linears", "shift_sampler", "shift_step", "smooth", "smooth_all_linears", "smooth_sampler",
             "smooth_step", "smooth_piecewise_search", "smooth_k_piece", "smooth_search_piece", "do_gptq", "gptq_step", "do_awq",
             "auto_clip", "awq_step", "autoclip_step"], "post-training quantization (PaddleNLP's run_quantization) is not built")
        add(["top_k", "top_p"], "training does not sample; `llama-align generate --top-k/--top-p` does")
        add(["neftune", "neftune_noise_alpha"], "NEFTune's embedding noise is not built; embeddings are used as they are")
        add(["vera_rank", "lokr_dim", "lokr_path"], "used only by VeRA / LoKr, which are not built")
        add(["layers", "position", "intervention_type", "rank", "act_fn", "add_bias", "dropout"], "ReFT's fields; ReFT (reft) is not built")
        add(["lr_end", "power"], "used only by the polynomial schedule, which is not built (lr_scheduler_type: linear, cosine, constant, constant_with_warmup)")
        add(["rope_scaling_factor", "strategy_type", "strategy_name"], "long-sequence RoPE strategies are not built (the model's own rope_theta is used)")
        add(["max_estimate_samples", "estimation_output_file"], "steps come from max_steps or the epochs over the rows read")
        return r
    }()

    /// Switches that ask for a method that is not built: `true` is an error naming it (never a
    /// silent plain fine-tuning); `false` is accepted.
    static let unbuiltMethods: [String: String] = [
        "pissa": "PiSSA initialisation", "lora_use_mixer": "MosLoRA", "use_mora": "MoRA", "vera": "VeRA", "lokr": "LoKr",
        "reft": "ReFT", "use_long_sequence_strategies": "long-sequence RoPE strategies", "dislora": "DisLoRA",
    ]

    /// True when `value` is an "off" value that asks for nothing (no note needed).
    static func isOff(_ key: String, _ value: Any) -> Bool {
        if value is NSNull { return true }
        if isJSONBool(value) { return (value as? Bool) == false }
        if let s = value as? String { return s.isEmpty || s == "none" || s == "no" || s == "O0" || (key == "logging_strategy" && s == "steps") }
        if let l = value as? [Any] { return l.isEmpty || (key == "report_to" && l.allSatisfy { ($0 as? String) == "none" }) }
        if let n = value as? NSNumber {
            if n.doubleValue == -1 { return true }   // PaddleNLP's "unset"
            if key.hasSuffix("_degree") || key.hasSuffix("_size_MB") { return n.doubleValue <= 1 }
            if key == "dataloader_num_workers" || key == "sequence_parallel" || key == "distributed_dataloader" { return n.doubleValue == 0 }
        }
        return false
    }
}

import KernelRuntime

/// `bf16: true`: the training programs' bf16 variants (`lm_step_bf16`, `dpo_step_bf16`,
/// `dpo_logps_bf16`; with LoRA `lm_step_lora_bf16`, `dpo_step_lora_bf16`, `dpo_logps_lora_bf16`,
/// with LoRA dropout `lm_step_lora_dropout_bf16`, `dpo_step_lora_dropout_bf16`, with a prefix
/// `lm_step_prefix_bf16`, `dpo_step_prefix_bf16`, `dpo_logps_prefix_bf16`):
/// every matrix product rounds its operands to bfloat16 and accumulates in
/// float32 (AMX-BF16 tiles where the CPU and the OS allow them, else AVX-512 BF16 `vdpbf16ps`;
/// `LLAMA_ALIGN_AMX=0` forces the latter); weights, gradients, AdamW's moments, norms, softmax and
/// losses stay float32. Evaluation (`eval_loss`) stays float32.
public enum MixedPrecision {
    /// The program-name suffix of a precision (`""` for float32).
    public static func suffix(bf16: Bool) -> String { bf16 ? "_bf16" : "" }

    /// True when this CPU has AVX-512 BF16 (the bf16 products' instructions).
    public static var available: Bool { MatrixKernels.current.hasBF16 }

    /// Throws, in one line, when bf16 training cannot run here: the CPU lacks AVX-512 BF16.
    /// (Every training program — full weights, LoRA with or without dropout, prefix — has its
    /// bf16 variant.)
    public static func check(bf16: Bool, parameters: ParameterStore) throws {
        guard bf16 else { return }
        let kernels = MatrixKernels.current
        guard available else {
            throw RuntimeError("bf16: true needs a CPU with AVX-512 BF16 (vdpbf16ps); this one (\(kernels.cpu)) has none — remove bf16 to train in float32")
        }
    }

    /// The line a run logs when it trains in mixed precision (it names the products' path).
    public static var banner: String {
        "bf16 mixed precision: matrix products on bf16 operands (\(MatrixKernels.current.bf16Path == "amx" ? "AMX-BF16" : "AVX-512 BF16")), "
            + "float32 accumulation, weights, gradients and AdamW"
    }
}

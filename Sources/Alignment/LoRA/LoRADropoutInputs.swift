import KernelRuntime
import LlamaGraphs

/// The inputs of a training program with LoRA dropout (`lm_step_lora_dropout`,
/// `dpo_step_lora_dropout`) for one optimizer step: the rate `lora_dropout` and each module's
/// per-layer mask keys, drawn from the run's seed, the step and the micro-batch's index.
struct LoRADropoutInputs {
    let rate: Double
    let seed: UInt64
    let step: Int

    /// Nil without LoRA or with dropout 0 (the programs without dropout run then).
    init?(_ lora: LoRAConfig?, seed: UInt64, step: Int) {
        guard let lora, lora.dropout > 0 else { return nil }
        (rate, self.seed, self.step) = (lora.dropout, seed, step)
    }

    /// The buffers of this rank's micro-batch `micro` (its position in `World.share`'s list),
    /// by program field name. The keys follow the micro-batch's position in the whole step
    /// (`rank + micro · size`), so ranks draw the masks one process would.
    func buffers(micro: Int, layers: Int) -> [String: AlignedBuffer] {
        var out = [LoRA.dropoutRateName: AlignedBuffer(copying: [Float(rate)])]
        let global = World.size > 1 ? World.rank + micro * World.size : micro
        for (name, keys) in LoRAConfig.dropoutKeys(seed: seed, step: step, micro: global, layers: layers) {
            out[name] = AlignedBuffer(copying: keys)
        }
        return out
    }
}

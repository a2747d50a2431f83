import Alignment
import ArgumentParser

/// `llama-align merge`: fold a LoRA adapter into its base model.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fold a PEFT LoRA adapter into its base model (W + s·B·A) and save a Hugging Face directory.")

    @Option(help: "The base model (.bin or Hugging Face directory).") var model: String
    @Option(help: "The adapter directory (adapter_config.json, adapter_model.safetensors).") var lora: String
    @Option(help: "Output directory.") var out: String

    func run() throws {
        try mergeAdapter(model: model, lora: lora, out: out)
        print("merged \(lora) into \(model) → \(out)")
    }
}

import ArgumentParser
import KernelRuntime

/// `llama-align`: align LLaMA models with compiled kernels.
@main
struct LlamaAlign: ParsableCommand {
    /// Sets the threading defaults before any command runs, then dispatches.
    static func main() {
        applyThreads(nil)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// The release this build belongs to.
    static let version = "0.4.0"

    static let configuration = CommandConfiguration(
        commandName: "llama-align",
        abstract: "Pretrain, fine-tune, align (DPO) and run LLaMA models on kernels compiled from a Swift graph DSL.",
        version: "llama-align \(version)\n" + MatrixKernels.current.summary,
        subcommands: [Quickstart.self, Generate.self, Tokenize.self, Pretrain.self, SFT.self, DPO.self, Eval.self, Merge.self, Export.self, Profile.self, Compile.self,
                      Bench.self, Doctor.self]
    )
}

import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align`: align LLaMA models with compiled kernels.
@main
struct LlamaAlign: ParsableCommand {
    /// Sets the threading defaults before any command runs, then dispatches.
    static func main() {
        do {
            var command = try parseAsRoot()
            applyThreads(nil, decoding: command is Generate || command is BenchGenerate)
            try command.run()
            World.finish()
        } catch {
            // Under mpirun a failing rank ends the whole job at once (never a hang in an
            // all-reduce), naming itself and the cause.
            if World.size > 1 {
                // A signal stops every rank at the same step and rank 0 has saved: a clean exit.
                guard error is Interrupted else { World.abort(fullMessage(for: error)) }
                if World.isMain { FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8)) }
                World.finish()
                Foundation.exit(exitCode(for: error).rawValue)
            }
            exit(withError: error)
        }
    }

    /// The release this build belongs to.
    static let version = "0.4.0"

    static let configuration = CommandConfiguration(
        commandName: "llama-align",
        abstract: "Pretrain, fine-tune, align (DPO) and run LLaMA models on kernels compiled from a Swift graph DSL.",
        version: "llama-align \(version)\n" + MatrixKernels.current.summary,
        subcommands: [Quickstart.self, Generate.self, Tokenize.self, Pretrain.self, SFT.self, DPO.self, Eval.self, Merge.self, Plot.self, Quantize.self, Export.self, Profile.self, Compile.self,
                      Bench.self, Doctor.self]
    )
}

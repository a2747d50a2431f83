import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align doctor`: what a bug report needs — the version, the CPU, the matrix kernels
/// chosen for it and why, and the thread settings.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the version, the CPU, the matrix kernels chosen for it, and the threads (paste into bug reports).")

    @Flag(help: "Print one JSON object instead of text.") var json = false

    struct Report: Encodable {
        var version = LlamaAlign.version
        var kernels = MatrixKernels.current
        var threads = KernelThreads.current
        var environment: [String: String] = Doctor.relevantEnvironment()
    }

    func run() throws {
        let r = Report()
        if json { try printJSON(r); return }
        print("llama-align \(r.version)")
        print(r.kernels.summary)
        print("threads: \(r.threads) (OpenMP team; OpenBLAS runs single-threaded inside it)")
        for (k, v) in r.environment.sorted(by: { $0.key < $1.key }) { print("env: \(k)=\(v)") }
        if r.kernels.isGenericFallback {
            print("warning: the matrix kernels are a generic fallback below what this CPU can run")
        }
        if !r.kernels.error.isEmpty { throw ExitCode(1) }
    }

    /// The environment variables that change the kernels or their threads.
    static func relevantEnvironment() -> [String: String] {
        let names = ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "KMP_BLOCKTIME", "LLAMA_ALIGN_AMX"]
        let env = ProcessInfo.processInfo.environment
        return env.filter { names.contains($0.key) }
    }
}

import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench train`: training-step throughput (pretraining and SFT run this step).
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Tokens/s and GFLOP/s of one training step (forward, loss, backward, AdamW).")

    @OptionGroup var options: BenchOptions
    @Option(help: "Sequences per step.") var batch = 4
    @Option(help: "Tokens per sequence.") var seq = 256
    @Option(help: "Timed steps after two warm-up steps.") var steps = 10
    @Option(help: "Fraction of each row's leading tokens that are not supervised (an SFT prompt; 0 = pretraining).")
    var prompt = 0.0
    @Flag(help: "Train LoRA adapters on every projection instead of every weight (lm_step_lora).") var lora = false
    @Option(help: "The adapters' rank with --lora.") var rank = 8
    @Option(help: "Train a prefix of this many positions instead of every weight (lm_step_prefix).") var prefix: Int?
    @Option(help: "Scored rows per vocabulary chunk (default: 2^22 / vocabulary rounded down to a multiple of 32, at least 16).") var chunkRows: Int?
    @Flag(help: "Also print the time per fused kernel of the step's programs (one more step, profiled).") var profile = false
    @Flag(help: "Mixed precision: bf16 products with float32 accumulation (lm_step_bf16), as bf16: true trains.") var bf16 = false

    struct Result: Encodable {
        var job = "train", config: String, batch: Int, seq: Int, prompt: Double, steps: Int, threads: Int
        /// The adapters' rank with `--lora`, nil for full fine-tuning.
        var lora_rank: Int?
        /// The prefix length with `--prefix`, nil otherwise.
        var prefix_tokens: Int?
        var step_ms: Spread, tokens_per_second: Spread
        var gflops: Double, sgemm_gflops: Double, ratio: Double, peak_rss_mib: Double
        /// With `--bf16`: the bf16 product alone in this run (`ratio` is then against it), else nil.
        var bf16_gemm_gflops: Double?
        /// The CPU and the matrix kernels this run used.
        var kernels = MatrixKernels.current
    }

    func validate() throws {
        if let chunkRows, chunkRows <= 0 { throw ValidationError("--chunk-rows must be a positive number of rows, got \(chunkRows)") }
        if lora && prefix != nil { throw ValidationError("--lora and --prefix together are not supported; give one") }
        if let prefix, prefix <= 0 { throw ValidationError("--prefix must be a positive number of positions, got \(prefix)") }
    }

    func run() throws {
        options.applyThreading()
        let weights = try options.weights()
        let c = weights.config
        let lora = self.lora ? try LoRAConfig(rank: rank) : nil
        let prefix = try self.prefix.map { try PrefixConfig(tokens: $0) }
        let trainer = try LMTrainer(parameters: ParameterStore(weights: weights, lora: lora, prefix: prefix), bf16: bf16)
        if let chunkRows { trainer.chunkRows = chunkRows }
        let n = batch * seq
        let ids = (0..<n).map { Int32(($0 * 7919 + 13) % c.vocabSize) }
        guard (0..<1).contains(prompt) else { throw ValidationError("--prompt must be in [0, 1)") }
        let promptLen = Int(Double(seq) * prompt)
        let mask = (0..<n).map { $0 % seq >= promptLen ? Float(1) : 0 }
        let b = TokenBatch(batch: batch, seq: seq, ids: ids, targets: ids.map { ($0 + 1) % Int32(c.vocabSize) }, mask: mask)
        var times: [Double] = []
        for s in 0..<(steps + 2) {
            let t0 = Date()
            _ = try trainer.trainStep([b], lr: 1e-4)
            if s >= 2 { times.append(Date().timeIntervalSince(t0)) }
        }
        let params = BenchConfig.matmulParameters(c)
        // Full fine-tuning: forward, input gradients and weight gradients (6×); LoRA has no
        // weight-gradient products for the frozen base (4×; the adapters' thin products are not counted),
        // nor does a prefix (4×; its attention over P more keys is not counted).
        let perToken = lora == nil && prefix == nil ? 6.0 : 4.0
        let achieved = perToken * Double(params) * Double(n) / median(times) / 1e9
        let ceiling = try sgemmGFLOPs(m: n, n: c.hiddenDim, k: c.dim)
        let bf16Ceiling = bf16 ? try sgemmGFLOPs(m: n, n: c.hiddenDim, k: c.dim, program: "bench.sgemm_bf16") : nil
        let held = bf16Ceiling ?? ceiling
        let result = Result(config: options.config, batch: batch, seq: seq, prompt: prompt, steps: times.count, threads: KernelThreads.current,
                            lora_rank: lora?.rank, prefix_tokens: prefix?.tokens,
                            step_ms: Spread(times.map { $0 * 1e3 }), tokens_per_second: Spread(times.map { Double(n) / $0 }),
                            gflops: achieved, sgemm_gflops: ceiling, ratio: achieved / held, peak_rss_mib: peakRSSMiB(), bf16_gemm_gflops: bf16Ceiling)
        if options.json { try printJSON(result); return }
        print(result.kernels.summary)
        print("config: \(options.config) (\(BenchConfig.describe(c))), batch \(batch) × seq \(seq)"
              + (lora.map { ", LoRA rank \($0.rank) on every projection (base frozen)" } ?? "")
              + (prefix.map { ", prefix of \($0.tokens) positions in every layer (base frozen)" } ?? "")
              + (promptLen > 0 ? " (first \(promptLen) of each row unsupervised)" : "") + ", \(result.threads) threads"
              + (bf16 ? ", bf16 products (float32 accumulation)" : ""))
        print("step: " + result.step_ms.text("%.1f ms") + " over \(times.count) steps")
        print("throughput: " + result.tokens_per_second.text("%.0f tokens/s"))
        print(String(format: "achieved: %.1f GFLOP/s (%.0f × %d matmul params × tokens); sgemm alone in this run %.1f GFLOP/s; ratio %.2f",
                     achieved, perToken, params, ceiling, achieved / ceiling))
        if let bf16Ceiling { print(String(format: "bf16 product alone in this run %.1f GFLOP/s; ratio %.2f", bf16Ceiling, achieved / bf16Ceiling)) }
        print(String(format: "peak RSS: %.0f MiB", result.peak_rss_mib))
        if profile {
            let programs = trainer.programs
            for p in programs { p.setProfiling(true) }
            let t0 = Date()
            _ = try trainer.trainStep([b], lr: 1e-4)
            let wall = Date().timeIntervalSince(t0) * 1e3
            // The optimizer's step runs once over the flat trainable parameters.
            let optimizer = trainer.optimizer
            let report = kernelReport(programs.map { p in (p, p === optimizer.program ? optimizer.sizes : trainer.sizes(b)) })
            print(report.table(top: Int.max), terminator: "")
            print(String(format: "kernels: %.1f ms of a %.1f ms step", report.totalMs, wall))
            print(bf16Ceiling.map { report.bf16ProductsLine(ceiling: $0) } ?? report.productsLine(ceiling: ceiling))
            for p in programs { p.setProfiling(false) }
        }
    }
}

import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench dpo`: DPO step throughput with a live and with a precomputed reference.
struct BenchDPO: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dpo", abstract: "Pairs/s of a DPO step (policy forward+backward, reference forward).")

    @OptionGroup var options: BenchOptions
    @Option(help: "Pairs per step.") var pairs = 4
    @Option(help: "Prompt tokens.") var prompt = 128
    @Option(help: "Tokens of each response.") var response = 128
    @Option(help: "Timed steps after one warm-up step (each reference mode).") var steps = 10
    @Flag(help: "The policy trains LoRA adapters on every projection; the live reference is its base (adapters off, no copy).") var lora = false
    @Option(help: "The adapters' rank with --lora.") var rank = 8
    @Option(help: "The policy trains a prefix of this many positions; the live reference is the model without it (no copy).") var prefix: Int?
    @Option(help: "Scored rows per vocabulary chunk (default: 2^22 / vocabulary rounded down to a multiple of 32, at least 16).") var chunkRows: Int?
    @Flag(help: "Also print the time per fused kernel of one live-reference step.") var profile = false
    @Flag(help: "Mixed precision: bf16 products with float32 accumulation (dpo_step_bf16, dpo_logps_bf16), as bf16: true trains.") var bf16 = false

    struct Result: Encodable {
        var job = "dpo", config: String, pairs: Int, prompt: Int, response: Int, row_tokens: Int, steps: Int, threads: Int
        /// The adapters' rank with `--lora`, nil for full fine-tuning.
        var lora_rank: Int?
        /// The prefix length with `--prefix`, nil otherwise.
        var prefix_tokens: Int?
        var live_pairs_per_second: Spread, precomputed_pairs_per_second: Spread
        var live_gflops: Double, precomputed_gflops: Double, sgemm_gflops: Double, live_ratio: Double, peak_rss_mib: Double
        /// With `--bf16`: the bf16 product alone in this run (`live_ratio` is then against it), else nil.
        var bf16_gemm_gflops: Double?
        /// The CPU and the matrix kernels this run used.
        var kernels = MatrixKernels.current
    }

    func validate() throws {
        if let chunkRows, chunkRows <= 0 { throw ValidationError("--chunk-rows must be a positive number of rows, got \(chunkRows)") }
    }

    func run() throws {
        options.applyThreading()
        let weights = try options.weights()
        let v = weights.config.vocabSize
        func ids(_ n: Int, _ mul: Int, _ add: Int) -> [Int32] { (0..<n).map { Int32(($0 * mul + add) % v) } }
        let list: [PreferencePair] = (0..<pairs).map { i in
            PreferencePair(prompt: ids(prompt, 31, i), chosen: ids(response, 17, i + 3), rejected: ids(response, 13, i + 5))
        }
        let batch = PairBatch(list, pad: 0)
        let lora = self.lora ? try LoRAConfig(rank: rank) : nil
        let prefix = try self.prefix.map { try PrefixConfig(tokens: $0) }
        if lora != nil && prefix != nil { throw ValidationError("--lora and --prefix together are not supported; give one") }
        let policy = try LMTrainer(parameters: ParameterStore(weights: weights, lora: lora, prefix: prefix), bf16: bf16)
        if let chunkRows { policy.chunkRows = chunkRows }
        let adapted = lora != nil || prefix != nil
        let trainer = try DPOTrainer(policy: policy, reference: adapted ? nil : try ParameterStore(weights: weights), settings: DPOSettings())
        func rate(_ refs: [PairLogps]?) throws -> [Double] {
            var r: [Double] = []
            for s in 0...steps {
                let t0 = Date()
                _ = try trainer.step([batch], references: refs, lr: 1e-6)
                if s > 0 { r.append(Double(pairs) / Date().timeIntervalSince(t0)) }
            }
            return r
        }
        let live = try rate(nil)
        let cached = try rate([trainer.referenceLogps(batch)])
        let c = weights.config
        // Policy forward+backward (6 FLOPs per parameter and token; 4 with LoRA, no weight
        // gradients for the frozen base), reference forward (2).
        let tokens = Double(batch.batch * batch.seq), params = Double(BenchConfig.matmulParameters(c))
        let policyFlops = (adapted ? 4 : 6) * params * tokens
        let liveFlops = policyFlops + 2 * params * tokens, cachedFlops = policyFlops
        let ceiling = try sgemmGFLOPs(m: batch.batch * batch.seq, n: c.hiddenDim, k: c.dim)
        let bf16Ceiling = bf16 ? try sgemmGFLOPs(m: batch.batch * batch.seq, n: c.hiddenDim, k: c.dim, program: "bench.sgemm_bf16") : nil
        let result = Result(config: options.config, pairs: pairs, prompt: prompt, response: response, row_tokens: batch.seq,
                            steps: steps, threads: KernelThreads.current, lora_rank: lora?.rank, prefix_tokens: prefix?.tokens, live_pairs_per_second: Spread(live),
                            precomputed_pairs_per_second: Spread(cached),
                            live_gflops: liveFlops * median(live) / Double(pairs) / 1e9,
                            precomputed_gflops: cachedFlops * median(cached) / Double(pairs) / 1e9,
                            sgemm_gflops: ceiling, live_ratio: liveFlops * median(live) / Double(pairs) / 1e9 / (bf16Ceiling ?? ceiling),
                            peak_rss_mib: peakRSSMiB(), bf16_gemm_gflops: bf16Ceiling)
        if options.json { try printJSON(result); return }
        print(result.kernels.summary)
        print("config: \(options.config) (\(BenchConfig.describe(c))); \(pairs) pairs × (prompt \(prompt) + \(response)/\(response)), "
              + "shared-prompt rows of \(batch.seq) tokens, \(result.threads) threads"
              + (lora.map { ", LoRA rank \($0.rank) on every projection (reference: the base, adapters off)" } ?? "")
              + (prefix.map { ", prefix of \($0.tokens) positions (reference: the base, prefix off)" } ?? "")
              + (bf16 ? ", bf16 products (float32 accumulation)" : ""))
        print("live reference:        " + result.live_pairs_per_second.text("%.2f pairs/s") + " over \(steps) steps")
        print("precomputed reference: " + result.precomputed_pairs_per_second.text("%.2f pairs/s"))
        print(String(format: "achieved: %.1f GFLOP/s live (%d × params × tokens), %.1f precomputed (%d ×); sgemm alone in this run %.1f GFLOP/s; ratio %.2f",
                     result.live_gflops, adapted ? 6 : 8, result.precomputed_gflops, adapted ? 4 : 6, ceiling, result.live_gflops / ceiling))
        if let bf16Ceiling { print(String(format: "bf16 product alone in this run %.1f GFLOP/s; ratio %.2f", bf16Ceiling, result.live_ratio)) }
        print(String(format: "peak RSS: %.0f MiB", result.peak_rss_mib))
        if profile {
            let optimizer = policy.optimizer
            let programs = trainer.programs + [optimizer.program]
            for p in programs { p.setProfiling(true) }
            _ = try trainer.step([batch], references: nil, lr: 1e-6)
            let report = kernelReport(programs.map { ($0, $0 === optimizer.program ? optimizer.sizes : trainer.sizes(batch)) })
            print(report.table(top: 40), terminator: "")
            print(bf16Ceiling.map { report.bf16ProductsLine(ceiling: $0) } ?? report.productsLine(ceiling: ceiling))
            for p in programs { p.setProfiling(false) }
        }
    }
}

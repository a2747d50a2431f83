import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench generate`: batch-1 greedy decode and prefill tokens per second.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Greedy decode tok/s (batch 1) and prefill tok/s.")

    @OptionGroup var options: BenchOptions
    @Option(help: "A checkpoint (same as --config PATH).") var model: String?
    @Option(help: "Tokens to decode per run.") var tokens = 256
    @Option(help: "Prompt length for the prefill and first-token measurements.") var prompt = 128
    @Option(help: "Timed runs (after one warm-up).") var runs = 10
    @Flag(help: "Also print the time per fused kernel of the decode program.") var profile = false
    @OptionGroup var quantization: QuantOptions

    struct Result: Encodable {
        var job = "generate", config: String, tokens: Int, prompt: Int, runs: Int, threads: Int
        var decode_tokens_per_second: Spread, prefill_tokens_per_second: Spread
        /// Prefill with only the last position projected onto the vocabulary (what `generate`
        /// runs before its first token), milliseconds.
        var first_token_ms: Spread
        var decode_gflops: Double, decode_weight_gb_per_second: Double, peak_rss_mib: Double
        /// `f32`, or the quantization (`q8_0/32`: type and group size).
        var weights = "f32"
        /// The CPU and the matrix kernels this run used.
        var kernels = MatrixKernels.current
    }

    func validate() throws {
        if tokens < 1 { throw ValidationError("--tokens must be at least 1, got \(tokens)") }
        if prompt < 1 { throw ValidationError("--prompt must be at least 1 token, got \(prompt)") }
        if runs < 1 { throw ValidationError("--runs must be at least 1, got \(runs)") }
    }

    func run() throws {
        options.applyThreading(decoding: true)
        var opts = options
        if let model { opts.config = model }
        var quantized: QuantizedWeights?
        let m: LlamaModel
        if QuantizedCheckpoint.recorded(in: opts.config) != nil {
            // A quantized checkpoint, as it is (`--quant` on it is an error).
            if let q = quantization.quant { throw ValidationError("\(opts.config) is already quantized; --quant \(q) cannot quantize it again") }
            let q = try QuantizedCheckpoint.load(directory: opts.config)
            quantized = q
            m = try LlamaModel(quantized: q)
        } else if opts.config.lowercased().hasSuffix(".gguf"), quantization.quant == nil,
                  let q = try ggufQuantized(opts.config) {
            // A GGUF with Q8_0/Q4_0 projections, on the quantized kernels as it is.
            quantized = q
            m = try LlamaModel(quantized: q)
        } else {
            let weights = try opts.weights()
            if let name = quantization.quant, let t = QuantType(name: name) {
                quantized = try QuantizedWeights(quantizing: weights, type: t, groupSize: quantization.group.groupSize,
                                                 headType: quantization.group.head(for: t))
            }
            m = try quantized.map { try LlamaModel(quantized: $0) } ?? LlamaModel(weights: weights)
        }
        let c = m.config
        let steps = min(tokens, c.maxSeqLen - 1)
        let promptLen = min(prompt, c.maxSeqLen)
        let gen = Generator(model: m, settings: SamplerSettings(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0))
        var decodeRates: [Double] = [], prefillRates: [Double] = [], firstTokenMs: [Double] = []
        for run in 0...runs {
            var t0 = Date()
            let out = try gen.generate(prompt: [1], maxNewTokens: steps)
            let decodeRate = Double(out.count) / Date().timeIntervalSince(t0)
            let ids = (0..<promptLen).map { Int32(($0 * 7919) % c.vocabSize) }
            let cache = m.makeCache(batch: 1, capacity: promptLen)
            t0 = Date()
            _ = try m.prefill(ids: ids, cache: cache)
            let prefillRate = Double(promptLen) / Date().timeIntervalSince(t0)
            let fresh = m.makeCache(batch: 1, capacity: promptLen)
            t0 = Date()
            _ = try m.prefillLast(ids: ids, cache: fresh)
            let firstToken = 1000 * Date().timeIntervalSince(t0)
            if run > 0 { decodeRates.append(decodeRate); prefillRates.append(prefillRate); firstTokenMs.append(firstToken) }
        }
        // Each decoded token streams every matmul weight once: 2 FLOPs per parameter, and 4 bytes
        // (f32) or the quantized values and their scales.
        let params = Double(BenchConfig.matmulParameters(c))
        let weightBytes = quantized.map { Double($0.matrixBytes) } ?? 4 * params
        let result = Result(config: opts.config, tokens: steps, prompt: promptLen, runs: runs, threads: KernelThreads.current,
                            decode_tokens_per_second: Spread(decodeRates), prefill_tokens_per_second: Spread(prefillRates),
                            first_token_ms: Spread(firstTokenMs),
                            decode_gflops: 2 * params * median(decodeRates) / 1e9,
                            decode_weight_gb_per_second: weightBytes * median(decodeRates) / 1e9, peak_rss_mib: peakRSSMiB(),
                            weights: quantized.map { "\($0.type.rawValue)/\($0.groupSize)" + ($0.headType == .q8_0 ? "" : ", lm_head \($0.headType.rawValue)") } ?? "f32")
        if options.json { try printJSON(result); return }
        print(result.kernels.summary)
        print("model: \(opts.config) (\(BenchConfig.describe(c))), weights \(result.weights), \(result.threads) threads")
        print("decode  (batch 1, greedy, \(steps) tokens): " + result.decode_tokens_per_second.text("%.1f tok/s") + " over \(runs) runs")
        print("prefill (batch 1, \(promptLen) tokens):        " + result.prefill_tokens_per_second.text("%.1f tok/s")
              + " (logits at every position)")
        print("first token (prefill of \(promptLen), last logits only): " + result.first_token_ms.text("%.1f ms"))
        print(String(format: "decode: %.1f GFLOP/s, weights streamed at %.1f GB/s (%.1f MB of %@ matmul weights per token)",
                     result.decode_gflops, result.decode_weight_gb_per_second, weightBytes / 1e6, result.weights))
        print(String(format: "peak RSS: %.0f MiB", result.peak_rss_mib))
        if profile {
            let decode = m.programs[2]
            decode.setProfiling(true)
            _ = try gen.generate(prompt: [1], maxNewTokens: steps)
            let report = kernelReport([(decode, m.sizes(batch: 1, seq: 1, position: steps / 2))])
            print(report.table(top: 20), terminator: "")
            decode.setProfiling(false)
        }
    }
}

import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench`: speed measurements (benchmarks, never tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure speed on this machine.", subcommands: [BenchGenerate.self, BenchTrain.self, BenchDPO.self])
}

/// Named random-weight model shapes for benchmarks.
enum BenchConfig {
    static func named(_ name: String) -> LlamaConfig? {
        switch name {
        case "small", "stories15m":
            LlamaConfig(dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKVHeads: 6, vocabSize: 32000, maxSeqLen: 1024)
        case "medium":
            LlamaConfig(dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKVHeads: 8, vocabSize: 32000, maxSeqLen: 1024)
        default: nil
        }
    }
}

/// `llama-align bench generate`: decode and prefill tokens per second.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Greedy decode tok/s (batch 1) and prefill tok/s.")

    @Option(help: "A checkpoint (.bin or HF directory).") var model: String?
    @Option(help: "A random-weight shape instead of --model: small (stories15M shape) or medium.") var config: String?
    @Option(help: "Tokens to decode per run.") var tokens = 256
    @Option(help: "Prompt length for the prefill measurement.") var prompt = 128
    @Option(help: "Timed runs (after one warm-up).") var runs = 5
    @Flag(help: "Also print the time per fused kernel of the decode program.") var profile = false

    func run() throws {
        let weights: LlamaWeights
        if let model {
            weights = try loadModel(path: model)
        } else if let c = config.flatMap(BenchConfig.named) {
            weights = LlamaWeights.random(config: c, seed: 1, scale: 0.02)
        } else {
            throw ValidationError("give --model PATH or --config small|medium")
        }
        let m = try LlamaModel(weights: weights)
        let c = weights.config
        let steps = min(tokens, c.maxSeqLen - 1)
        let promptLen = min(prompt, c.maxSeqLen)
        let gen = Generator(model: m, settings: SamplerSettings(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0))
        var decodeRates: [Double] = [], prefillRates: [Double] = []
        for run in 0...runs {
            var t0 = Date()
            let out = try gen.generate(prompt: [1], maxNewTokens: steps)
            let decodeRate = Double(out.count) / Date().timeIntervalSince(t0)
            let ids = (0..<promptLen).map { Int32(($0 * 7919) % c.vocabSize) }
            let cache = m.makeCache(batch: 1, capacity: promptLen)
            t0 = Date()
            _ = try m.prefill(ids: ids, cache: cache)
            let prefillRate = Double(promptLen) / Date().timeIntervalSince(t0)
            if run > 0 { decodeRates.append(decodeRate); prefillRates.append(prefillRate) }
        }
        if profile {
            let decode = m.programs[2]
            decode.setProfiling(true)
            let t0 = Date()
            _ = try gen.generate(prompt: [1], maxNewTokens: steps)
            let wall = Date().timeIntervalSince(t0) * 1e9
            printKernelProfile(decode, wallNs: wall)
            decode.setProfiling(false)
        }
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return s[s.count / 2] }
        let shape = "dim \(c.dim), \(c.nLayers) layers, \(c.nHeads) heads (\(c.nKVHeads) kv), hidden \(c.hiddenDim), vocab \(c.vocabSize)"
        print("model: \(model ?? config ?? "") (\(shape))")
        print(String(format: "decode  (batch 1, greedy, %d tokens): median %.1f tok/s  [min %.1f, max %.1f] over %d runs",
                     steps, median(decodeRates), decodeRates.min() ?? 0, decodeRates.max() ?? 0, runs))
        print(String(format: "prefill (batch 1, %d tokens):        median %.1f tok/s  [min %.1f, max %.1f]",
                     promptLen, median(prefillRates), prefillRates.min() ?? 0, prefillRates.max() ?? 0))
    }
}

/// Prints the slowest kernels of a program whose profiling was on.
func printKernelProfile(_ program: CompiledProgram, wallNs: Double, top: Int = 15) {
    guard let p = program.profile else { return }
    let total = stride(from: 0, to: p.count, by: 2).reduce(0.0) { $0 + p[$1] }
    print(String(format: "%@: kernels take %.1f%% of the wall time", program.manifest.name as NSString, 100 * total / wallNs))
    let rows = program.manifest.kernels.map { ($0.name, p[2 * $0.index], p[2 * $0.index + 1]) }.sorted { $0.1 > $1.1 }
    for (name, ns, calls) in rows.prefix(top) {
        print(String(format: "  %-40@ %9.2f ms  %5.1f%%  %6.0f calls", name as NSString, ns / 1e6, 100 * ns / total, calls))
    }
}

import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench`: speed measurements (benchmarks, never tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed on this machine (release build; medians over timed steps after warm-up).",
        subcommands: [BenchTrain.self, BenchDPO.self, BenchGenerate.self, BenchCompile.self, BenchGemm.self])
}

/// Options every benchmark takes.
struct BenchOptions: ParsableArguments {
    @Option(help: "small | medium (random weights of that shape) or a checkpoint path (.bin or HF directory).")
    var config = "small"
    @Option(help: "OpenMP and OpenBLAS threads (default: the machine's cores).") var threads: Int?
    @Flag(help: "Print one JSON object instead of the text report.") var json = false

    func validate() throws { try checkThreads(threads) }

    /// Applies the thread count (see `applyThreads`).
    func applyThreading(decoding: Bool = false) { applyThreads(threads, decoding: decoding) }

    /// The weights the benchmark runs: a named shape at random (seed 1) or a checkpoint.
    func weights() throws -> LlamaWeights {
        if let c = BenchConfig.named(config) { return LlamaWeights.random(config: c, seed: 1, scale: 0.02) }
        return try loadModel(path: config)
    }
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

    /// One line naming the shape.
    static func describe(_ c: LlamaConfig) -> String {
        "dim \(c.dim), \(c.nLayers) layers, \(c.nHeads) heads (\(c.nKVHeads) kv), hidden \(c.hiddenDim), vocab \(c.vocabSize)"
    }

    /// Parameters a token passes through in matmuls: every weight but the embedding table,
    /// counting the output projection (the embedding itself when tied).
    static func matmulParameters(_ c: LlamaConfig) -> Int {
        c.parameterShapes.filter { $0.name != "embed" }.reduce(0) { $0 + $1.shape.reduce(1, *) }
            + (c.tiedEmbeddings ? c.vocabSize * c.dim : 0)
    }
}

/// Median, minimum and maximum of a sample.
struct Spread: Encodable {
    var median: Double, min: Double, max: Double
    init(_ x: [Double]) {
        let s = x.sorted()
        median = s.isEmpty ? 0 : s[s.count / 2]
        min = s.first ?? 0
        max = s.last ?? 0
    }
    /// `median [min a, max b]` with a format for each number.
    func text(_ f: String) -> String {
        String(format: "median \(f)  [min \(f), max \(f)]", median, min, max)
    }
}

/// Median of a non-empty list.
func median(_ x: [Double]) -> Double { Spread(x).median }

/// Peak resident set size of this process in MiB (Linux: VmHWM).
func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}

/// Measures `cblas_sgemm` alone, in this process and with its threads, through the compiled
/// `bench.sgemm` program: GFLOP/s for `[m,k]·[n,k]ᵀ` (the ceiling a training step is held to).
/// `program: "bench.sgemm_bf16"` measures the bf16 product alone instead (bf16 operands packed
/// from float32, float32 accumulation: the ceiling of a `--bf16` step).
func sgemmGFLOPs(m: Int, n: Int, k: Int, runs: Int = 5, program: String = "bench.sgemm") throws -> Double {
    let p = try CompiledProgram.load(program)
    let a = AlignedBuffer(floats: m * k), b = AlignedBuffer(floats: n * k), c = AlignedBuffer(floats: m * n)
    for i in 0..<(m * k) { a.floats[i] = Float(i % 7) * 0.01 }
    for i in 0..<(n * k) { b.floats[i] = Float(i % 5) * 0.01 }
    var rates: [Double] = []
    for r in 0...runs {
        let t0 = Date()
        try p.run(buffers: ["a": a.raw, "b": b.raw, "c": c.raw], sizes: ["M": m, "N": n, "K": k])
        let dt = Date().timeIntervalSince(t0)
        if r > 0 { rates.append(2.0 * Double(m * n * k) / dt / 1e9) }
    }
    return median(rates)
}

/// Prints `value` as one line of JSON through `JSONOutput` (keys sorted; NaN and ±∞ as "nan", "inf", "-inf").
func printJSON<T: Encodable>(_ value: T) throws {
    print(try JSONOutput.string(value))
}

/// The per-kernel table of programs whose profiling was on, with their costs at `sizes`
/// multiplied by the calls each kernel made.
func kernelReport(_ programs: [(CompiledProgram, [String: Int])]) -> ProfileReport {
    var report = ProfileReport()
    for (p, sizes) in programs {
        let costs = p.costs(sizes: sizes), calls = p.kernelCalls
        report.add(p, flops: zip(costs.flops, calls).map(*), bytes: zip(costs.bytes, calls).map(*))
    }
    return report
}

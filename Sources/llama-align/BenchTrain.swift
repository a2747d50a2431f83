import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// Peak resident set size of this process in MiB (Linux: VmHWM).
func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb / 1024
    }
    return 0
}

/// Median of a non-empty list.
func median(_ x: [Double]) -> Double { let s = x.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }

/// Measures `cblas_sgemm` alone through the compiled `bench.sgemm` program: GFLOP/s for `[m,k]·[n,k]ᵀ`.
func sgemmGFLOPs(m: Int, n: Int, k: Int, runs: Int = 5) throws -> Double {
    let p = try CompiledProgram.load("bench.sgemm")
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

/// `llama-align bench train`: training-step throughput.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Tokens/s and GFLOP/s of one training step (forward, loss, backward, AdamW).")

    @Option(help: "small | medium (random weights) or a checkpoint path.") var config = "small"
    @Option(help: "Sequences per step.") var batch = 4
    @Option(help: "Tokens per sequence.") var seq = 256
    @Option(help: "Timed steps after two warm-up steps.") var steps = 10
    @Flag(help: "Print the time per fused kernel of lm_step.") var profile = false

    func run() throws {
        let weights: LlamaWeights
        if let c = BenchConfig.named(config) {
            weights = LlamaWeights.random(config: c, seed: 1, scale: 0.02)
        } else {
            weights = try loadModel(path: config)
        }
        let c = weights.config
        let trainer = try LMTrainer(parameters: ParameterStore(weights: weights))
        let n = batch * seq
        let ids = (0..<n).map { Int32(($0 * 7919 + 13) % c.vocabSize) }
        let b = TokenBatch(batch: batch, seq: seq, ids: ids, targets: ids.map { ($0 + 1) % Int32(c.vocabSize) }, mask: Array(repeating: 1, count: n))
        var times: [Double] = []
        for s in 0..<(steps + 2) {
            let t0 = Date()
            _ = try trainer.trainStep([b], lr: 1e-4)
            if s >= 2 { times.append(Date().timeIntervalSince(t0)) }
        }
        let nonEmbedding = c.parameterShapes.filter { $0.name != "embed" }.reduce(0) { $0 + $1.shape.reduce(1, *) }
            + (c.tiedEmbeddings ? c.vocabSize * c.dim : 0)
        let flopsPerStep = 6.0 * Double(nonEmbedding) * Double(n)
        let tps = times.map { Double(n) / $0 }
        let ceiling = try sgemmGFLOPs(m: n, n: c.hiddenDim, k: c.dim)
        print("config: \(config) (dim \(c.dim), \(c.nLayers) layers, \(c.nHeads) heads, hidden \(c.hiddenDim), vocab \(c.vocabSize)), batch \(batch) × seq \(seq)")
        print(String(format: "step: median %.1f ms  [min %.1f, max %.1f] over %d steps", median(times) * 1e3,
                     (times.min() ?? 0) * 1e3, (times.max() ?? 0) * 1e3, times.count))
        print(String(format: "throughput: %.0f tokens/s  [min %.0f, max %.0f]", median(tps), tps.min() ?? 0, tps.max() ?? 0))
        let achieved = flopsPerStep / median(times) / 1e9
        print(String(format: "achieved: %.1f GFLOP/s (6 × %d non-embedding params × tokens); sgemm alone %.1f GFLOP/s; ratio %.2f",
                     achieved, nonEmbedding, ceiling, achieved / ceiling))
        print(String(format: "peak RSS: %.0f MiB", peakRSSMiB()))
        if profile, let lm = trainer.programs.first {
            lm.setProfiling(true)
            let t0 = Date()
            _ = try trainer.trainStep([b], lr: 1e-4)
            let wall = Date().timeIntervalSince(t0) * 1e3
            // Costs are per call: times the calls each kernel made in the step.
            let costs = lm.costs(sizes: trainer.sizes(batch: batch, seq: seq)), calls = lm.profile ?? []
            let count = { (k: Int) in k * 2 + 1 < calls.count ? calls[k * 2 + 1] : 0 }
            var report = ProfileReport()
            report.add(lm, flops: costs.flops.enumerated().map { $1 * count($0) }, bytes: costs.bytes.enumerated().map { $1 * count($0) })
            print(report.table(top: Int.max), terminator: "")
            print(String(format: "lm_step kernels: %.1f ms of a %.1f ms step", report.totalMs, wall))
            lm.setProfiling(false)
        }
    }
}

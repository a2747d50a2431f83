import Alignment
import ArgumentParser
import Foundation

/// `llama-align bench dpo`: DPO step throughput with a live and with a precomputed reference.
struct BenchDPO: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dpo", abstract: "Pairs/s of a DPO step (policy forward+backward, reference forward).")

    @Option(help: "small | medium (random weights) or a checkpoint path.") var config = "small"
    @Option(help: "Pairs per step.") var pairs = 4
    @Option(help: "Prompt tokens.") var prompt = 128
    @Option(help: "Tokens of each response.") var response = 128
    @Option(help: "Timed steps after one warm-up step.") var steps = 10

    func run() throws {
        let weights = try BenchConfig.named(config).map { LlamaWeights.random(config: $0, seed: 1, scale: 0.02) } ?? loadModel(path: config)
        let v = weights.config.vocabSize
        func ids(_ n: Int, _ mul: Int, _ add: Int) -> [Int32] { (0..<n).map { Int32(($0 * mul + add) % v) } }
        let list: [PreferencePair] = (0..<pairs).map { i in
            PreferencePair(prompt: ids(prompt, 31, i), chosen: ids(response, 17, i + 3), rejected: ids(response, 13, i + 5))
        }
        let batch = PairBatch(list, pad: 0)
        let policy = try LMTrainer(parameters: ParameterStore(weights: weights))
        let trainer = try DPOTrainer(policy: policy, reference: try ParameterStore(weights: weights), settings: DPOSettings())
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
        print("config: \(config) (dim \(c.dim), \(c.nLayers) layers, vocab \(c.vocabSize)); \(pairs) pairs × (prompt \(prompt) + \(response)/\(response)), shared-prompt rows of \(batch.seq) tokens")
        print(String(format: "live reference:        median %.2f pairs/s  [min %.2f, max %.2f] over %d steps", median(live), live.min() ?? 0, live.max() ?? 0, steps))
        print(String(format: "precomputed reference: median %.2f pairs/s  [min %.2f, max %.2f]", median(cached), cached.min() ?? 0, cached.max() ?? 0))
        print(String(format: "peak RSS: %.0f MiB", peakRSSMiB()))
    }
}

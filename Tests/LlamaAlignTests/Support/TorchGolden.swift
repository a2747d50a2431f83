import Foundation
import Alignment

/// The PyTorch training golden in `Tests/LlamaAlignTests/Fixtures/torch_golden`, written once by
/// `Fixtures/make_torch_golden.py` (float64 reference computed outside the project's IR).
/// Tensors are Hugging Face directories read with the project's own loader; `golden.json`
/// holds the batches, the settings and every scalar.
struct TorchGolden: Decodable {
    /// AdamW and clipping settings the golden was trained with.
    struct Optimizer: Decodable {
        var lr, beta1, beta2, eps, weight_decay, max_grad_norm: Double
    }

    /// One language-model batch, the loss and gradient norm before each of the AdamW steps,
    /// and the loss after the last.
    struct LM: Decodable {
        var batch, seq: Int
        var ids, targets: [Int32]
        var mask: [Float]
        var losses, grad_norms: [Double]
        var final_loss: Double
    }

    /// One preference pair as token ids.
    struct Pair: Decodable {
        var prompt, chosen, rejected: [Int32]
    }

    /// What one DPO step saw: the loss, the gradient norm before clipping, the mean rewards
    /// and each pair's summed log-probs under the policy and the reference.
    struct DPOStep: Decodable {
        var loss, grad_norm, rewards_chosen, rewards_rejected: Double
        var logps_chosen, logps_rejected, ref_logps_chosen, ref_logps_rejected: [Double]
    }

    struct DPO: Decodable {
        var beta: Double
        var pad: Int32
        var pairs: [Pair]
        var steps: [DPOStep]
    }

    var optimizer: Optimizer
    var lm: LM
    var dpo: DPO

    /// The fixture folder (inside the repository; no `../shared`).
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        // Tests/LlamaAlignTests/Support/TorchGolden.swift → Tests/LlamaAlignTests
        for _ in 0..<2 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Fixtures/torch_golden")
    }()

    /// `golden.json`, decoded.
    static func load() throws -> TorchGolden {
        let data = try Data(contentsOf: directory.appendingPathComponent("golden.json"))
        return try JSONDecoder().decode(TorchGolden.self, from: data)
    }

    /// A Hugging Face directory of the fixture (`model`, `lm_gradients`, `lm_final`,
    /// `dpo_gradients`) through `loadModel(path:)`: q/k rows come back in the internal order.
    static func tensors(_ name: String) throws -> LlamaWeights {
        try loadModel(path: directory.appendingPathComponent(name).path)
    }

    /// The project's optimizer settings for this golden.
    var optimizerSettings: OptimizerSettings {
        OptimizerSettings(beta1: optimizer.beta1, beta2: optimizer.beta2, epsilon: optimizer.eps,
                          weightDecay: optimizer.weight_decay, maxGradNorm: optimizer.max_grad_norm)
    }

    /// The language-model batch.
    var tokenBatch: TokenBatch {
        TokenBatch(batch: lm.batch, seq: lm.seq, ids: lm.ids, targets: lm.targets, mask: lm.mask)
    }

    /// The DPO pairs in the project's shared-prompt layout (every response token scored).
    var pairBatch: PairBatch {
        PairBatch(dpo.pairs.map { PreferencePair(prompt: $0.prompt, chosen: $0.chosen, rejected: $0.rejected) }, pad: dpo.pad)
    }
}

/// The golden's tolerance: 1e-5.
///
/// Scalars (losses, norms, rewards, log-prob sums) compare as `|a − e| / max(1, |e|)`: relative
/// above magnitude 1, absolute below. Tensors compare as `max|a − e| / max|e|`: the worst
/// element error relative to that tensor's scale (elementwise relative error is meaningless
/// for entries near zero in float32).
enum GoldenTolerance {
    static let limit = 1e-5

    static func scalar(_ actual: Double, _ expected: Double) -> Double {
        actual.isFinite ? abs(actual - expected) / max(1, abs(expected)) : .infinity
    }

    static func tensor(_ actual: [Float], _ expected: [Float]) -> Double {
        guard actual.count == expected.count else { return .infinity }
        var worst = 0.0, scale = 1e-30
        for (a, e) in zip(actual, expected) {
            guard a.isFinite else { return .infinity }   // max() would pass a NaN over
            worst = max(worst, abs(Double(a) - Double(e)))
            scale = max(scale, abs(Double(e)))
        }
        return worst / scale
    }
}

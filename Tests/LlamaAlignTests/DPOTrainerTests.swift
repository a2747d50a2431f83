import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

@Suite struct DPOTrainerTests {
    static let config = LlamaConfig(dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 6, nKVHeads: 2, vocabSize: 41, maxSeqLen: 64,
                                    tiedEmbeddings: false)
    static let pairs = [
        PreferencePair(prompt: [1, 5, 9, 12], chosen: [7, 7, 3, 2], rejected: [8, 2]),
        PreferencePair(prompt: [1, 30], chosen: [4, 2], rejected: [11, 19, 23, 29, 2]),
        PreferencePair(prompt: [1, 6, 17], chosen: [13, 2], rejected: [14, 15, 2]),
        PreferencePair(prompt: [1, 22, 8, 8, 3], chosen: [5, 2], rejected: [6, 2]),
    ]

    func makeTrainer(_ settings: DPOSettings, seed: UInt64 = 4) throws -> DPOTrainer {
        let w = LlamaWeights.random(config: DPOTrainerTests.config, seed: seed, scale: 0.2)
        let policy = try LMTrainer(parameters: ParameterStore(weights: w))
        return try DPOTrainer(policy: policy, reference: try ParameterStore(weights: w), settings: settings)
    }

    @Test func sigmoidStartsAtLn2AndReferenceStaysFrozen() throws {
        let t = try makeTrainer(DPOSettings())
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        let before = t.reference?.weights()
        let m = try t.step([batch], lr: 1e-2)
        #expect(abs((m["loss"] ?? 0) - log(2.0)) < 1e-6, "\(m)")
        #expect(abs(m["rewards/margins"] ?? 1) < 1e-6)   // policy and reference programs sum in different orders
        for _ in 0..<3 { _ = try t.step([batch], lr: 1e-2) }
        #expect(t.reference?.weights().tensors == before?.tensors)
        // ref_model_update_steps: the reference becomes the policy.
        try t.updateReference()
        #expect(t.reference?.weights().tensors == t.policy.parameters.weights().tensors)
        #expect(t.reference?.weights().tensors != before?.tensors)
    }

    @Test func precomputedAndLiveReferenceGiveTheSameTrajectory() throws {
        let live = try makeTrainer(DPOSettings()), pre = try makeTrainer(DPOSettings())
        let batches = [PairBatch(Array(DPOTrainerTests.pairs[0..<2]), pad: 0), PairBatch(Array(DPOTrainerTests.pairs[2...]), pad: 0)]
        let cached = try batches.map { try pre.referenceLogps($0) }
        for step in 0..<4 {
            let b = batches[step % 2]
            let a = try live.step([b], lr: 5e-3)
            let c = try pre.step([b], references: [cached[step % 2]], lr: 5e-3)
            for (k, v) in a { #expect(abs(v - (c[k] ?? .nan)) <= 1e-5 * max(1, abs(v)), "step \(step) \(k)") }
        }
    }

    @Test func evaluateAgreesWithTheStepAtTheSameWeights() throws {
        var s = DPOSettings()
        s.lossTypes = [.sigmoid, .sft]; s.lossWeights = [1, 0.5]; s.sftLossRatio = 0.3
        let t = try makeTrainer(s)
        let b = PairBatch(DPOTrainerTests.pairs, pad: 0)
        _ = try t.step([b], lr: 1e-2)
        let e = try t.evaluate([b])
        let m = try t.step([b], lr: 0)
        for key in ["loss", "rewards/chosen", "rewards/accuracies", "logps/rejected", "sigmoid_loss", "sft_loss"] {
            #expect(abs((e[key] ?? .nan) - (m[key] ?? .nan)) <= 1e-5 * max(1, abs(m[key] ?? 0)), "\(key)")
        }
    }

    @Test(arguments: DPOLossType.allCases)
    func everyLossTypeTrainsEveryParameter(type: DPOLossType) throws {
        var s = DPOSettings()
        s.lossTypes = [type]
        s.beta = 0.5
        let t = try makeTrainer(s, seed: 9)
        let before = t.policy.parameters.weights()
        let b = PairBatch(DPOTrainerTests.pairs, pad: 0)
        var m: DPOTrainer.Metrics = [:]
        for _ in 0..<2 { m = try t.step([b], lr: 1e-2) }
        #expect(m["loss"].map { $0.isFinite } == true, "\(type): \(m)")
        let after = t.policy.parameters.weights()
        for (name, _) in DPOTrainerTests.config.parameterShapes {
            #expect(before.tensors[name] != after.tensors[name], "\(type): \(name) unchanged")
        }
    }

    @Test func referenceFreeNeedsAReferenceFreeLoss() {
        var s = DPOSettings()
        s.referenceFree = true
        #expect(throws: (any Error).self) { try s.validate() }
        s.lossTypes = [.simpo]
        #expect(throws: Never.self) { try s.validate() }
    }
}

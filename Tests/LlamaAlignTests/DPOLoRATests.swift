import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// DPO on a LoRA policy (`DPOTrainer` over `dpo_step_lora`): the reference is the base model
/// (the same weights, adapters off), only the adapters train, and the preference is learnt.
@Suite struct DPOLoRATests {
    static func trainer(targets: [String]? = nil) throws -> (DPOTrainer, base: LlamaWeights) {
        let w = LlamaWeights.random(config: DPOTrainerTests.config, seed: 4, scale: 0.2)
        let store = try ParameterStore(weights: w, lora: try LoRAConfig(rank: 4, alpha: 8, targetModules: targets), seed: 5)
        return (try DPOTrainer(policy: LMTrainer(parameters: store), reference: nil, settings: DPOSettings()), w)
    }

    @Test func referenceIsTheBaseModelAndOnlyAdaptersTrain() throws {
        let (t, w) = try Self.trainer()
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        // The reference (adapters off) is the plain model's log-probs, bit for bit.
        let plain = try DPOTrainer(policy: LMTrainer(parameters: ParameterStore(weights: w)), reference: try ParameterStore(weights: w), settings: DPOSettings())
        let want = try plain.referenceLogps(batch)
        #expect(try t.referenceLogps(batch) == want)
        // Step 0: B is zero, so the policy is the reference: loss ln 2, margins 0.
        let first = try t.step([batch], lr: 1e-2)
        #expect(abs((first["loss"] ?? 0) - log(2.0)) < 1e-6, "\(first)")
        #expect(abs(first["rewards/margins"] ?? 1) < 1e-5)
        var last = first
        for _ in 0..<8 { last = try t.step([batch], lr: 1e-2) }
        #expect((last["rewards/margins"] ?? 0) > 0.05 && (last["loss"] ?? 1) < log(2.0) - 0.02, "\(last)")
        #expect(t.policy.parameters.weights().tensors == w.tensors, "the base model changed")
        #expect(try t.referenceLogps(batch) == want, "the reference moved")
        let adapters = t.policy.parameters.adapters()
        for name in try #require(t.policy.parameters.lora).trainableNames {
            #expect(adapters[name]?.contains { $0 != 0 } == true, "\(name) did not train")
        }
        // evaluate runs the adapted policy (dpo_logps_lora) against the base reference.
        let e = try t.evaluate([batch]), again = try t.step([batch], lr: 0)
        #expect(abs((e["loss"] ?? 0) - (again["loss"] ?? 1)) <= 1e-5, "\(e) vs \(again)")
        #expect { try t.updateReference() } throws: { "\($0)".contains("ref_model_update_steps") }
    }
}

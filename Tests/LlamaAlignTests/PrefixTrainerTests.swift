import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// Prefix tuning on the trainers (`lm_step_prefix`, `dpo_step_prefix`): the base model stays
/// bit for bit, every prefix value moves, the DPO reference is the model without the prefix.
@Suite struct PrefixTrainerTests {
    static let config = DPOTrainerTests.config

    static func store(tokens: Int = 3) throws -> (ParameterStore, base: LlamaWeights) {
        let w = LlamaWeights.random(config: config, seed: 4, scale: 0.2)
        return (try ParameterStore(weights: w, seed: 5, prefix: try PrefixConfig(tokens: tokens)), w)
    }

    @Test func onlyThePrefixTrainsAndAllOfItMoves() throws {
        let (store, w) = try Self.store()
        let trainer = try LMTrainer(parameters: store)
        #expect(trainer.trainable == [Prefix.parameter])
        #expect(trainer.optimizer.stateFloats == PrefixConfig.alignedCount(store))
        let start = try #require(store.adapters()[Prefix.parameter])
        let ids: [Int32] = [1, 5, 9, 12, 7, 7, 3, 2, 1, 30, 4, 2, 11, 19, 23, 29]
        let batch = TokenBatch(batch: 2, seq: 8, ids: ids, targets: Array(ids.dropFirst()) + [0], mask: (0..<16).map { Float($0 == 7 || $0 == 15 ? 0 : 1) })
        let first = try trainer.trainStep([batch], lr: 1e-2)
        var last = first
        for _ in 0..<10 { last = try trainer.trainStep([batch], lr: 1e-2) }
        #expect(last.loss < first.loss - 0.05, "loss \(first.loss) → \(last.loss)")
        #expect(store.weights().tensors == w.tensors, "the base model changed")
        let end = try #require(store.adapters()[Prefix.parameter])
        #expect(zip(start, end).allSatisfy { $0 != $1 }, "some prefix values did not change")
        // Other tensors cannot be made trainable.
        #expect { try LMTrainer(parameters: Self.store().0, trainable: ["wq", Prefix.parameter]) } throws: { "\($0)".contains("wq") }
    }

    @Test func loraAndPrefixTogetherAreRefused() throws {
        let w = LlamaWeights.random(config: Self.config, seed: 4, scale: 0.2)
        #expect { try ParameterStore(weights: w, lora: try LoRAConfig(rank: 2), prefix: try PrefixConfig(tokens: 2)) } throws: {
            "\($0)".contains("lora and prefix_tuning together")
        }
        #expect { try PrefixConfig(tokens: 0) } throws: { "\($0)".contains("num_prefix_tokens must be positive") }
    }

    /// With `prefix_projection` the MLP trains (through `prefix_encode_backward`), `prefix_kv`
    /// follows it, and the DPO reference stays the model without the prefix.
    @Test func projectedPrefixTrainsItsMLPInDPO() throws {
        let w = LlamaWeights.random(config: Self.config, seed: 4, scale: 0.2)
        let prefix = try PrefixConfig(tokens: 3, projection: 5)
        let store = try ParameterStore(weights: w, seed: 5, prefix: prefix)
        let t = try DPOTrainer(policy: LMTrainer(parameters: store), reference: nil, settings: DPOSettings())
        #expect(t.policy.trainable == Set(PrefixEncoderPrograms.parameters))
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        let want = try DPOTrainer(policy: LMTrainer(parameters: ParameterStore(weights: w)), reference: try ParameterStore(weights: w),
                                  settings: DPOSettings()).referenceLogps(batch)
        let start = store.adapters()
        let first = try t.step([batch], lr: 1e-2)
        var last = first
        for _ in 0..<6 { last = try t.step([batch], lr: 1e-2) }
        #expect((last["rewards/margins"] ?? 0) > (first["rewards/margins"] ?? 0), "\(first) → \(last)")
        let end = store.adapters()
        for name in PrefixEncoderPrograms.parameters + [Prefix.parameter] {
            #expect(zip(try #require(start[name]), try #require(end[name])).allSatisfy { $0 != $1 }, "\(name): some values did not change")
        }
        #expect(store.weights().tensors == w.tensors, "the base model changed")
        #expect(try t.referenceLogps(batch) == want, "the reference is not the base model")
    }

    @Test func dpoReferenceIsTheModelWithoutThePrefix() throws {
        let (store, w) = try Self.store()
        let t = try DPOTrainer(policy: LMTrainer(parameters: store), reference: nil, settings: DPOSettings())
        let batch = PairBatch(DPOTrainerTests.pairs, pad: 0)
        let plain = try DPOTrainer(policy: LMTrainer(parameters: ParameterStore(weights: w)), reference: try ParameterStore(weights: w), settings: DPOSettings())
        let want = try plain.referenceLogps(batch)
        #expect(try t.referenceLogps(batch) == want)
        // The policy (with its prefix) is not the reference.
        let policy = try t.logps(batch, under: store).logps
        #expect(policy.chosen != want.chosen)
        let first = try t.step([batch], lr: 1e-2)
        var last = first
        for _ in 0..<8 { last = try t.step([batch], lr: 1e-2) }
        #expect((last["rewards/margins"] ?? 0) > (first["rewards/margins"] ?? 0) + 0.05, "\(first) → \(last)")
        #expect(store.weights().tensors == w.tensors, "the base model changed")
        #expect(try t.referenceLogps(batch) == want, "the reference moved")
        // evaluate runs the prefix policy (dpo_logps_prefix) against the base reference.
        let e = try t.evaluate([batch]), again = try t.step([batch], lr: 0)
        #expect(abs((e["loss"] ?? 0) - (again["loss"] ?? 1)) <= 1e-5, "\(e) vs \(again)")
        #expect { try t.updateReference() } throws: { "\($0)".contains("ref_model_update_steps") }
    }
}

extension PrefixConfig {
    /// `prefix_kv`'s floats rounded up to the optimizer layout's 16-float alignment.
    static func alignedCount(_ store: ParameterStore) -> Int {
        let n = store.prefix.map { $0.shape(store.config).reduce(1, *) } ?? 0
        return (n + ParameterLayout.alignment - 1) / ParameterLayout.alignment * ParameterLayout.alignment
    }
}

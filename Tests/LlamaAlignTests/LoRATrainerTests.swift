import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// LoRA training through `LMTrainer` on a store holding adapters: the start is the base model,
/// only the targets' adapters move, and bad settings are errors naming the field.
@Suite struct LoRATrainerTests {
    static let config = TrainerTests.config

    static func store(targets: [String]? = nil, rank: Int = 4, seed: UInt64 = 3) throws -> ParameterStore {
        let w = LlamaWeights.random(config: config, seed: 21, scale: 0.1)
        return try ParameterStore(weights: w, lora: try LoRAConfig(rank: rank, alpha: 16, targetModules: targets), seed: seed)
    }

    @Test(arguments: [false, true])
    func stepZeroIsTheBaseModel(tied: Bool) throws {
        var c = Self.config
        c.tiedEmbeddings = tied
        let w = LlamaWeights.random(config: c, seed: 21, scale: 0.1)
        let batch = syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1)
        let base = try LMTrainer(parameters: ParameterStore(weights: w))
        let lora = try LMTrainer(parameters: ParameterStore(weights: w, lora: try LoRAConfig(rank: 4, alpha: 16), seed: 3))
        let want = try base.trainStep([batch], lr: 0).loss
        let got = try lora.trainStep([batch], lr: 0).loss
        #expect(abs(got - want) <= 1e-6 * want, "LoRA step 0 loss \(got) vs base \(want)")
        let e = try lora.evaluate(batch), eb = try base.evaluate(batch)
        #expect(abs(e.sum - eb.sum) <= 1e-6 * eb.sum)
    }

    @Test func onlyTheTargetsAdaptersTrainAndTheBaseStaysBitIdentical() throws {
        let store = try Self.store(targets: [".*q_proj.*", "v_proj", "down_proj"])
        #expect(store.lora?.targets == ["wq", "wv", "w2"])
        let before = store.weights(), adaptersBefore = store.adapters()
        let layout = store.layout
        #expect(Array(layout.order.prefix(6)) == store.lora?.trainableNames)
        let trainer = try LMTrainer(parameters: store, optimizer: OptimizerSettings(weightDecay: 0))
        // The store is already in the optimizer's order: the base model is never copied.
        #expect(store.layout == layout)
        var losses: [Double] = []
        for step in 0..<4 { losses.append(try trainer.trainStep([syntheticBatch(batch: 2, seq: 9, v: 37, seed: step % 2)], lr: 1e-2).loss) }
        #expect(store.weights().tensors == before.tensors, "the base model changed")
        let after = store.adapters()
        for name in store.adapterNames {
            let was = try #require(adaptersBefore[name]), now = try #require(after[name])
            if try #require(store.lora).trainableNames.contains(name) {
                let unchanged = zip(was, now).filter { $0 == $1 }.count
                #expect(unchanged == 0, "\(name): \(unchanged) of \(now.count) values did not change")
            } else {
                #expect(now.allSatisfy { $0 == 0 }, "\(name) is not a target but is not zero")
            }
        }
        #expect(losses[3] < losses[1], "loss did not fall: \(losses)")
        // The frozen base has no gradients or moments: the optimizer's buffers cover the adapters.
        let adapterFloats = store.adapterNames.reduce(0) { $0 + (store.counts[$1] ?? 0) }
        #expect(trainer.optimizer.stateFloats < adapterFloats + 16 * store.adapterNames.count)
        #expect(trainer.gradient("wq") == nil && trainer.gradient(LoRA.aName("wq")) != nil)
        #expect(Set(trainer.optimizerState().keys) == Set(["step"] + store.adapterNames.flatMap { ["exp_avg.\($0)", "exp_avg_sq.\($0)"] }))
        // eval_loss_lora agrees with the training loss at the same adapters.
        let batch = syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1)
        let e = try trainer.evaluate(batch), again = try trainer.trainStep([batch], lr: 0)
        #expect(abs(e.sum / Double(e.tokens) - again.loss) <= 1e-5 * again.loss)
    }

    @Test func initialAdaptersArePEFTs() throws {
        let store = try Self.store(rank: 4)
        let a = try #require(store.adapters()[LoRA.aName("w2")]), b = try #require(store.adapters()[LoRA.bName("w2")])
        let bound = Float(1 / Double(Self.config.hiddenDim).squareRoot())
        #expect(a.count == Self.config.nLayers * 4 * Self.config.hiddenDim)
        #expect(a.allSatisfy { abs($0) <= bound } && a.contains { abs($0) > bound / 2 })
        #expect(b.allSatisfy { $0 == 0 })
        #expect(try Self.store(seed: 3).adapters() == store.adapters())
        #expect(try Self.store(seed: 4).adapters() != store.adapters())
    }

    @Test func scaleIsAlphaOverRankOrOverItsRoot() throws {
        #expect(try LoRAConfig(rank: 4, alpha: 16).scale == 4)
        #expect(try LoRAConfig(rank: 4, alpha: 16, rslora: true).scale == 8)
        #expect(try LoRAConfig(rank: 8).alpha == 16)
        #expect(try LoRAConfig(rank: 8, alpha: -1).alpha == 16)
    }

    @Test func badSettingsAreErrorsNamingTheField() throws {
        #expect { try LoRAConfig(rank: 0) } throws: { "\($0)".contains("lora_rank") }
        #expect { try LoRAConfig(rank: -2) } throws: { "\($0)".contains("lora_rank") }
        #expect { try LoRAConfig(rank: 8, targetModules: ["qkv_proj"]) } throws: {
            let s = "\($0)"
            return s.contains("target_modules") && s.contains("q_proj") && s.contains("gate_proj") && s.contains("down_proj")
        }
        #expect { try LoRAConfig(rank: 8, targetModules: ["model.layers.0.self_attn.q_proj"]) } throws: { "\($0)".contains("some layers") }
        #expect { try LMTrainer(parameters: Self.store(), trainable: ["wq", LoRA.aName("wq")]) } throws: { "\($0)".contains("wq") }
    }
}

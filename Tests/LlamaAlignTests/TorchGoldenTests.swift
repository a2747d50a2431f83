import Foundation
import Testing
import Alignment

/// The project's public training path against numbers PyTorch computed once, in float64, from
/// a from-scratch LLaMA checked against transformers' `LlamaForCausalLM`
/// (`Fixtures/make_torch_golden.py`; like llm.c's test_gpt2.c). The program tests compare the
/// fused C with the reference interpreter of the same IR; this suite is what catches a
/// semantic slip in the DSL's LLaMA (RoPE pairing, GQA head mapping, norms, loss weights,
/// AdamW conventions, DPO scoring). Tolerance: `GoldenTolerance` (1e-5).
@Suite struct TorchGoldenTests {
    let golden: TorchGolden

    init() throws { golden = try TorchGolden.load() }

    /// A trainer on the fixture model as the loader reads it (GQA, untied, θ = 5000).
    private func lmTrainer() throws -> LMTrainer {
        try LMTrainer(parameters: ParameterStore(weights: TorchGolden.tensors("model")), optimizer: golden.optimizerSettings)
    }

    @Test func fixtureConfigIsReadAsTransformersWroteIt() throws {
        let c = try TorchGolden.tensors("model").config
        #expect(c.dim == 32 && c.hiddenDim == 96 && c.nLayers == 2 && c.vocabSize == 64)
        #expect(c.nHeads == 4 && c.nKVHeads == 2)
        #expect(c.normEps == 1e-5 && !c.tiedEmbeddings)
        // transformers 5 writes θ only inside "rope_parameters".
        #expect(c.ropeTheta == 5000)
    }

    @Test func lossAndEveryGradientOfOneStep() throws {
        let trainer = try lmTrainer()
        trainer.zeroGradients()
        let (loss, tokens) = try trainer.accumulateGradients([golden.tokenBatch])
        #expect(tokens == Int(golden.lm.mask.reduce(0, +)))
        let first = try #require(golden.lm.losses.first), firstNorm = try #require(golden.lm.grad_norms.first)
        expectClose("loss", loss, first)
        expectClose("gradient norm", try trainer.gradientNorm(), firstNorm)
        let expected = try TorchGolden.tensors("lm_gradients")
        #expect(Set(expected.tensors.keys) == Set(trainer.parameters.names))
        let worst = try expectTensorsClose("gradient", expected) { trainer.gradient($0) }
        print("torch golden, LM: loss error \(GoldenTolerance.scalar(loss, first)), worst gradient \(worst.name) \(worst.error)")
    }

    @Test func threeAdamWStepsWithClippingAndWeightDecay() throws {
        let trainer = try lmTrainer()
        let batch = golden.tokenBatch
        #expect(golden.lm.losses.count == 3 && golden.lm.grad_norms.count == 3)
        var worstScalar = 0.0
        for (step, (loss, norm)) in zip(golden.lm.losses, golden.lm.grad_norms).enumerated() {
            let r = try trainer.trainStep([batch], lr: golden.optimizer.lr)
            worstScalar = max(worstScalar, expectClose("loss before step \(step + 1)", r.loss, loss),
                              expectClose("gradient norm of step \(step + 1)", r.gradNorm, norm))
        }
        let e = try trainer.evaluate(batch)
        #expect(e.tokens > 0)
        let finalLoss = e.sum / Double(max(e.tokens, 1))
        worstScalar = max(worstScalar, expectClose("loss after 3 steps", finalLoss, golden.lm.final_loss))
        let final = try TorchGolden.tensors("lm_final")
        let now = trainer.parameters.weights()
        let worst = try expectTensorsClose("weight after 3 steps", final) { now.tensors[$0] }
        print("torch golden, AdamW: worst loss/norm error \(worstScalar), worst final weight \(worst.name) \(worst.error)")
    }

    @Test func dpoSigmoidStepsOnATiedModel() throws {
        let untied = try TorchGolden.tensors("model")
        var config = untied.config
        config.tiedEmbeddings = true
        var tensors = untied.tensors
        tensors["lm_head"] = nil
        let tied = LlamaWeights(config: config, tensors: tensors)
        var settings = DPOSettings()
        settings.beta = golden.dpo.beta
        settings.lossTypes = [.sigmoid]
        let policy = try LMTrainer(parameters: ParameterStore(weights: tied), optimizer: golden.optimizerSettings)
        let trainer = try DPOTrainer(policy: policy, reference: try ParameterStore(weights: tied), settings: settings)
        let batch = golden.pairBatch
        #expect(golden.dpo.steps.count == 2)
        var worstScalar = 0.0
        for (step, want) in golden.dpo.steps.enumerated() {
            let mine = try trainer.logps(batch, under: policy.parameters).logps, ref = try trainer.referenceLogps(batch)
            for (what, got, expected) in [("policy chosen", mine.chosen, want.logps_chosen), ("policy rejected", mine.rejected, want.logps_rejected),
                                          ("reference chosen", ref.chosen, want.ref_logps_chosen), ("reference rejected", ref.rejected, want.ref_logps_rejected)] {
                #expect(got.count == expected.count, "\(what) log-probs: \(got.count) pairs")
                for (pair, (g, e)) in zip(got, expected).enumerated() {
                    worstScalar = max(worstScalar, expectClose("step \(step + 1) \(what) log-prob of pair \(pair)", Double(g), e))
                }
            }
            let m = try trainer.step([batch], lr: golden.optimizer.lr)
            for (key, expected) in [("loss", want.loss), ("rewards/chosen", want.rewards_chosen),
                                    ("rewards/rejected", want.rewards_rejected), ("grad_norm", want.grad_norm)] {
                worstScalar = max(worstScalar, expectClose("step \(step + 1) \(key)", m[key] ?? .nan, expected))
            }
            if step == 0 {
                // The gradient buffers still hold this step's gradients (AdamW only reads them).
                let expected = try TorchGolden.tensors("dpo_gradients")
                #expect(expected.config.tiedEmbeddings)
                let worst = try expectTensorsClose("DPO gradient", expected) { policy.gradient($0) }
                print("torch golden, DPO: worst policy gradient \(worst.name) \(worst.error)")
            }
        }
        print("torch golden, DPO: worst loss/reward/log-prob/norm error \(worstScalar)")
    }
}

/// Expects `actual` within `GoldenTolerance` of `expected`; returns the error.
@discardableResult
private func expectClose(_ what: String, _ actual: Double, _ expected: Double,
                         sourceLocation: SourceLocation = #_sourceLocation) -> Double {
    let e = GoldenTolerance.scalar(actual, expected)
    #expect(e <= GoldenTolerance.limit, "\(what): \(actual), PyTorch \(expected) (error \(e))", sourceLocation: sourceLocation)
    return e
}

/// Expects every tensor of `expected` within `GoldenTolerance` of `actual(name)`; returns the worst.
private func expectTensorsClose(_ what: String, _ expected: LlamaWeights, _ actual: (String) -> [Float]?,
                                sourceLocation: SourceLocation = #_sourceLocation) throws -> (name: String, error: Double) {
    var worst = (name: "", error: 0.0)
    for (name, want) in expected.tensors.sorted(by: { $0.key < $1.key }) {
        let got = try #require(actual(name), "no \(what) '\(name)'", sourceLocation: sourceLocation)
        let e = GoldenTolerance.tensor(got, want)
        #expect(e <= GoldenTolerance.limit, "\(what) '\(name)': error \(e)", sourceLocation: sourceLocation)
        if e > worst.error || worst.name.isEmpty { worst = (name, e) }
    }
    return worst
}

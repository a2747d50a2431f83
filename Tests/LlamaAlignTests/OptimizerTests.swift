import Foundation
import Testing
@testable import Alignment

/// The flat optimizer: one parameter buffer with aligned per-tensor views, the trainable tensors
/// first, one program call a step, and PyTorch's AdamW with clipping to float rounding.
@Suite struct OptimizerTests {
    static let config = TrainerTests.config

    private func weights(tied: Bool = false, seed: UInt64 = 3) -> LlamaWeights {
        var c = OptimizerTests.config
        c.tiedEmbeddings = tied
        return LlamaWeights.random(config: c, seed: seed, scale: 0.1)
    }

    @Test(arguments: [true, false])
    func parametersLiveInOneAlignedFlatBuffer(tied: Bool) throws {
        let w = weights(tied: tied)
        let store = try ParameterStore(weights: w)
        var end = 0
        for name in store.layout.order {
            let offset = try #require(store.layout.offsets[name]), view = try #require(store.buffers[name])
            #expect(offset % ParameterLayout.alignment == 0 && offset >= end, "\(name) at \(offset)")
            #expect(view.raw == store.flat.raw + 4 * offset && view.parent === store.flat)
            end = offset + (store.counts[name] ?? 0)
        }
        #expect(end <= store.layout.totalFloats && store.layout.totalFloats * 4 <= store.flat.byteCount)
        #expect(store.buffers["lm_head"] === (tied ? store.buffers["embed"] : store.buffers["lm_head"]))
        #expect(store.weights().tensors == w.tensors)
    }

    @Test func trainableTensorsComeFirstAndMovingThemKeepsEveryValue() throws {
        let store = try ParameterStore(weights: weights())
        let frozen: Set<String> = ["wk", "ffn_norm"]
        let trainer = try LMTrainer(parameters: store, trainable: Set(store.names).subtracting(frozen))
        let order = store.layout.order
        #expect(order == store.names.filter { !frozen.contains($0) } + store.names.filter { frozen.contains($0) })
        #expect(trainer.optimizer.trainableFloats == store.layout.extent(ofFirst: store.names.count - frozen.count))
        _ = try trainer.trainStep([syntheticBatch(batch: 2, seq: 9, v: 37, seed: 1)], lr: 1e-2)
        let values = store.weights(), state = trainer.optimizerState(), grads = store.names.map { trainer.gradient($0) }
        trainer.trainable = Set(store.names)
        #expect(store.layout.order == store.names)
        #expect(store.weights().tensors == values.tensors)
        #expect(trainer.optimizerState() == state)
        #expect(store.names.map { trainer.gradient($0) } == grads)
    }

    @Test(arguments: [1.0, 0.05, 0])
    func twoStepsMatchPyTorchAdamWOnTheHost(maxGradNorm: Double) throws {
        let settings = OptimizerSettings(beta1: 0.9, beta2: 0.95, epsilon: 1e-6, weightDecay: 0.1, maxGradNorm: maxGradNorm)
        let store = try ParameterStore(weights: weights(seed: 8))
        let trainer = try LMTrainer(parameters: store, trainable: Set(store.names).subtracting(["wo"]), optimizer: settings)
        var m: [String: [Double]] = [:], v: [String: [Double]] = [:]
        for (step, lr) in [(1, 3e-3), (2, 1e-3)] {
            trainer.zeroGradients()
            _ = try trainer.accumulateGradients([syntheticBatch(batch: 2, seq: 8, v: 37, seed: step)])
            let before = store.weights()
            var grads: [String: [Float]] = [:]
            for name in store.names { grads[name] = trainer.gradient(name) }
            let norm = trainer.trainable.sorted().reduce(0.0) { s, name in
                s + (grads[name] ?? []).reduce(0.0) { $0 + Double($1) * Double($1) }
            }.squareRoot()
            let reported = try trainer.applyOptimizer(lr: lr)
            #expect(abs(reported - norm) <= 1e-6 * norm)
            let after = store.weights()
            let clip = maxGradNorm > 0 && norm > maxGradNorm ? maxGradNorm / (norm + 1e-6) : 1
            let (b1, b2) = (Double(Float(settings.beta1)), Double(Float(settings.beta2)))
            let (bc1, bc2) = (1 - pow(b1, Double(step)), 1 - pow(b2, Double(step)))
            for name in store.names {
                let p = try #require(before.tensors[name]), g = try #require(grads[name]), got = try #require(after.tensors[name])
                guard trainer.trainable.contains(name) else { #expect(got == p, "\(name) is frozen"); continue }
                var mt = m[name] ?? Array(repeating: 0, count: p.count), vt = v[name] ?? mt
                var want = [Float](repeating: 0, count: p.count)
                for i in p.indices {
                    let gc = clip * Double(g[i])
                    mt[i] = b1 * mt[i] + (1 - b1) * gc
                    vt[i] = b2 * vt[i] + (1 - b2) * gc * gc
                    let pi = Double(p[i])
                    want[i] = Float(pi - lr * settings.weightDecay * pi - lr * (mt[i] / bc1) / ((vt[i] / bc2).squareRoot() + settings.epsilon))
                }
                m[name] = mt; v[name] = vt
                let moved = zip(want, p).map { $0 - $1 }, done = zip(got, p).map { $0 - $1 }
                // The update itself (to a few ulps of the weights, which are up to 1e3 times larger).
                #expect(relativeError(done, moved) <= 5e-4, "step \(step) \(name): \(relativeError(done, moved))")
                #expect(relativeError(got, want) <= 1e-6, "step \(step) \(name)")
            }
        }
    }

    @Test func aStepIsOneCallOfOneProgram() throws {
        let trainer = try LMTrainer(parameters: ParameterStore(weights: weights()))
        let program = trainer.optimizer.program
        program.setProfiling(true)
        defer { program.setProfiling(false) }
        _ = try trainer.trainStep([syntheticBatch(batch: 1, seq: 6, v: 37, seed: 2)], lr: 1e-3)
        let calls = try #require(program.counters).map(\.calls)
        #expect(!calls.isEmpty && calls.allSatisfy { $0 == 1 }, "\(calls)")
        #expect(program.manifest.fields.filter { $0.kind == .input && $0.shape == ["N"] }.count == 4)
    }

    @Test func stateKeepsTheCheckpointFormatAcrossLayouts() throws {
        let w = weights(seed: 4)
        let a = try LMTrainer(parameters: ParameterStore(weights: w), trainable: ["w1", "embed"])
        _ = try a.trainStep([syntheticBatch(batch: 1, seq: 7, v: 37, seed: 3)], lr: 1e-3)
        let s = a.optimizerState()
        let names = a.parameters.names
        #expect(Set(s.keys) == Set(["step"] + names.flatMap { ["exp_avg.\($0)", "exp_avg_sq.\($0)"] }))
        for name in names { #expect(s["exp_avg.\(name)"]?.count == a.parameters.counts[name]) }
        #expect(s["exp_avg.w1"]?.contains { $0 != 0 } == true && s["exp_avg.wq"]?.allSatisfy { $0 == 0 } == true)
        // Another trainable set lays the tensors out differently; the state goes by name.
        let b = try LMTrainer(parameters: ParameterStore(weights: w))
        try b.loadOptimizerState(s)
        #expect(b.optimizerState() == s && b.step == 1)
        var bad = s
        bad["exp_avg.wq"] = [1, 2]
        #expect(throws: (any Error).self) { try b.loadOptimizerState(bad) }
    }
}

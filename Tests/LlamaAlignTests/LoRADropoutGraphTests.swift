import Foundation
import Testing
import GraphCompiler
import LlamaGraphs
import TensorGraph

/// `llama_train.lm_step_lora_dropout` in Double through the reference interpreter: the adapter
/// input is PEFT's `dropout(x)` with the mask the keys draw, its adapter gradients match central
/// differences with that mask fixed, and rate 0 is `lm_step_lora` exactly.
@Suite struct LoRADropoutGraphTests {
    static let sizes = LoRAGraphTests.sizes
    static let rate = 0.4

    /// `LoRAGraphTests.values` with dropout rate `rate` and distinct keys per module and layer.
    static func values(_ p: Program, rate: Double = rate) throws -> (inputs: [String: HostTensor], params: [String: HostTensor]) {
        var (inputs, params) = try LoRAGraphTests.values(p)
        inputs[LoRA.dropoutRateName] = HostTensor(shape: [], data: [rate])
        for (m, module) in LoRA.modules.enumerated() {
            inputs[LoRA.dropoutKeyName(module)] = HostTensor(shape: [2], data: [Double(1000 + 17 * m), Double(-5 - m)])
        }
        return (inputs, params)
    }

    /// Layer 0's kept `v` is `x̂·Wvᵀ + s·((x̂ ⊙ m / (1 − p))·Avᵀ)·Bvᵀ` (PEFT's
    /// `lora_B(lora_A(dropout(x))) * scaling`), `x̂` the attention norm of the embedded ids and
    /// `m = [p ≤ u]` with `u` drawn here from `CounterRandom` and the layer's key.
    @Test func adapterInputIsPEFTsDropoutWithTheDrawnMask() throws {
        let p = try LlamaTrainingPrograms.lmStepLoRADropout()
        let (inputs, params) = try Self.values(p)
        let run = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: params)
        let (t, d, kvd, r) = (3, 4, 2, 2)
        func param(_ name: String) throws -> [Double] { try #require(params[name]).data }
        let embed = try param("embed"), norm = try param("attn_norm"), wv = try param("wv")
        let a = try param(LoRA.aName("wv")), b = try param(LoRA.bName("wv"))
        let scale = try #require(inputs[LoRA.scaleName("wv")]).data[0], eps = 1e-5
        let key = UInt32(truncatingIfNeeded: Int64(try #require(inputs[LoRA.dropoutKeyName("wv")]).data[0]))
        var kept = 0, dropped = 0
        var want = [Double](repeating: 0, count: t * kvd)
        for (row, id) in [1, 5, 2].enumerated() {
            let x = Array(embed[(id * d)..<(id * d + d)])
            let inv = 1 / ((x.map { $0 * $0 }.reduce(0, +) / Double(d)) + eps).squareRoot()
            let xn = (0..<d).map { x[$0] * inv * norm[$0] }
            let xd = (0..<d).map { i -> Double in
                let keep = Self.rate <= Double(CounterRandom.uniform(key: key, index: row * d + i))
                if keep { kept += 1 } else { dropped += 1 }
                return keep ? xn[i] / (1 - Self.rate) : 0
            }
            let down = (0..<r).map { k in (0..<d).reduce(0.0) { $0 + xd[$1] * a[k * d + $1] } }
            for o in 0..<kvd {
                let base = (0..<d).reduce(0.0) { $0 + xn[$1] * wv[o * d + $1] }
                want[row * kvd + o] = base + scale * (0..<r).reduce(0.0) { $0 + down[$1] * b[o * r + $1] }
            }
        }
        #expect(kept > 0 && dropped > 0, "the mask should keep some inputs and drop others: \(kept) kept, \(dropped) dropped")
        let got = Array(try #require(run.mutated["saved_v"]).data.prefix(t * kvd))
        for (g, w) in zip(got, want) { #expect(abs(g - w) <= 1e-12 * max(1, abs(w)), "saved v \(g) vs PEFT's formula \(w)") }
    }

    /// Adapter gradients with the mask fixed (same keys) against central differences.
    @Test func dropoutAdapterGradientsMatchFiniteDifferences() throws {
        let p = try LlamaTrainingPrograms.lmStepLoRADropout()
        let (inputs, params) = try Self.values(p)
        let base = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: params)
        let h = 1e-6
        for m in LoRA.modules {
            for name in [LoRA.aName(m), LoRA.bName(m)] {
                let analytic = try #require(base.mutated[LlamaTrainingPrograms.gradName(name)])
                let count = try #require(params[name]).data.count
                for j in [1, count - 2] {
                    var plus = params, minus = params
                    plus[name]?.data[j] += h; minus[name]?.data[j] -= h
                    let lp = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: plus).outputs["loss"]?.data[0] ?? .nan
                    let lm = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: minus).outputs["loss"]?.data[0] ?? .nan
                    let fd = (lp - lm) / (2 * h)
                    #expect(abs(fd - analytic.data[j]) <= 1e-6 * max(1, abs(fd)), "d/d\(name)[\(j)]: analytic \(analytic.data[j]) vs FD \(fd)")
                }
            }
        }
    }

    /// Rate 0 is `lm_step_lora` bit for bit; rate 0.4 changes the loss and the gradients.
    @Test func rateZeroIsThePlainAdapterAndAPositiveRateActs() throws {
        let drop = try LlamaTrainingPrograms.lmStepLoRADropout(), plain = try LlamaTrainingPrograms.lmStepLoRA()
        let (inputs0, params) = try Self.values(drop, rate: 0)
        let (inputs4, _) = try Self.values(drop)
        var plainInputs = inputs0
        for m in LoRA.modules { plainInputs[LoRA.dropoutKeyName(m)] = nil }
        plainInputs[LoRA.dropoutRateName] = nil
        let want = try ReferenceInterpreter.run(plain, sizes: Self.sizes, inputs: plainInputs, params: params)
        let zero = try ReferenceInterpreter.run(drop, sizes: Self.sizes, inputs: inputs0, params: params)
        let some = try ReferenceInterpreter.run(drop, sizes: Self.sizes, inputs: inputs4, params: params)
        let grad = LlamaTrainingPrograms.gradName(LoRA.aName("w2"))
        #expect(zero.outputs["loss"] == want.outputs["loss"] && zero.mutated[grad] == want.mutated[grad])
        #expect(some.outputs["loss"] != want.outputs["loss"] && some.mutated[grad] != want.mutated[grad])
    }

    /// The generator's numbers are uniform (mean, a tail fraction) and independent of the key
    /// (two keys agree on a drop as often as chance says), and reproducible.
    @Test func counterRandomIsUniformAndKeyed() {
        let n = 200_000
        let u = (0..<n).map { CounterRandom.uniform(key: 12345, index: $0) }
        let w = (0..<n).map { CounterRandom.uniform(key: 12346, index: $0) }
        let mean = u.reduce(0.0) { $0 + Double($1) } / Double(n)
        let below = Double(u.filter { $0 < 0.3 }.count) / Double(n)
        let both = Double(zip(u, w).filter { $0 < 0.3 && $1 < 0.3 }.count) / Double(n)
        #expect(abs(mean - 0.5) < 0.005 && abs(below - 0.3) < 0.005 && abs(both - 0.09) < 0.005, "mean \(mean), P(u<0.3) \(below), joint \(both)")
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(CounterRandom.uniform(key: 7, index: 1 << 40) == CounterRandom.uniform(key: 7, index: 1 << 40))
        #expect(CounterRandom.uniform(key: 7, index: 1 << 40) != CounterRandom.uniform(key: 7, index: 0))
    }
}

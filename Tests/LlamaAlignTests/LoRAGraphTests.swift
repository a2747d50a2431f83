import Foundation
import Testing
import GraphCompiler
import LlamaGraphs
import TensorGraph

/// `llama_train.lm_step_lora` checked in Double through the reference interpreter: its adapter
/// gradients against central differences of its loss, its loss with zero `B` against
/// `lm_step`'s, and its buffers (gradients only for the adapters).
@Suite struct LoRAGraphTests {
    /// A tiny GQA model: 2 layers, 2 query heads sharing 1 KV head of width 2, rank 2.
    static let sizes: [String: Int] = ["B": 1, "T": 3, "L": 2, "KVH": 1, "REP": 2, "HD2": 1, "F": 5, "V": 7, "NS": 3, "NC": 3, "CR": 1, "R": 2]

    /// Inputs and parameters of `program` with deterministic values: ids and targets in
    /// `0..<V`, every position scored, per-module scales 0.5…1.1, zeroed mutable buffers.
    static func values(_ program: Program) throws -> (inputs: [String: HostTensor], params: [String: HostTensor]) {
        var inputs: [String: HostTensor] = [:], params: [String: HostTensor] = [:]
        let fixed: [String: [Double]] = ["ids": [1, 5, 2], "targets": [5, 2, 6], "scored": [0, 1, 2], "weights": [0.5, 0.25, 0.25],
                                         "norm_eps": [1e-5], "rope_theta": [10000]]
        for (k, d) in (program.inputs + program.params).enumerated() {
            let shape = try d.shape.map { try $0.evaluate(sizes) }
            let n = shape.reduce(1, *)
            var data = FusedVsReference.values(n, seed: UInt64(k + 1) * 104_729)
            if let v = fixed[d.name] { data = v }
            if d.mutable { data = Array(repeating: 0, count: n) }
            if let m = LoRA.modules.firstIndex(where: { LoRA.scaleName($0) == d.name }) { data = [0.5 + 0.1 * Double(m)] }
            if d.name.hasSuffix("norm") { data = data.map { 1 + 0.3 * $0 } }
            let t = HostTensor(shape: shape, data: data)
            if program.params.contains(where: { $0.name == d.name }) { params[d.name] = t } else { inputs[d.name] = t }
        }
        return (inputs, params)
    }

    @Test func onlyAdaptersHaveGradientBuffers() throws {
        let p = try LlamaTrainingPrograms.lmStepLoRA()
        let grads = Set(p.inputs.map(\.name).filter { $0.hasPrefix("grad_") })
        let want = Set(LoRA.modules.flatMap { [LlamaTrainingPrograms.gradName(LoRA.aName($0)), LlamaTrainingPrograms.gradName(LoRA.bName($0))] })
        #expect(grads == want)
        for m in LoRA.modules { #expect(p.params.contains { $0.name == m }) }
    }

    /// Every adapter tensor's gradient, at three entries each, against central differences.
    @Test func adapterGradientsMatchFiniteDifferences() throws {
        let p = try LlamaTrainingPrograms.lmStepLoRA()
        let (inputs, params) = try Self.values(p)
        let base = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: params)
        let h = 1e-6
        for m in LoRA.modules {
            for name in [LoRA.aName(m), LoRA.bName(m)] {
                let analytic = try #require(base.mutated[LlamaTrainingPrograms.gradName(name)])
                let count = try #require(params[name]).data.count
                for j in [0, count / 2, count - 1] {
                    var plus = params, minus = params
                    plus[name]?.data[j] += h; minus[name]?.data[j] -= h
                    let lp = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: plus).outputs["loss"]?.data[0] ?? .nan
                    let lm = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: minus).outputs["loss"]?.data[0] ?? .nan
                    let fd = (lp - lm) / (2 * h)
                    #expect(abs(fd - analytic.data[j]) <= 1e-6 * max(1, abs(fd)), "d/d\(name)[\(j)]: analytic \(analytic.data[j]) vs FD \(fd)")
                    #expect(abs(fd) > 1e-8, "d/d\(name)[\(j)] is zero: the adapter is not on the loss's path")
                }
            }
        }
    }

    /// With every `B` zero the adapted model is the base model: `lm_step_lora`'s loss is
    /// `lm_step`'s on the same weights, and the hidden-state buffers agree.
    @Test func zeroUpProjectionIsTheBaseModel() throws {
        let lora = try LlamaTrainingPrograms.lmStepLoRA(), plain = try LlamaTrainingPrograms.lmStep()
        var (inputs, params) = try Self.values(plain)
        let (loraInputs, loraParams) = try Self.values(lora)
        for (name, t) in loraParams where params[name] == nil {
            params[name] = name.hasPrefix("lora_b_") ? HostTensor(shape: t.shape) : t
        }
        for (name, t) in loraInputs where inputs[name] == nil { inputs[name] = t }
        let want = try ReferenceInterpreter.run(plain, sizes: Self.sizes, inputs: inputs, params: params)
        let got = try ReferenceInterpreter.run(lora, sizes: Self.sizes, inputs: inputs, params: params)
        let loss = try #require(want.outputs["loss"]?.data[0])
        #expect(got.outputs["loss"]?.data[0] == loss)
        #expect(got.mutated["saved_h"] == want.mutated["saved_h"])
        // A's gradient is zero when B is (∂/∂A = s·Bᵀ·…); B's is not.
        #expect(got.mutated[LlamaTrainingPrograms.gradName(LoRA.aName("wq"))]?.data.allSatisfy { $0 == 0 } == true)
        #expect(got.mutated[LlamaTrainingPrograms.gradName(LoRA.bName("wq"))]?.data.contains { $0 != 0 } == true)
    }
}

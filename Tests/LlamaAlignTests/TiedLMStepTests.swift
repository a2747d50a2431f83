import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs

@Suite struct TiedLMStepTests {
    /// Tied embeddings: the runtime passes one buffer as both `embed` and `lm_head` (and one
    /// gradient buffer for both); its gradient must be the sum of the interpreter's two.
    @Test func tiedGradientsAreTheSumOfBothUses() throws {
        let program = try LlamaTrainingPrograms.lmStep()
        let sizes = EveryProgramTests.sizes
        var hostIn: [String: HostTensor] = [:], hostParams: [String: HostTensor] = [:]
        var buffers: [String: AlignedBuffer] = [:]
        var seed: UInt64 = 40
        for d in program.params + program.inputs where d.name != "lm_head" && d.name != "grad_lm_head" {
            let shape = try d.shape.map { try $0.evaluate(sizes) }
            let n = shape.reduce(1, *)
            seed += 1
            var v = FusedVsReference.values(n, seed: seed)
            if d.dtype == .i32 { v = v.map { Double(Int(($0 + 1) * 1000) % 13) } }
            if d.name == "scored" { v = [1, 2, 3, 6, 7, 8] }
            if d.name == "norm_eps" { v = [1e-5] }
            if d.name == "rope_theta" { v = [10000] }
            if d.name.hasPrefix("grad_") { v = v.map { _ in 0 } }
            let t = HostTensor(shape: shape, data: v)
            if program.params.contains(where: { $0.name == d.name }) { hostParams[d.name] = t } else { hostIn[d.name] = t }
            buffers[d.name] = d.dtype == .i32 ? AlignedBuffer(copying: v.map { Int32($0) }) : AlignedBuffer(copying: v.map { Float($0) })
        }
        hostParams["lm_head"] = hostParams["embed"]
        hostIn["grad_lm_head"] = hostIn["grad_embed"]
        let ref = try ReferenceInterpreter.run(program, sizes: sizes, inputs: hostIn, params: hostParams)
        buffers["loss"] = AlignedBuffer(floats: 1)
        buffers["entropy"] = AlignedBuffer(floats: 1); buffers["accuracy"] = AlignedBuffer(floats: 1)
        var raw = buffers.mapValues(\.raw)
        raw["lm_head"] = raw["embed"]; raw["grad_lm_head"] = raw["grad_embed"]
        try CompiledProgram.load("llama_train.lm_step").run(buffers: raw, sizes: sizes)
        let a = try #require(ref.mutated["grad_embed"]).data, b = try #require(ref.mutated["grad_lm_head"]).data
        let want = zip(a, b).map { Float($0 + $1) }
        let got = try #require(buffers["grad_embed"]).floatArray(want.count)
        #expect(relativeError(got, want) <= 1e-4)
        #expect(abs(Double(buffers["loss"]!.floats[0]) - ref.outputs["loss"]!.data[0]) <= 1e-4 * abs(ref.outputs["loss"]!.data[0]))
    }
}

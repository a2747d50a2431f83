import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
@testable import Alignment
import TensorGraph

/// Runs a compiled program and the reference interpreter on the same random inputs and
/// compares every output and every written input.
struct FusedVsReference {
    var program: Program
    var compiled: CompiledProgram
    var sizes: [String: Int]
    var seed: UInt64

    /// Deterministic values in [-1, 1).
    static func values(_ n: Int, seed: UInt64) -> [Double] {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Double(s % 2_000_000) / 1_000_000 - 1
        }
    }

    func shape(_ d: TensorDecl) throws -> [Int] { try d.shape.map { try $0.evaluate(sizes) } }

    /// The largest relative error over all outputs (and mutated inputs).
    func maxRelativeError(special: [String: [Double]] = [:], idRange: Int) throws -> (Double, String) {
        var hostInputs: [String: HostTensor] = [:], hostParams: [String: HostTensor] = [:]
        var buffers: [String: AlignedBuffer] = [:]
        var k: UInt64 = 0
        for d in program.inputs + program.params {
            let s = try shape(d)
            let n = s.reduce(1, *)
            k += 1
            var v = special[d.name] ?? FusedVsReference.values(n, seed: seed &+ k)
            if d.dtype == .i32, special[d.name] == nil { v = v.map { Double(Int(($0 + 1) * 1000) % idRange) } }
            let t = HostTensor(shape: s, data: v)
            if program.inputs.contains(where: { $0.name == d.name }) { hostInputs[d.name] = t } else { hostParams[d.name] = t }
            buffers[d.name] = d.dtype == .i32 ? AlignedBuffer(copying: v.map { Int32($0) }) : AlignedBuffer(copying: v.map { Float($0) })
        }
        let reference = try ReferenceInterpreter.run(program, sizes: sizes, inputs: hostInputs, params: hostParams)
        for (name, t) in reference.outputs { buffers[name] = AlignedBuffer(floats: t.data.count) }
        try compiled.run(buffers: buffers.mapValues(\.raw), sizes: sizes)
        var worst = 0.0, which = ""
        let compare = reference.outputs.merging(reference.mutated) { a, _ in a }
        for (name, want) in compare {
            guard let buf = buffers[name] else { continue }
            let got = buf.floatArray(want.data.count)
            var num = 0.0, den = 1e-12
            for (g, w) in zip(got, want.data) { num = max(num, abs(Double(g) - w)); den = max(den, abs(w)) }
            if num / den > worst { worst = num / den; which = name }
        }
        return (worst, which)
    }
}

@Suite struct FusedVsInterpreterTests {
    /// Small odd shapes: head width 6, 3 KV heads × 2 (GQA), hidden 11, vocab 13.
    static let sizes: [String: Int] = ["B": 3, "T": 5, "L": 2, "KVH": 3, "REP": 2, "HD2": 3, "F": 11, "V": 13]

    @Test(arguments: ["forward", "prefill", "decode"])
    func llamaProgramMatchesReference(name: String) throws {
        let program = try LlamaPrograms.all().first { $0.name == name }!
        var sizes = FusedVsInterpreterTests.sizes
        if name != "forward" { sizes["P"] = 4; sizes["C"] = 11; sizes["S"] = 4 + (name == "decode" ? 1 : 5) }
        let check = FusedVsReference(program: program, compiled: try CompiledProgram.load("llama.\(name)"), sizes: sizes, seed: 7)
        let (err, which) = try check.maxRelativeError(special: ["norm_eps": [1e-5], "rope_theta": [10000]], idRange: 13)
        #expect(err <= 1e-5, "\(name): \(which) differs by \(err)")
    }

    @Test func mhaWithBatchOneMatchesReference() throws {
        let program = try LlamaPrograms.build(.forward)
        var sizes = FusedVsInterpreterTests.sizes
        sizes["B"] = 1; sizes["KVH"] = 2; sizes["REP"] = 1; sizes["T"] = 7
        let check = FusedVsReference(program: program, compiled: try CompiledProgram.load("llama.forward"), sizes: sizes, seed: 11)
        let (err, which) = try check.maxRelativeError(special: ["norm_eps": [1e-6], "rope_theta": [500000]], idRange: 13)
        #expect(err <= 1e-5, "\(which) differs by \(err)")
    }
}

@Suite struct EveryProgramTests {
    /// Small odd sizes for every symbol any program uses.
    static let sizes: [String: Int] = ["B": 2, "T": 5, "L": 2, "KVH": 2, "REP": 2, "HD2": 3, "F": 11, "V": 13,
                                       "P": 3, "S": 8, "C": 9, "N": 37, "M": 3, "K": 7, "NS": 6]

    /// Inputs that need particular values (scalars with meaning, int ranges).
    static let special: [String: [Double]] = [
        "norm_eps": [1e-5], "rope_theta": [10000], "beta": [0.3], "label_smoothing": [0.1], "simpo_gamma": [0.5],
        "dpop_lambda": [5], "pref_loss_ratio": [1], "sft_loss_ratio": [0.5], "lr": [0.01], "beta1": [0.9], "beta2": [0.999],
        "eps": [1e-8], "weight_decay": [0.1], "bias_correction1": [0.1], "bias_correction2": [0.001], "clip_scale": [0.7],
    ]

    static let names: [String] = ((try? GraphFamilies.all()) ?? []).flatMap { f in f.programs.map { "\(f.name).\($0.name)" } }

    @Test(arguments: EveryProgramTests.names)
    func fusedMatchesReference(name: String) throws {
        let parts = name.split(separator: ".").map(String.init)
        let program = try #require(try GraphFamilies.all().first { $0.name == parts[0] }?.programs.first { $0.name == parts[1] })
        var special = EveryProgramTests.special
        let b = EveryProgramTests.sizes["B"]!, t = EveryProgramTests.sizes["T"]!
        if program.decl("segments") != nil {
            // A valid shared-prompt layout: prompt 0..1, chosen 2..3, rejected 4 (row-major [B, T]).
            special["segments"] = (0..<(b * t)).map { Double([0, 0, 1, 1, 2][$0 % t]) }
            special["positions"] = (0..<(b * t)).map { Double([0, 1, 2, 3, 2][$0 % t]) }
            special["loss_weights"] = FusedVsReference.values(17, seed: 5).map { $0 > 0 ? $0 : 0 }
            special["scored_pair"] = [0, 0, 0, 1, 1, 1]
        }
        // Scored positions (flat b·T + t): 1, 2, 3 of row 0, then 6, 7, 8 of row 1.
        if program.decl("scored") != nil { special["scored"] = [1, 2, 3, 6, 7, 8] }
        if program.decl("exp_avg_sq") != nil {
            special["exp_avg_sq"] = FusedVsReference.values(37, seed: 3).map { abs($0) }
        }
        if program.decl("len_chosen") != nil {
            special["len_chosen"] = [3, 5]; special["len_rejected"] = [4, 2]
            special["logps_chosen"] = [-7.5, -12]; special["logps_rejected"] = [-8.25, -11]
        }
        let check = FusedVsReference(program: program, compiled: try CompiledProgram.load(name), sizes: EveryProgramTests.sizes, seed: 17)
        let (err, which) = try check.maxRelativeError(special: special, idRange: 13)
        let tolerance = name.hasPrefix("llama.") || name.hasPrefix("bench.") ? 1e-5 : 1e-4
        #expect(err <= tolerance, "\(name): \(which) differs by \(err)")
    }
}

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

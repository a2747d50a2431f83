import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs

@Suite struct EveryProgramTests {
    /// Small odd sizes for every symbol any program uses.
    static let sizes: [String: Int] = ["B": 2, "T": 5, "L": 2, "KVH": 2, "REP": 2, "HD2": 3, "F": 11, "V": 13,
                                       "P": 3, "S": 8, "C": 9, "N": 37, "M": 3, "K": 7, "NS": 6, "NC": 2, "CR": 3, "R": 3, "E": 4,
                                       "GD": 1, "GF": 1, "RD": 1, "RF": 1]

    /// Inputs that need particular values (scalars with meaning, int ranges).
    static let special: [String: [Double]] = [
        "norm_eps": [1e-5], "rope_theta": [10000], "beta": [0.3], "label_smoothing": [0.1], "simpo_gamma": [0.5],
        "dpop_lambda": [5], "pref_loss_ratio": [1], "sft_loss_ratio": [0.5], "lr": [0.01], "beta1": [0.9], "beta2": [0.999],
        "eps": [1e-8], "weight_decay": [0.1], "bias_correction1": [0.1], "bias_correction2": [0.001], "clip_scale": [0.7],
        "max_grad_norm": [1], "lora_dropout": [0.4],
    ]

    static let names: [String] = ((try? GraphFamilies.all()) ?? []).flatMap { f in f.programs.map { "\(f.name).\($0.name)" } }

    @Test(arguments: EveryProgramTests.names)
    func fusedMatchesReference(name: String) throws {
        let parts = name.split(separator: ".").map(String.init)
        let program = try #require(try GraphFamilies.all().first { $0.name == parts[0] }?.programs.first { $0.name == parts[1] })
        // A bf16 program on a CPU without AVX-512 BF16 (AVX2-only machines, AMD Zen 3): loading
        // it is refused in one error instead of its kernels stopping the process (SIGILL).
        if try #require(CompiledProgram.manifests.first { $0.name == name }).needsBF16,
           !MatrixKernels.current.hasBF16 {
            #expect(throws: RuntimeError.self) { try CompiledProgram.load(name) }
            return
        }
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
        // The q4 model's 4-bit weights make peaked attention whose logits amplify fp32 rounding:
        // `llama.forward_q4` differs by 9.2e-6 with attention written out from primitives and
        // by 1.02e-5 with the fused kernels (every other llama program by under 2e-6 either way);
        // the `_q4_h4` programs (4-bit output matrix) are held to the same bound.
        let tolerance = name.hasSuffix("_q4") || name.hasSuffix("_q4_h4") ? 2e-5 : name.hasPrefix("llama.") || name.hasPrefix("bench.") ? 1e-5 : 1e-4
        #expect(err <= tolerance, "\(name): \(which) differs by \(err)")
    }
}

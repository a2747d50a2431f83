import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
@testable import Alignment
import TensorGraph

@Suite struct FusedVsInterpreterTests {
    /// Small odd shapes: head width 6, 3 KV heads × 2 (GQA), hidden 11, vocab 13.
    static let sizes: [String: Int] = ["B": 3, "T": 5, "L": 2, "KVH": 3, "REP": 2, "HD2": 3, "F": 11, "V": 13]

    @Test(arguments: ["forward", "prefill", "decode"])
    func llamaProgramMatchesReference(name: String) throws {
        let program = try LlamaPrograms.all().first { $0.name == name }!
        var sizes = FusedVsInterpreterTests.sizes
        if name != "forward" { sizes["P"] = 4; sizes["C"] = 11; sizes["S"] = 4 + (name == "decode" ? 1 : 5) }
        var special: [String: [Double]] = ["norm_eps": [1e-5], "rope_theta": [10000]]
        // prefill's projected rows (flat b·T + t of the 3 × 5): each row's last, one repeated, one first.
        if name == "prefill" { sizes["NS"] = 5; special["scored"] = [4, 9, 14, 9, 0] }
        let check = FusedVsReference(program: program, compiled: try CompiledProgram.load("llama.\(name)"), sizes: sizes, seed: 7)
        let (err, which) = try check.maxRelativeError(special: special, idRange: 13)
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

import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
import TensorGraph

/// The fused attention's one-row forward (`T = 1`, decode: each key/value head's cache read once
/// for its `REP` query heads, keys in chunks of 128 with one online-softmax update per chunk)
/// against the attention written out from primitives, compiled and interpreted.
@Suite struct FusedAttentionStepTests {
    /// Short caches (one partial chunk) and long ones (several chunks, the running max moved on),
    /// GQA with 1–3 query heads per key head, with and without a mask.
    @Test(arguments: [(false, 0, 1), (false, 5, 2), (true, 3, 3), (false, 130, 2), (true, 300, 1), (true, 255, 3), (false, 383, 3)])
    func stepMatchesUnfusedCompiled(masked: Bool, prefix: Int, rep: Int) throws {
        let suffix = masked ? "_masked" : ""
        let sizes = FusedAttentionTests.sizes(prefix: prefix, rep: rep, seq: 1)
        let x = try FusedAttentionTests.inputs(try FusedAttentionTests.program("fused_step" + suffix), sizes, seed: 41)
        let fused = try #require(try FusedAttentionTests.run("fused_step" + suffix, x, sizes)["out"])
        let unfused = try #require(try FusedAttentionTests.run("unfused_step" + suffix, x, sizes)["out"])
        let err = relativeError(fused, unfused)
        #expect(fused.allSatisfy { $0.isFinite } && err <= 2e-6, "masked \(masked), P \(prefix), REP \(rep): \(err)")
    }

    /// The compiled one-row kernel against the interpreter running the unfused composite, in Doubles.
    @Test(arguments: [false, true])
    func stepMatchesInterpretedComposite(masked: Bool) throws {
        let suffix = masked ? "_masked" : ""
        let sizes = FusedAttentionTests.sizes(prefix: 140, rep: 2, batch: 2, seq: 1)
        let special = masked ? ["allowed": FusedAttentionTests.mask(sizes)] : [:]
        let check = FusedVsReference(program: try FusedAttentionTests.program("unfused_step" + suffix),
                                     compiled: try CompiledProgram.load("attention.fused_step" + suffix), sizes: sizes, seed: 9)
        let (err, which) = try check.maxRelativeError(special: special, idRange: 1)
        #expect(err <= 1e-5, "\(which) differs by \(err)")
    }
}

import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
import TensorGraph

/// The fused causal-attention kernels (`attention.fused*`) against the attention written out
/// from primitives (`attention.unfused*`: scores product, mask, softmax, product with V),
/// compiled and interpreted, forward and gradients; and against finite differences of the
/// compiled program itself.
@Suite struct FusedAttentionTests {
    /// GQA (3 KV heads × 2), head width 6, a prefix of `P` keys ahead of the rows.
    static func sizes(prefix: Int, rep: Int = 2, batch: Int = 2, seq: Int = 5) -> [String: Int] {
        ["B": batch, "T": seq, "P": prefix, "S": prefix + seq, "KVH": 3, "REP": rep, "HD2": 3]
    }

    /// A 1/0 mask `[B, T, S]` with holes, every row keeping its own position.
    static func mask(_ s: [String: Int]) -> [Double] {
        let (b, t, n, p) = (s["B"]!, s["T"]!, s["S"]!, s["P"]!)
        return (0..<(b * t * n)).map { i in
            let (bi, ti, si) = (i / (t * n), i / n % t, i % n)
            return si == p + ti || (bi + ti + 2 * si) % 3 != 0 ? 1 : 0
        }
    }

    static func program(_ name: String) throws -> Program {
        try #require(try AttentionPrograms.all().first { $0.name == name })
    }

    /// Random inputs (and the mask) for a program, as buffers and host tensors.
    static func inputs(_ p: Program, _ sizes: [String: Int], seed: UInt64) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (k, d) in p.inputs.enumerated() {
            let n = try d.shape.map { try $0.evaluate(sizes) }.reduce(1, *)
            out[d.name] = d.name == "allowed" ? mask(sizes).map(Float.init)
                : FusedVsReference.values(n, seed: seed &+ UInt64(k)).map { Float($0 * 2) }
        }
        return out
    }

    static func run(_ name: String, _ inputs: [String: [Float]], _ sizes: [String: Int]) throws -> [String: [Float]] {
        let p = try program(name)
        var buffers = inputs.mapValues { AlignedBuffer(copying: $0) }
        var counts: [String: Int] = [:]
        for (out, node) in p.outputs {
            counts[out] = try p.nodes[node].shape.map { try $0.evaluate(sizes) }.reduce(1, *)
            buffers[out] = AlignedBuffer(floats: counts[out]!)
        }
        try CompiledProgram.load("attention.\(name)").run(buffers: buffers.mapValues(\.raw), sizes: sizes)
        return counts.reduce(into: [:]) { r, e in r[e.key] = buffers[e.key]!.floatArray(e.value) }
    }

    /// Short rows (one tile of 16) and long ones (several tiles and forward row blocks of 64, tiles
    /// above the diagonal skipped, the online softmax rescaled).
    @Test(arguments: [(false, 0, 2, 5), (false, 3, 2, 5), (true, 0, 1, 5), (true, 3, 2, 5), (true, 4, 3, 5),
                      (false, 0, 1, 37), (true, 5, 2, 37), (false, 17, 2, 20), (true, 3, 2, 70)])
    func fusedMatchesUnfusedCompiled(masked: Bool, prefix: Int, rep: Int, seq: Int) throws {
        let suffix = masked ? "_masked" : ""
        let sizes = FusedAttentionTests.sizes(prefix: prefix, rep: rep, seq: seq)
        let x = try FusedAttentionTests.inputs(try FusedAttentionTests.program("fused" + suffix), sizes, seed: 31)
        let fused = try FusedAttentionTests.run("fused" + suffix, x, sizes)
        let unfused = try FusedAttentionTests.run("unfused" + suffix, x, sizes)
        for name in ["out", "dq", "dk", "dv"] {
            let (a, b) = (try #require(fused[name]), try #require(unfused[name]))
            let finite = a.allSatisfy { $0.isFinite }, err = relativeError(a, b)
            #expect(finite && err <= 2e-6, "\(name) (masked \(masked), P \(prefix), REP \(rep), T \(seq)): \(err)")
        }
    }

    /// The compiled fused program against the interpreter running the unfused composite, in Doubles.
    @Test(arguments: [false, true])
    func fusedMatchesInterpretedComposite(masked: Bool) throws {
        let suffix = masked ? "_masked" : ""
        let sizes = FusedAttentionTests.sizes(prefix: 2, rep: 2, batch: 1, seq: 6)
        let special = masked ? ["allowed": FusedAttentionTests.mask(sizes)] : [:]
        let check = FusedVsReference(program: try FusedAttentionTests.program("unfused" + suffix),
                                     compiled: try CompiledProgram.load("attention.fused" + suffix), sizes: sizes, seed: 5)
        let (err, which) = try check.maxRelativeError(special: special, idRange: 1)
        #expect(err <= 1e-5, "\(which) differs by \(err)")
    }

    /// `dq`, `dk`, `dv` of the compiled fused program against central differences of its own
    /// `Σ seed ∘ out` (fp32, so a loose bound), GQA with a prefix and a mask.
    @Test func gradientsMatchFiniteDifferences() throws {
        let sizes = FusedAttentionTests.sizes(prefix: 2, rep: 2, batch: 1, seq: 4)
        let x = try FusedAttentionTests.inputs(try FusedAttentionTests.program("fused_masked"), sizes, seed: 77)
        let base = try FusedAttentionTests.run("fused_masked", x, sizes)
        func loss(_ y: [String: [Float]]) throws -> Double {
            let out = try FusedAttentionTests.run("fused_masked", y, sizes)["out"]!
            return zip(out, y["seed"]!).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2
        for (input, grad) in [("q", "dq"), ("k", "dk"), ("v", "dv")] {
            let analytic = try #require(base[grad])
            for j in stride(from: 0, to: analytic.count, by: 7) {
                var plus = x, minus = x
                plus[input]![j] += h; minus[input]![j] -= h
                let fd = (try loss(plus) - loss(minus)) / Double(2 * h)
                #expect(abs(fd - Double(analytic[j])) <= 2e-3 * max(1, abs(fd)), "d/d\(input)[\(j)]: \(analytic[j]) vs FD \(fd)")
            }
        }
    }

    /// The kernels skip the masked half and never store a `T×S` tensor: the fused program's
    /// kernels are one forward and one backward attention kernel and no product.
    @Test func fusedProgramStoresNoScores() throws {
        let p = try FusedAttentionTests.program("fused_masked")
        let s = try CCompiler.emit([("attention", [p])], sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        struct Root: Decodable { var programs: [Prog] }
        struct Prog: Decodable { var kernels: [K] }
        struct K: Decodable { var name: String; var kind: String }
        let kernels = try JSONDecoder().decode(Root.self, from: Data(s.manifestJSON.utf8)).programs[0].kernels
        let attention = kernels.filter { $0.kind == "attention" }.map(\.name)
        #expect(attention.count == 2 && attention[0].hasSuffix("causal_attention_forward")
                && attention[1].hasSuffix("causal_attention_backward"), "\(attention)")
        #expect(!kernels.contains { $0.kind == "sgemm" }, "\(kernels.map(\.name))")
    }
}

import Foundation
import Testing
@testable import GraphCompiler
import TensorGraph

/// Finite-difference checks of every gradient rule, in Double through the reference interpreter.
@Suite struct AutodiffTests {
    /// Builds `loss = Σ w ⊙ f(x…)` with fixed random weights, differentiates it with respect
    /// to every f32 input, and compares with central differences of the interpreted loss.
    func check(_ name: String, inputs: [(String, [Int], ClosedRange<Double>)], ints: [(String, [Int], Int)] = [],
               tolerance: Double = 1e-6, _ f: (GraphBuilder, [Tensor], [Tensor]) -> Tensor) throws {
        let b = GraphBuilder(name)
        let xs = inputs.map { b.input($0.0, $0.1.map { Dim($0) }) }
        let ids = ints.map { b.input($0.0, $0.1.map { Dim($0) }, .i32) }
        let y = f(b, xs, ids)
        let w = b.input("loss_w", y.shape)
        let loss = b.weightedSum(y, w)
        let grads = try b.gradients(of: loss, wrt: xs)
        b.output("loss", loss)
        for (i, g) in grads.enumerated() { b.output("grad\(i)", g) }
        let p = try b.build()
        var values: [String: HostTensor] = [:]
        for (k, (n, shape, range)) in inputs.enumerated() {
            let raw = FusedVsReference.values(shape.reduce(1, *), seed: UInt64(k + 1) * 7919)
            values[n] = HostTensor(shape: shape, data: raw.map { range.lowerBound + ($0 + 1) / 2 * (range.upperBound - range.lowerBound) })
        }
        for (n, shape, limit) in ints {
            values[n] = HostTensor(shape: shape, data: (0..<shape.reduce(1, *)).map { Double(($0 * 5 + 2) % limit) })
        }
        let yShape = y.shape.map { $0.constant ?? 1 }
        values["loss_w"] = HostTensor(shape: yShape, data: FusedVsReference.values(yShape.reduce(1, *), seed: 99))
        let base = try ReferenceInterpreter.run(p, sizes: [:], inputs: values, params: [:])
        let h = 1e-6
        for (k, (n, _, _)) in inputs.enumerated() {
            let analytic = try #require(base.outputs["grad\(k)"])
            for j in 0..<(values[n]?.count ?? 0) {
                var plus = values, minus = values
                plus[n]?.data[j] += h; minus[n]?.data[j] -= h
                let lp = try ReferenceInterpreter.run(p, sizes: [:], inputs: plus, params: [:]).outputs["loss"]?.data[0] ?? 0
                let lm = try ReferenceInterpreter.run(p, sizes: [:], inputs: minus, params: [:]).outputs["loss"]?.data[0] ?? 0
                let fd = (lp - lm) / (2 * h)
                let err = abs(fd - analytic.data[j]) / max(1, abs(fd))
                #expect(err <= tolerance, "\(name): d/d\(n)[\(j)] analytic \(analytic.data[j]) vs FD \(fd)")
            }
        }
    }

    @Test(arguments: UnaryOp.allCases)
    func unaryRules(op: UnaryOp) throws {
        let positive: Set<UnaryOp> = [.log, .sqrt, .rsqrt, .recip]
        let range: ClosedRange<Double> = positive.contains(op) ? 0.5...2 : -2...2
        try check("unary_\(op.rawValue)", inputs: [("x", [2, 3], range)]) { b, x, _ in b.unary(op, x[0]) }
    }

    @Test(arguments: BinaryOp.allCases)
    func binaryRules(op: BinaryOp) throws {
        let positive: Set<BinaryOp> = [.div, .pow]
        let range: ClosedRange<Double> = positive.contains(op) ? 0.5...2 : -2...2
        // Broadcasting on the second operand exercises expand's rule too.
        try check("binary_\(op.rawValue)", inputs: [("a", [2, 3], range), ("b", [3], range)]) { b, x, _ in b.binary(op, x[0], x[1]) }
    }

    @Test func selectReduceAndViewRules() throws {
        try check("select", inputs: [("c", [4], -1...1), ("a", [4], -2...2), ("b", [4], -2...2)]) { b, x, _ in
            b.select(x[0].lt(b.constant(0)), x[1], x[2])
        }
        try check("reduce_sum_axis0", inputs: [("x", [3, 4], -2...2)]) { _, x, _ in x[0].sum(axis: 0) }
        try check("reduce_max", inputs: [("x", [3, 4], -2...2)]) { _, x, _ in x[0].max(axis: -1) }
        try check("reshape_permute", inputs: [("x", [2, 3, 4], -2...2)]) { _, x, _ in x[0].permute([2, 0, 1]).reshape([4, 6]) }
        try check("expand", inputs: [("x", [3, 1], -2...2)]) { _, x, _ in x[0].expand([2, 3, 5]) }
        try check("slice_concat", inputs: [("x", [3, 4], -2...2), ("y", [3, 2], -2...2)]) { b, x, _ in
            b.concat([x[0].slice(axis: 1, start: 1, length: 2), x[1]], axis: 1)
        }
        try check("cast", inputs: [("x", [3], -2...2)]) { b, x, _ in x[0] * 2.0 + x[0].cast(.i32).cast(.f32) }
    }

    /// stop_gradient is the identity with a zero gradient (so finite differences do not apply).
    /// `reuse(computed, saved)`: the value is the saved buffer's, the gradient flows into
    /// `computed`; after Simplify nothing reads `computed` (it is not recomputed).
    @Test func reuseReadsTheSavedValueAndPassesTheGradient() throws {
        let b = GraphBuilder("reuse")
        let x = b.input("x", [3])
        let kept = b.writeSlice(b.input("s", [3], mutable: true), x * x + 1.0, axis: 0, start: 0)
        let y = b.reuse(x * x, saved: kept)
        let loss = b.weightedSum(y * y, b.broadcast(b.constant(1), to: [3]))
        let g = try b.gradients(of: loss, wrt: [x])
        b.output("loss", loss); b.output("g", g[0])
        let p = try b.build()
        let xs: [Double] = [1, -2, 3]
        let r = try ReferenceInterpreter.run(p, sizes: [:], inputs: ["x": HostTensor(shape: [3], data: xs), "s": HostTensor(shape: [3], data: [0, 0, 0])], params: [:])
        // y = x² + 1 (the saved value); dy/dx through x·x = 2x, so g = 2y · 2x.
        #expect(r.outputs["loss"]?.data == [xs.reduce(0) { $0 + ($1 * $1 + 1) * ($1 * $1 + 1) }])
        #expect(r.outputs["g"]?.data == xs.map { 4 * $0 * ($0 * $0 + 1) })
        let simplified = Simplify.run(p)
        #expect(!simplified.nodes.contains { $0.op == .reuse })
    }

    @Test func stopGradientBlocksTheGradient() throws {
        let b = GraphBuilder("stop")
        let x = b.input("x", [3])
        let loss = b.weightedSum(x * b.stopGradient(x), b.broadcast(b.constant(1), to: [3]))
        let g = try b.gradients(of: loss, wrt: [x])
        b.output("loss", loss); b.output("g", g[0])
        let r = try ReferenceInterpreter.run(try b.build(), sizes: [:], inputs: ["x": HostTensor(shape: [3], data: [1, -2, 3])], params: [:])
        #expect(r.outputs["loss"]?.data == [14])
        #expect(r.outputs["g"]?.data == [1, -2, 3])
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matmulRules(ta: Bool, tb: Bool) throws {
        let a: [Int] = ta ? [2, 4, 3] : [2, 3, 4], bShape: [Int] = tb ? [2, 5, 4] : [2, 4, 5]
        try check("matmul", inputs: [("a", a, -1...1), ("b", bShape, -1...1)]) { b, x, _ in b.matmul(x[0], x[1], transA: ta, transB: tb) }
    }

    @Test func gatherAndScatterRules() throws {
        try check("gather", inputs: [("table", [5, 3], -1...1)], ints: [("ids", [2, 4], 5)]) { b, x, i in b.gather(x[0], i[0]) }
        try check("scatter_add", inputs: [("src", [4, 3], -1...1)], ints: [("ids", [4], 5)]) { b, x, i in b.scatterAdd(x[0], i[0], rows: 5) }
    }

    @Test func compositesEndToEnd() throws {
        try check("rmsnorm", inputs: [("x", [2, 6], -2...2), ("w", [6], 0.5...1.5)]) { b, x, _ in b.rmsNorm(x[0], x[1], eps: b.constant(1e-5)) }
        try check("softmax", inputs: [("x", [3, 5], -3...3)]) { b, x, _ in b.softmax(x[0]) }
        try check("log_softmax_nll", inputs: [("x", [3, 5], -3...3)], ints: [("t", [3], 5)]) { b, x, i in b.tokenNLL(x[0], targets: i[0]) }
        try check("silu", inputs: [("x", [7], -3...3)]) { b, x, _ in b.silu(x[0]) }
        try check("rope", inputs: [("x", [1, 3, 2, 4], -1...1)]) { b, x, _ in
            let (c, s) = b.ropeTables(seq: 3, half: 2, start: 1, theta: b.constant(10000))
            return b.rope(x[0], cos: c, sin: s)
        }
        try check("attention_gqa", inputs: [("q", [1, 3, 4, 2], -1...1), ("k", [1, 3, 2, 2], -1...1), ("v", [1, 3, 2, 2], -1...1)]) { b, x, _ in
            b.causalAttention(q: x[0], k: x[1], v: x[2], kvHeads: 2, rep: 2, start: 0)
        }
    }
}

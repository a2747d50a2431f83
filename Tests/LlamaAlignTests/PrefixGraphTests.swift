import Foundation
import Testing
import GraphCompiler
import LlamaGraphs
import TensorGraph

/// `llama_train.lm_step_prefix` checked in Double through the reference interpreter: its prefix
/// gradient against central differences of its loss, its buffers (a gradient for `prefix_kv`
/// only), and the prefix's place (tokens at positions P…, attending to the prefix first).
@Suite struct PrefixGraphTests {
    /// A tiny GQA model: 2 layers, 2 query heads sharing 1 KV head of width 2; 2 prefix positions.
    static let sizes: [String: Int] = ["B": 2, "T": 3, "L": 2, "KVH": 1, "REP": 2, "HD2": 1, "F": 5, "V": 7, "NS": 4, "NC": 2, "CR": 2, "P": 2, "S": 5]

    /// Inputs and parameters of `program` with deterministic values (`LoRAGraphTests.values`'s rule).
    static func values(_ program: Program, sizes: [String: Int] = sizes) throws -> (inputs: [String: HostTensor], params: [String: HostTensor]) {
        var inputs: [String: HostTensor] = [:], params: [String: HostTensor] = [:]
        let fixed: [String: [Double]] = ["ids": [1, 5, 2, 3, 0, 6], "targets": [5, 2, 6, 4], "scored": [0, 1, 3, 5],
                                         "weights": [0.5, 0.25, 0.125, 0.125], "norm_eps": [1e-5], "rope_theta": [10000]]
        for (k, d) in (program.inputs + program.params).enumerated() {
            let shape = try d.shape.map { try $0.evaluate(sizes) }
            let n = shape.reduce(1, *)
            var data = FusedVsReference.values(n, seed: UInt64(k + 1) * 104_729)
            if let v = fixed[d.name] { data = v }
            if d.mutable { data = Array(repeating: 0, count: n) }
            if d.name.hasSuffix("norm") { data = data.map { 1 + 0.3 * $0 } }
            let t = HostTensor(shape: shape, data: data)
            if program.params.contains(where: { $0.name == d.name }) { params[d.name] = t } else { inputs[d.name] = t }
        }
        return (inputs, params)
    }

    @Test func onlyThePrefixHasAGradientBuffer() throws {
        let p = try LlamaTrainingPrograms.lmStepPrefix()
        #expect(Set(p.inputs.map(\.name).filter { $0.hasPrefix("grad_") }) == [LlamaTrainingPrograms.gradName(Prefix.parameter)])
        let prefix = try #require(p.params.first { $0.name == Prefix.parameter })
        #expect(prefix.shape == [LlamaDims.layers, 2, LlamaDims.start, LlamaDims.kvHeads, LlamaDims.headDim])
    }

    /// Entries of `prefix_kv` in both layers, keys and values, against central differences.
    @Test func prefixGradientMatchesFiniteDifferences() throws {
        let p = try LlamaTrainingPrograms.lmStepPrefix()
        let (inputs, params) = try Self.values(p)
        let base = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: params)
        let analytic = try #require(base.mutated[LlamaTrainingPrograms.gradName(Prefix.parameter)])
        let count = try #require(params[Prefix.parameter]).data.count   // 2·2·2·1·2 = 16
        let h = 1e-6
        for j in 0 ..< count {
            var plus = params, minus = params
            plus[Prefix.parameter]?.data[j] += h; minus[Prefix.parameter]?.data[j] -= h
            let lp = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: plus).outputs["loss"]?.data[0] ?? .nan
            let lm = try ReferenceInterpreter.run(p, sizes: Self.sizes, inputs: inputs, params: minus).outputs["loss"]?.data[0] ?? .nan
            let fd = (lp - lm) / (2 * h)
            #expect(abs(fd - analytic.data[j]) <= 1e-6 * max(1, abs(fd)), "d/dprefix_kv[\(j)]: analytic \(analytic.data[j]) vs FD \(fd)")
            #expect(abs(fd) > 1e-9, "d/dprefix_kv[\(j)] is zero: the prefix entry is not on the loss's path")
        }
    }

    /// `prefix_encode_backward`'s MLP gradients against central differences of Σ seed · `prefix_encode`.
    @Test func encoderGradientsMatchFiniteDifferences() throws {
        let fwd = try PrefixEncoderPrograms.forward(), bwd = try PrefixEncoderPrograms.backward()
        var sizes = Self.sizes
        sizes["E"] = 3
        var (inputs, params) = try Self.values(bwd, sizes: sizes)
        for name in PrefixEncoderPrograms.parameters { params[name] = params[name].map { HostTensor(shape: $0.shape, data: $0.data.map { 0.8 * $0 }) } }
        let seed = try #require(inputs[LlamaTrainingPrograms.gradName(Prefix.parameter)])
        inputs[LlamaTrainingPrograms.gradName(Prefix.parameter)] = HostTensor(shape: seed.shape, data: FusedVsReference.values(seed.data.count, seed: 99))
        let weights = try #require(inputs[LlamaTrainingPrograms.gradName(Prefix.parameter)]).data
        let grads = try ReferenceInterpreter.run(bwd, sizes: sizes, inputs: inputs, params: params).mutated
        func objective(_ p: [String: HostTensor]) throws -> Double {
            let kv = try #require(try ReferenceInterpreter.run(fwd, sizes: sizes, inputs: [:], params: p).outputs[Prefix.parameter])
            return zip(kv.data, weights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let h = 1e-6
        for name in PrefixEncoderPrograms.parameters {
            let analytic = try #require(grads[LlamaTrainingPrograms.gradName(name)])
            let count = try #require(params[name]).data.count
            for j in Set([0, count / 2, count - 1]) {
                var plus = params, minus = params
                plus[name]?.data[j] += h; minus[name]?.data[j] -= h
                let fd = (try objective(plus) - objective(minus)) / (2 * h)
                #expect(abs(fd - analytic.data[j]) <= 1e-6 * max(1, abs(fd)), "d/d\(name)[\(j)]: analytic \(analytic.data[j]) vs FD \(fd)")
                #expect(abs(fd) > 1e-9, "d/d\(name)[\(j)] is zero")
            }
        }
    }

    /// The prefix program's eval NLL equals the plain program's when the prefix is a KV cache's
    /// first P positions: `prefill` at start P over a cache holding the prefix.
    @Test func prefixIsTheCachesFirstPositions() throws {
        let p = try LlamaTrainingPrograms.evalLossPrefix(), prefill = try LlamaPrograms.build(.prefill)
        // Every position scored, in two chunks of three rows.
        var chunked = Self.sizes
        (chunked["NS"], chunked["NC"], chunked["CR"]) = (6, 2, 3)
        var (inputs, params) = try Self.values(p, sizes: chunked)
        inputs["targets"] = HostTensor(shape: [2, 3], data: [5, 2, 6, 4, 1, 3])
        inputs["scored"] = HostTensor(shape: [2, 3], data: [0, 1, 2, 3, 4, 5])
        let nll = try #require(try ReferenceInterpreter.run(p, sizes: chunked, inputs: inputs, params: params).mutated["nll"])
        // The cache [L, B, C, KVH, HD] with C = S: the prefix at 0..<P of every row.
        let prefix = try #require(params[Prefix.parameter])
        params[Prefix.parameter] = nil
        let (l, b, pp, hd, c) = (2, 2, 2, 2, 5)
        var k = HostTensor(shape: [l, b, c, 1, hd]), v = HostTensor(shape: [l, b, c, 1, hd])
        for layer in 0 ..< l { for row in 0 ..< b { for pos in 0 ..< pp { for d in 0 ..< hd {
            let dst = ((layer * b + row) * c + pos) * hd + d
            k.data[dst] = prefix.data[((layer * 2 + 0) * pp + pos) * hd + d]
            v.data[dst] = prefix.data[((layer * 2 + 1) * pp + pos) * hd + d]
        } } } }
        var sizes = Self.sizes
        sizes["C"] = c; sizes["NS"] = 6
        let out = try ReferenceInterpreter.run(prefill, sizes: sizes, inputs: ["ids": inputs["ids"]!, "k_cache": k, "v_cache": v,
                                                                               "scored": HostTensor(shape: [6], data: [0, 1, 2, 3, 4, 5]),
                                                                               "norm_eps": inputs["norm_eps"]!, "rope_theta": inputs["rope_theta"]!], params: params)
        let logits = try #require(out.outputs["logits"])
        for i in 0 ..< 6 {
            let row = Array(logits.data[(i * 7)..<((i + 1) * 7)])
            let m = row.max() ?? 0
            let want = m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[Int(inputs["targets"]!.data[i])]
            #expect(abs(nll.data[i] - want) <= 1e-12 * max(1, abs(want)), "position \(i): \(nll.data[i]) vs \(want)")
        }
    }
}

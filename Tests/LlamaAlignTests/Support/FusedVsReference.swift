import Foundation
import GraphCompiler
import KernelRuntime
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

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
    /// q8 weights over the whole int8 range, −128 included (which no quantizer here writes but a
    /// GGUF file may hold); otherwise −127…127.
    var fullInt8Range = false

    /// Deterministic values in [-1, 1).
    static func values(_ n: Int, seed: UInt64) -> [Double] {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Double(s % 2_000_000) / 1_000_000 - 1
        }
    }

    /// Quantized values as the programs store them: int8, or two a byte (`q + 8`, runs of 32
    /// values in 16 bytes, value j low and j + 16 high).
    static func stored(_ v: [Double], _ dtype: DType) -> AlignedBuffer {
        var bytes = [UInt8](repeating: 0, count: dtype == .q4 ? v.count / 2 : v.count)
        if dtype == .q8 {
            for (i, x) in v.enumerated() { bytes[i] = UInt8(bitPattern: Int8(x)) }
        } else {
            for run in stride(from: 0, to: v.count, by: 32) {
                for j in 0..<16 { bytes[run / 2 + j] = UInt8(Int(v[run + j]) + 8) | (UInt8(Int(v[run + j + 16]) + 8) << 4) }
            }
        }
        let b = AlignedBuffer(bytes: max(bytes.count, 1))
        bytes.withUnsafeBytes { b.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return b
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
            // Quantized weights: integers in their type's range (the interpreter reads the values,
            // the program the stored bytes).
            if d.dtype == .q8 { v = v.map { fullInt8Range ? min(127, ($0 * 128).rounded(.down)) : ($0 * 127).rounded(.towardZero) } }
            if d.dtype == .q4 { v = v.map { min(7, ($0 * 8).rounded(.down)) } }
            let t = HostTensor(shape: s, data: v)
            if program.inputs.contains(where: { $0.name == d.name }) { hostInputs[d.name] = t } else { hostParams[d.name] = t }
            switch d.dtype {
            case .i32: buffers[d.name] = AlignedBuffer(copying: v.map { Int32($0) })
            case .f32: buffers[d.name] = AlignedBuffer(copying: v.map { Float($0) })
            case .q8, .q4: buffers[d.name] = FusedVsReference.stored(v, d.dtype)
            }
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

import Foundation
import TensorGraph

/// The oracle: executes a program's IR unfused, op by op, in Double precision. Slow and
/// obviously correct; the fused C is tested against it.
public enum ReferenceInterpreter {
    /// Runs `program` with every symbol bound in `sizes`. Inputs and parameters have their full
    /// declared shapes (per-layer ones with the layer axis). Returns the named outputs and the
    /// final contents of every mutable input.
    public static func run(_ program: Program, sizes: [String: Int], inputs: [String: HostTensor],
                           params: [String: HostTensor]) throws -> (outputs: [String: HostTensor], mutated: [String: HostTensor]) {
        var state = State(program: program, sizes: sizes)
        for d in program.inputs + program.params {
            let given = program.inputs.contains { $0.name == d.name } ? inputs[d.name] : params[d.name]
            guard let t = given else { throw GraphError("program '\(program.name)': no value for '\(d.name)'") }
            let want = try d.shape.map { try $0.evaluate(sizes) }
            guard t.shape == want, t.data.count == want.reduce(1, *) else {
                throw GraphError("program '\(program.name)': '\(d.name)' has shape \(t.shape), expected \(want)")
            }
            state.stored[d.name] = t
        }
        for (s, stage) in program.stages.enumerated() {
            let ids = program.nodes.indices.filter { program.nodes[$0].stage == s }
            guard let count = stage.count else {
                for i in ids { try state.evaluate(i, layer: nil) }
                continue
            }
            let n = try count.evaluate(sizes)
            let carries = program.carries.enumerated().filter { $0.element.stage == s }
            for (k, c) in carries { state.carried[k] = try state.value(c.initial) }
            for l in 0..<n {
                let layer = stage.layer(iteration: l, of: n)
                for i in ids { try state.evaluate(i, layer: layer) }
                for (k, c) in carries { state.carried[k] = try state.value(c.next) }
            }
        }
        var outputs: [String: HostTensor] = [:]
        for (name, id) in program.outputs { outputs[name] = try state.value(id) }
        var mutated: [String: HostTensor] = [:]
        for d in program.inputs where d.mutable { mutated[d.name] = state.stored[d.name] }
        return (outputs, mutated)
    }

    /// Values computed so far, the stored inputs/parameters, and the carried values.
    struct State {
        let program: Program
        let sizes: [String: Int]
        var values: [Int: HostTensor] = [:]
        var stored: [String: HostTensor] = [:]
        var carried: [Int: HostTensor] = [:]
        /// The layer each per-layer leaf was read at (for write-backs).
        var layerOf: [Int: Int] = [:]

        func value(_ i: Int) throws -> HostTensor {
            guard let v = values[i] else { throw GraphError("program '\(program.name)': node \(i) used before it is computed") }
            return v
        }

        func shape(_ n: Node) throws -> [Int] { try n.shape.map { try $0.evaluate(sizes) } }

        /// Slice `layer` of a stacked tensor.
        func layerSlice(_ t: HostTensor, _ layer: Int) -> HostTensor {
            let inner = Array(t.shape.dropFirst())
            let n = inner.reduce(1, *)
            return HostTensor(shape: inner, data: Array(t.data[(layer * n)..<((layer + 1) * n)]))
        }

        mutating func evaluate(_ i: Int, layer: Int?) throws {
            let n = program.nodes[i]
            let outShape = try shape(n)
            let xs = try n.inputs.map { try value($0) }
            let result: HostTensor
            switch n.op {
            case .input(let name), .param(let name):
                guard let t = stored[name], let d = program.decl(name) else { throw GraphError("no value for '\(name)'") }
                if d.perLayer {
                    guard let layer else { throw GraphError("per-layer '\(name)' read outside a layer loop") }
                    result = layerSlice(t, layer)
                    layerOf[i] = layer
                } else {
                    result = t
                }
            case .constant(let v): result = HostTensor(shape: [], data: [v])
            case .size(let d): result = HostTensor(shape: [], data: [Double(try d.evaluate(sizes))])
            case .iota(let axis):
                var t = HostTensor(shape: outShape)
                for j in 0..<t.count { t.data[j] = Double(t.unravel(j)[axis]) }
                result = t
            case .carry(let k):
                guard let v = carried[k] else { throw GraphError("carry \(k) has no value") }
                result = v
            case .loopResult(let k):
                guard let v = carried[k] ?? values[program.carries[k].initial] else { throw GraphError("loop result \(k) has no value") }
                result = v
            case .unary(let u): result = HostTensor(shape: outShape, data: xs[0].data.map { ReferenceInterpreter.unary(u, $0) })
            case .binary(let b):
                result = HostTensor(shape: outShape, data: zip(xs[0].data, xs[1].data).map { ReferenceInterpreter.binary(b, $0, $1) })
            case .select:
                result = HostTensor(shape: outShape, data: (0..<xs[0].count).map { xs[0].data[$0] != 0 ? xs[1].data[$0] : xs[2].data[$0] })
            case .cast(let t): result = HostTensor(shape: outShape, data: t == .i32 ? xs[0].data.map { $0.rounded(.towardZero) } : xs[0].data)
            case .stopGradient: result = xs[0]
            case .random:
                let keys = xs[0].data
                result = HostTensor(shape: outShape, data: keys.indices.map { j in
                    Double(CounterRandom.uniform(key: UInt32(truncatingIfNeeded: Int64(keys[j])), index: j))
                })
            case .reuse: result = xs[1]
            case .reduce(let r): result = ReferenceInterpreter.reduce(r, xs[0])
            case .reshape: result = HostTensor(shape: outShape, data: xs[0].data)
            case .permute(let order):
                result = xs[0].gathered(outShape) { idx in
                    var src = Array(repeating: 0, count: idx.count)
                    for (k, o) in order.enumerated() { src[o] = idx[k] }
                    return src
                }
            case .expand:
                let src = xs[0].shape
                result = xs[0].gathered(outShape) { idx in idx.enumerated().map { k, c in src[k] == 1 ? 0 : c } }
            case .slice(let axis, let start):
                let s = try start.evaluate(sizes)
                result = xs[0].gathered(outShape) { idx in var v = idx; v[axis] += s; return v }
            case .concat(let axis): result = try ReferenceInterpreter.concat(xs, axis: axis, outShape)
            case .matmul(let ta, let tb):
                let b = xs.count > 2 ? ReferenceInterpreter.dequantized(xs[1], scales: xs[2], cols: xs[0].shape[1]) : xs[1]
                if program.matmulPrecision == .bf16 && xs.count == 2 {
                    // A bf16 program's product: both operands rounded (float32, then bf16 nearest even).
                    result = ReferenceInterpreter.matmul(ReferenceInterpreter.bf16Rounded(xs[0]), ReferenceInterpreter.bf16Rounded(b), ta, tb, outShape)
                } else {
                    // A quantized product of one row rounds the row to int8 per group (QuantGemvLowering).
                    let a = xs.count > 2 && xs[0].shape[0] == 1
                        ? ReferenceInterpreter.int8Rounded(xs[0], groupSize: max(xs[1].shape[1] / max(xs[2].shape[1], 1), 1)) : xs[0]
                    result = ReferenceInterpreter.matmul(a, b, ta, tb, outShape)
                }
            case .attention(let part, let start, let masked):
                result = ReferenceAttention.evaluate(part, start: try start.evaluate(sizes), masked: masked, xs)
            case .gather:
                let (table, ids) = (xs[0], xs[1])
                let d = table.shape[1]
                var out = HostTensor(shape: outShape)
                for (r, id) in ids.data.enumerated() {
                    guard id.isFinite, id == id.rounded(), id >= 0, id < Double(table.shape[0]) else {
                        throw GraphError("gather: id \(id) is not a row of the \(table.shape[0])-row table")
                    }
                    let row = Int(id)
                    for c in 0..<d { out.data[r * d + c] = table.data[row * d + c] }
                }
                result = out
            case .scatterAdd:
                let (src, ids) = (xs[0], xs[1])
                let d = outShape[1]
                var out = HostTensor(shape: outShape)
                for (r, id) in ids.data.enumerated() {
                    guard id.isFinite, id == id.rounded(), id >= 0, id < Double(outShape[0]) else {
                        throw GraphError("scatter_add: id \(id) is not a row of the \(outShape[0])-row result")
                    }
                    let row = Int(id)
                    for c in 0..<d { out.data[row * d + c] += src.data[r * d + c] }
                }
                result = out
            case .writeSlice(let axis, let start):
                let s = try start.evaluate(sizes)
                var target = xs[0]
                let value = xs[1]
                let st = target.strides
                for j in 0..<value.count {
                    var idx = value.unravel(j)
                    idx[axis] += s
                    var flat = 0
                    for (k, c) in idx.enumerated() { flat += c * st[k] }
                    target.data[flat] = value.data[j]
                }
                result = target
                try writeBack(n.inputs[0], target)
            }
            values[i] = result
        }

        /// Stores a written input back (into its layer slice for per-layer inputs).
        mutating func writeBack(_ leaf: Int, _ t: HostTensor) throws {
            guard case .input(let name) = program.nodes[leaf].op, let d = program.decl(name), var full = stored[name] else {
                throw GraphError("write_slice target is not a program input")
            }
            if d.perLayer, let layer = layerOf[leaf] {
                let n = t.count
                full.data.replaceSubrange((layer * n)..<((layer + 1) * n), with: t.data)
            } else {
                full = t
            }
            stored[name] = full
            values[leaf] = t
        }
    }

    static func unary(_ u: UnaryOp, _ x: Double) -> Double {
        switch u {
        case .neg: -x
        case .exp: Foundation.exp(x)
        case .log: Foundation.log(x)
        case .sqrt: x.squareRoot()
        case .rsqrt: 1 / x.squareRoot()
        case .recip: 1 / x
        case .sin: Foundation.sin(x)
        case .cos: Foundation.cos(x)
        case .tanh: Foundation.tanh(x)
        case .abs: Swift.abs(x)
        }
    }

    static func binary(_ b: BinaryOp, _ x: Double, _ y: Double) -> Double {
        switch b {
        case .add: x + y
        case .sub: x - y
        case .mul: x * y
        case .div: x / y
        case .max: Swift.max(x, y)
        case .min: Swift.min(x, y)
        case .pow: Foundation.pow(x, y)
        case .cmplt: x < y ? 1 : 0
        case .cmple: x <= y ? 1 : 0
        case .cmpeq: x == y ? 1 : 0
        }
    }

    static func reduce(_ r: ReduceOp, _ x: HostTensor) -> HostTensor {
        let n = x.shape.last ?? 1
        let rows = n == 0 ? 0 : x.count / n
        var out = HostTensor(shape: Array(x.shape.dropLast()) + [1])
        for row in 0..<rows {
            let part = x.data[(row * n)..<((row + 1) * n)]
            out.data[row] = r == .sum ? part.reduce(0, +) : (part.max() ?? -.infinity)
        }
        return out
    }

    static func concat(_ xs: [HostTensor], axis: Int, _ outShape: [Int]) throws -> HostTensor {
        var out = HostTensor(shape: outShape)
        let ost = out.strides
        var offset = 0
        for x in xs {
            for j in 0..<x.count {
                var idx = x.unravel(j)
                idx[axis] += offset
                var flat = 0
                for (k, c) in idx.enumerated() { flat += c * ost[k] }
                out.data[flat] = x.data[j]
            }
            offset += x.shape[axis]
        }
        return out
    }

    /// A quantized weight's values `[N, KP]` (the quantized integers, one per value, in the host
    /// tensor; rows padded to KP) times their group scales `[N, NG]`, cut to rows of `cols`:
    /// `w[n, k] = q[n, k] · scales[n, k / (KP / NG)]`.
    static func dequantized(_ q: HostTensor, scales: HostTensor, cols: Int) -> HostTensor {
        let (n, kp) = (q.shape[0], q.shape[1]), ng = scales.shape[1]
        let g = max(kp / max(ng, 1), 1)
        var w = HostTensor(shape: [n, cols])
        for r in 0..<n {
            for c in 0..<cols { w.data[r * cols + c] = q.data[r * kp + c] * scales.data[r * ng + c / g] }
        }
        return w
    }

    /// A row rounded to int8 per group of `groupSize` values as the one-row quantized products
    /// do it, in f32: `d = max|x|/127`, `x ↦ roundf(x · (1/d)) · d` (a row's last group may be short).
    static func int8Rounded(_ x: HostTensor, groupSize: Int) -> HostTensor {
        var out = x
        let k = x.shape[x.shape.count - 1]
        for row in stride(from: 0, to: x.data.count, by: max(k, 1)) {
            for start in stride(from: 0, to: k, by: groupSize) {
                let idx = (row + start)..<(row + min(k, start + groupSize))
                let amax = idx.map { abs(Float(x.data[$0])) }.max() ?? 0
                let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
                for i in idx { out.data[i] = Double((Float(x.data[i]) * id).rounded()) * Double(d) }
            }
        }
        return out
    }

    /// Each value as float32, then rounded to bfloat16 (nearest even, as `vcvtne2ps2bf16`; NaN stays NaN).
    static func bf16Rounded(_ t: HostTensor) -> HostTensor {
        var r = t
        for (i, x) in t.data.enumerated() {
            let f = Float(x)
            guard f.isFinite else { continue }
            let u = f.bitPattern
            r.data[i] = Double(Float(bitPattern: (u &+ 0x7fff &+ ((u >> 16) & 1)) & 0xffff_0000))
        }
        return r
    }

    static func matmul(_ a: HostTensor, _ b: HostTensor, _ ta: Bool, _ tb: Bool, _ outShape: [Int]) -> HostTensor {
        let r = outShape.count
        let (m, n) = (outShape[r - 2], outShape[r - 1])
        let k = ta ? a.shape[r - 2] : a.shape[r - 1]
        let batch = outShape.prefix(r - 2).reduce(1, *)
        let (ar, ac) = (a.shape[r - 2], a.shape[r - 1]), (br, bc) = (b.shape[r - 2], b.shape[r - 1])
        var out = HostTensor(shape: outShape)
        for z in 0..<batch {
            let ao = z * ar * ac, bo = z * br * bc, co = z * m * n
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k {
                        let av = ta ? a.data[ao + p * ac + i] : a.data[ao + i * ac + p]
                        let bv = tb ? b.data[bo + j * bc + p] : b.data[bo + p * bc + j]
                        s += av * bv
                    }
                    out.data[co + i * n + j] = s
                }
            }
        }
        return out
    }
}

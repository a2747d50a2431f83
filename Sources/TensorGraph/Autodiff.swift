/// Reverse-mode automatic differentiation on the IR. Gradients are built as ordinary nodes
/// of the same program, so the backward pass goes through the same simplify/fuse/plan passes.
extension GraphBuilder {
    /// Gradients of `output` (seeded with `seed`, or 1 for a scalar output) with respect to each
    /// tensor of `wrt`. A tensor the output does not depend on gets zeros.
    public func gradients(of output: Tensor, seed: Tensor? = nil, wrt: [Tensor],
                          file: StaticString = #fileID, line: UInt = #line) throws -> [Tensor] {
        let count = output.id + 1
        let wrtIds = Set(wrt.map(\.id))
        // Which nodes depend on a wrt tensor, and which the output depends on.
        var dependsOnWrt = Array(repeating: false, count: count)
        for i in 0..<count {
            dependsOnWrt[i] = wrtIds.contains(i) || nodes[i].inputs.contains { $0 < count && dependsOnWrt[$0] }
        }
        var needed = Array(repeating: false, count: count)
        var stack = [output.id]
        while let i = stack.popLast() {
            if needed[i] { continue }
            needed[i] = true
            stack += nodes[i].inputs
        }
        var grads: [Int: Tensor] = [:]
        if let seed {
            guard seed.shape == output.shape else {
                throw GraphError("\(file):\(line): gradients: seed \(seed.shape.shapeDescription) does not match output \(output.shape.shapeDescription)")
            }
            grads[output.id] = seed
        } else {
            guard output.shape.elementCount == 1 else {
                throw GraphError("\(file):\(line): gradients: output \(output.shape.shapeDescription) is not a scalar; pass a seed")
            }
            grads[output.id] = broadcast(constant(1), to: output.shape)
        }
        for i in stride(from: count - 1, through: 0, by: -1) where needed[i] && dependsOnWrt[i] {
            guard let g = grads[i] else { continue }
            // Gradient ops live under the scope of the op they differentiate, suffixed "grad".
            let path = nodes[i].scope.isEmpty ? "grad" : nodes[i].scope + "/grad"
            try withScopePath(path) { try backprop(i, g, dependsOnWrt, &grads, file, line) }
        }
        return wrt.map { w in grads[w.id] ?? broadcast(constant(0), to: w.shape) }
    }

    private func accumulate(_ grads: inout [Int: Tensor], _ id: Int, _ g: Tensor) {
        grads[id] = grads[id].map { $0 + g } ?? g
    }

    /// Applies the gradient rule of node `i` given the gradient `g` of its value.
    private func backprop(_ i: Int, _ g: Tensor, _ flows: [Bool], _ grads: inout [Int: Tensor],
                          _ file: StaticString, _ line: UInt) throws {
        let n = nodes[i]
        let y = tensor(i)
        let xs = n.inputs.map { tensor($0) }
        func give(_ k: Int, _ d: @autoclosure () throws -> Tensor) rethrows {
            let id = n.inputs[k]
            if flows[id] { accumulate(&grads, id, try d()) }
        }
        let zero = constant(0)
        switch n.op {
        case .input, .param, .constant, .size, .iota, .carry, .loopResult:
            return
        case .unary(let u):
            let x = xs[0]
            switch u {
            case .neg: give(0, -g)
            case .exp: give(0, g * y)
            case .log: give(0, g / x)
            case .sqrt: give(0, g / (y * 2.0))
            case .rsqrt: give(0, g * y * y * y * -0.5)
            case .recip: give(0, -(g * y * y))
            case .sin: give(0, g * x.cos())
            case .cos: give(0, -(g * x.sin()))
            case .tanh: give(0, g * (1.0 - y * y))
            case .abs: give(0, g * (zero.lt(x) * 2.0 - 1.0))
            }
        case .binary(let b):
            let (a, c) = (xs[0], xs[1])
            switch b {
            case .add: give(0, g); give(1, g)
            case .sub: give(0, g); give(1, -g)
            case .mul: give(0, g * c); give(1, g * a)
            case .div: give(0, g / c); give(1, -(g * y / c))
            case .max: let m = c.le(a); give(0, g * m); give(1, g * (1.0 - m))
            case .min: let m = a.le(c); give(0, g * m); give(1, g * (1.0 - m))
            case .pow: give(0, g * c * a.pow(c - 1.0)); give(1, g * y * a.log())
            case .cmplt, .cmple, .cmpeq: return
            }
        case .select:
            give(1, select(xs[0], g, zero)); give(2, select(xs[0], zero, g))
        case .cast, .stopGradient, .random:
            return
        case .reuse:
            give(0, g)
        case .reduce(let r):
            let x = xs[0]
            let gb = broadcast(g, to: x.shape)
            switch r {
            case .sum: give(0, gb)
            case .max: give(0, gb * x.eq(broadcast(y, to: x.shape)))
            }
        case .reshape:
            give(0, reshape(g, xs[0].shape))
        case .permute(let order):
            var inverse = order
            for (k, o) in order.enumerated() { inverse[o] = k }
            give(0, permute(g, inverse))
        case .expand:
            var d = g
            let inShape = xs[0].shape
            for (k, dim) in inShape.enumerated() where dim == 1 && n.shape[k] != 1 {
                d = reduce(.sum, d, axis: k, keepDims: true)
            }
            give(0, d)
        case .slice(let axis, let start):
            let full = xs[0].shape[axis], len = n.shape[axis]
            guard let s = start.constant, let f = full.constant, let l = len.constant else {
                throw GraphError("\(n.site): slice: the gradient needs constant bounds, got start \(start) of \(full) (differentiated at \(file):\(line))")
            }
            var parts: [Tensor] = []
            var shape = n.shape
            if s > 0 { shape[axis] = Dim(s); parts.append(broadcast(zero, to: shape)) }
            parts.append(g)
            if f - s - l > 0 { shape[axis] = Dim(f - s - l); parts.append(broadcast(zero, to: shape)) }
            give(0, parts.count == 1 ? g : concat(parts, axis: axis))
        case .concat(let axis):
            var offset = Dim(0)
            for (k, x) in xs.enumerated() {
                let len = x.shape[axis]
                give(k, slice(g, axis: axis, start: offset, length: len))
                offset = offset == 0 ? len : Dim(offset.coeff + len.coeff, offset.syms)
            }
        case .matmul(let ta, let tb):
            if xs.count > 2 {
                throw GraphError("\(n.site): a quantized matmul has no gradient (differentiated at \(file):\(line))")
            }
            let (a, b) = (xs[0], xs[1])
            switch (ta, tb) {
            case (false, false): give(0, matmul(g, b, transB: true)); give(1, matmul(a, g, transA: true))
            case (false, true): give(0, matmul(g, b)); give(1, matmul(g, a, transA: true))
            case (true, false): give(0, matmul(b, g, transB: true)); give(1, matmul(a, g))
            case (true, true): give(0, matmul(b, g, transA: true, transB: true)); give(1, matmul(g, a, transA: true, transB: true))
            }
        case .attention(let part, _, _):
            // `lse` is the output's normalizer: the output's rule differentiates through it,
            // so the statistic itself passes nothing on (nor does the mask).
            switch part {
            case .lse: return
            case .out:
                let (dq, dk, dv) = attentionGradients(of: n, g, file: file, line: line)
                give(0, dq); give(1, dk); give(2, dv)
            case .gradQ, .gradK, .gradV:
                throw GraphError("\(n.site): attention's gradients have no gradient (differentiated at \(file):\(line))")
            }
        case .gather:
            give(0, scatterAdd(g, xs[1], rows: xs[0].shape[0]))
        case .scatterAdd:
            give(0, gather(g, xs[1]))
        case .writeSlice:
            throw GraphError("\(n.site): write_slice has no gradient (differentiated at \(file):\(line))")
        }
    }
}

import TensorGraph

/// A view of a buffer as `offset + Σ index_k · stride_k`, with offsets and strides as sums
/// of monomial dims. Matmul operands must be expressible this way to go to BLAS unchanged.
struct StridedView: Equatable {
    /// The node whose buffer is read.
    var base: Int
    var shape: Shape
    var strides: [Dim]
    /// Sum of monomials.
    var offset: [Dim]

    static func contiguous(base: Int, shape: Shape) -> StridedView {
        var strides = Array(repeating: Dim(1), count: shape.count)
        var s = Dim(1)
        for k in stride(from: shape.count - 1, through: 0, by: -1) { strides[k] = s; s = s * shape[k] }
        return StridedView(base: base, shape: shape, strides: strides, offset: [])
    }

    /// The view a movement op makes of this one, or nil when it is not strided.
    func applying(_ op: Op, to outShape: Shape) -> StridedView? {
        switch op {
        case .permute(let order):
            return StridedView(base: base, shape: outShape, strides: order.map { strides[$0] }, offset: offset)
        case .expand:
            let st = zip(shape, outShape).enumerated().map { k, p in p.0 == p.1 ? strides[k] : Dim(0) }
            return StridedView(base: base, shape: outShape, strides: st, offset: offset)
        case .slice(let axis, let start):
            return StridedView(base: base, shape: outShape, strides: strides, offset: offset + [start * strides[axis]])
        case .reshape:
            return reshaped(outShape)
        default:
            return nil
        }
    }

    /// Reshape without copying: groups of input dims and output dims with equal products,
    /// each input group contiguous in itself.
    func reshaped(_ out: Shape) -> StridedView? {
        let inDims = zip(shape, strides).filter { $0.0 != 1 }
        var outStrides = Array(repeating: Dim(0), count: out.count)
        var i = 0, o = 0
        while o < out.count || i < inDims.count {
            if o < out.count && out[o] == 1 { outStrides[o] = 0; o += 1; continue }
            guard i < inDims.count, o < out.count else { return nil }
            // Grow both groups until their products match.
            var pi = inDims[i].0, po = out[o]
            var ie = i + 1, oe = o + 1
            while pi != po {
                if let q = pi.divided(by: po), q != 1, oe < out.count {
                    po = po * out[oe]; oe += 1
                } else if ie < inDims.count {
                    pi = pi * inDims[ie].0; ie += 1
                } else if oe < out.count {
                    po = po * out[oe]; oe += 1
                } else {
                    return nil
                }
            }
            // The input group must be contiguous within itself.
            for k in i..<(ie - 1) where inDims[k].1 != inDims[k + 1].1 * inDims[k + 1].0 { return nil }
            var s = inDims[ie - 1].1
            for k in stride(from: oe - 1, through: o, by: -1) { outStrides[k] = out[k] == 1 ? 0 : s; s = s * out[k] }
            i = ie; o = oe
        }
        return StridedView(base: base, shape: out, strides: outStrides, offset: offset)
    }
}

extension Array where Element == Dim {
    /// C expression for a sum of monomials.
    var sumExpr: String {
        let terms = filter { $0.coeff != 0 }.map(\.cExpr)
        return terms.isEmpty ? "0" : terms.joined(separator: " + ")
    }
}

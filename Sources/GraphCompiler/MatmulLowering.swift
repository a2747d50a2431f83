import TensorGraph

/// Lowers a batched matmul to `cblas_sgemm` calls, one per batch element, reading the
/// operands through their strided views (no copies for transposes, slices or broadcasts).
enum MatmulLowering {
    /// One operand as BLAS sees it.
    struct Operand {
        var pointer: String
        var trans: Bool
        var ld: String
        var batchStrides: [Dim]
    }

    static func operand(_ plan: FusionPlan, _ input: Int, trans: Bool, buffer: (Int) -> String) throws -> Operand {
        guard let v = plan.stridedView(input) else { throw NeedsRealization(node: input) }
        let r = v.shape.count
        let (rows, cols) = (v.shape[r - 2], v.shape[r - 1])
        let (sr, sc) = (v.strides[r - 2], v.strides[r - 1])
        let base = v.offset.isEmpty ? buffer(v.base) : "\(buffer(v.base)) + \(paren(v.offset.sumExpr))"
        let batch = Array(v.strides.prefix(r - 2))
        if sc == 1 || cols == 1 {
            let ld = (rows == 1 || sr == 0) ? cols.cExpr : sr.cExpr
            if sc == 1 || sr == 0 || rows == 1 || sr == cols {
                return Operand(pointer: base, trans: trans, ld: ld, batchStrides: batch)
            }
        }
        if sr == 1 || rows == 1 {
            let ld = (cols == 1 || sc == 0) ? rows.cExpr : sc.cExpr
            return Operand(pointer: base, trans: !trans, ld: ld, batchStrides: batch)
        }
        throw NeedsRealization(node: input)
    }

    static func body(_ plan: FusionPlan, _ k: Kernel, buffer: (Int) -> String) throws -> [String] {
        // A write-slice root accumulates its matmul into the target: C = A·B + C (β = 1).
        let n = plan.node(plan.matmulNode(of: k.root))
        guard case .matmul(let ta, let tb) = n.op else { return [] }
        let a = try operand(plan, n.inputs[0], trans: ta, buffer: buffer)
        let b = try operand(plan, n.inputs[1], trans: tb, buffer: buffer)
        let r = n.shape.count
        let m = n.shape[r - 2], nn = n.shape[r - 1]
        let aShape = plan.node(n.inputs[0]).shape
        let kk = ta ? aShape[r - 2] : aShape[r - 1]
        let batchDims = Array(n.shape.prefix(r - 2))
        // Where C lands: contiguous in the matmul's shape, or the layout of the view of it
        // that is realized (a batch axis of stride 0 is summed: β = 1 after its first index).
        let c: StridedView = plan.outputViews[k.root]?.view ?? .contiguous(base: k.root, shape: n.shape)
        let cBase = c.offset.isEmpty ? buffer(k.root) : "\(buffer(k.root)) + \(paren(c.offset.sumExpr))"
        let ldc = m == 1 ? nn.cExpr : c.strides[r - 2].cExpr
        let summed = batchDims.indices.filter { c.strides[$0] == Dim(0) && batchDims[$0] != 1 }
        var beta = plan.accumulatingMatmul[k.root] == nil ? "0.0f" : "1.0f"
        if !summed.isEmpty { beta = "(\(summed.map { "b\($0) > 0" }.joined(separator: " || "))) ? 1.0f : 0.0f" }
        var lines: [String] = []
        var offA: [String] = [], offB: [String] = [], offC: [String] = []
        for (d, dim) in batchDims.enumerated() {
            lines.append(String(repeating: "    ", count: d) + "for (long b\(d) = 0; b\(d) < \(dim.cExpr); b\(d)++)")
            if a.batchStrides[d] != 0 { offA.append("b\(d) * \(paren(a.batchStrides[d].cExpr))") }
            if b.batchStrides[d] != 0 { offB.append("b\(d) * \(paren(b.batchStrides[d].cExpr))") }
            if c.strides[d] != 0 { offC.append("b\(d) * \(paren(c.strides[d].cExpr))") }
        }
        func ptr(_ base: String, _ offs: [String]) -> String { offs.isEmpty ? base : "\(base) + \(offs.joined(separator: " + "))" }
        let pa = ptr(a.pointer, offA), pb = ptr(b.pointer, offB), pc = ptr(cBase, offC)
        let gemm = "cblas_sgemm(CblasRowMajor, \(a.trans ? "CblasTrans" : "CblasNoTrans"), \(b.trans ? "CblasTrans" : "CblasNoTrans"), "
            + "\(m.cExpr), \(nn.cExpr), \(kk.cExpr), 1.0f, \(pa), \(a.ld), \(pb), \(b.ld), \(beta), \(pc), \(ldc));"
        // One row (batch-1 decode): a matrix-vector product streams the weights once.
        // c[1,N] = a[1,K]·op(B): with B stored [N,K] that is B·a, with B stored [K,N] it is Bᵀ·a.
        let incA = a.trans ? a.ld : "1"
        let gemv = "cblas_sgemv(CblasRowMajor, \(b.trans ? "CblasNoTrans" : "CblasTrans"), "
            + "\(b.trans ? nn.cExpr : kk.cExpr), \(b.trans ? kk.cExpr : nn.cExpr), 1.0f, \(pb), \(b.ld), \(pa), \(incA), \(beta), \(pc), 1);"
        let pad = String(repeating: "    ", count: batchDims.count)
        if m == 1 {
            lines.append(pad + gemv)
        } else if m.isConstant {
            lines.append(pad + gemm)
        } else {
            lines.append(pad + "if (\(m.cExpr) == 1) \(gemv)")
            lines.append(pad + "else \(gemm)")
        }
        return lines
    }
}

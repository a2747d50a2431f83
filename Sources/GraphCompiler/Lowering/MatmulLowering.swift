import TensorGraph

/// Lowers a batched matmul to calls of the runtime's product helpers (`la_gemm`, `la_gemm_serial`
/// in la_runtime.c, over OpenBLAS), one per batch element, reading the operands through their
/// strided views (no copies for transposes, slices or broadcasts). OpenBLAS runs
/// single-threaded: the program's OpenMP threads take batch elements, or (inside `la_gemm`)
/// blocks of C's rows or columns, so one thread pool serves both the fused loops and the
/// products (OpenBLAS's own pool would spin after each call beside the next kernel's threads).
enum MatmulLowering {
    /// Products with fewer multiply-adds run on the calling thread.
    static let parallelThreshold = 1 << 17

    /// One product's operands as the runtime's `la_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)` takes them.
    struct Call {
        var a: Operand, b: Operand
        var k: String, beta: String, ldc: String
        var pa: String, pb: String, pc: String

        /// `function(…)` on C[m, n]: `la_gemm` splits it over the threads, `la_gemm_serial` does not;
        /// in a bf16 program the same call goes to `la_bf16_gemm(_serial)` (`BF16GemmLowering`).
        func text(_ function: String, m: String, n: String, precision: MatmulPrecision = .f32) -> String {
            if precision == .bf16 {
                return BF16GemmLowering.call(function.replacingOccurrences(of: "la_gemm", with: "la_bf16_gemm"), ta: a.trans, tb: b.trans,
                                             m: m, n: n, k: k, a: pa, lda: a.ld, b: pb, ldb: b.ld, beta: beta, c: pc, ldc: ldc)
            }
            return "\(function)(\(a.trans ? "CblasTrans" : "CblasNoTrans"), \(b.trans ? "CblasTrans" : "CblasNoTrans"), "
                + "\(m), \(n), \(k), \(pa), \(a.ld), \(pb), \(b.ld), \(beta), \(pc), \(ldc));"
        }
    }

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
        let base = v.offset.isEmpty || v.offset.sumExpr == "0" ? buffer(v.base) : "\(buffer(v.base)) + \(paren(v.offset.sumExpr))"
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

    /// The product in infix for the kernel's comment: `t4[B*T, D] = t3 · wqᵀ` (`+=` when it accumulates).
    static func formula(_ plan: FusionPlan, _ k: Kernel, buffer: (Int) -> String) -> String {
        let n = plan.node(plan.matmulNode(of: k.root))
        guard case .matmul(let ta, let tb) = n.op else { return "matmul" }
        func operand(_ i: Int, _ t: Bool) -> String { buffer(plan.stridedView(i)?.base ?? i) + (t ? "ᵀ" : "") }
        let op = plan.accumulatingMatmul[k.root] != nil ? "+=" : "="
        return "\(buffer(k.root))\(n.shape.shapeDescription) \(op) \(operand(n.inputs[0], ta)) · \(operand(n.inputs[1], tb))"
    }

    /// A quantized weight's product (`QuantMatmulLowering`); C is written like any product's.
    static func quantized(_ plan: FusionPlan, _ k: Kernel, _ mm: Node, a: Operand, m: Dim, n: Dim, k kk: Dim,
                          buffer: (Int) -> String) throws -> [String] {
        guard let q = plan.stridedView(mm.inputs[1]), let s = plan.stridedView(mm.inputs[2]), !a.trans,
              q.offset.isEmpty || q.offset.sumExpr == "0", s.offset.isEmpty || s.offset.sumExpr == "0" else {
            throw NeedsRealization(node: mm.inputs[0])
        }
        let c: StridedView = plan.outputViews[k.root]?.view ?? .contiguous(base: k.root, shape: mm.shape)
        let cBase = c.offset.isEmpty || c.offset.sumExpr == "0" ? buffer(k.root) : "\(buffer(k.root)) + \(paren(c.offset.sumExpr))"
        let ldc = m == 1 ? n.cExpr : c.strides[0].cExpr
        let lowering = QuantMatmulLowering(dtype: plan.node(mm.inputs[1]).dtype, x: a.pointer, lda: a.ld, q: buffer(q.base),
                                           scales: buffer(s.base), y: cBase, ldy: ldc, m: m.cExpr, n: n.cExpr, k: kk.cExpr,
                                           kp: plan.node(mm.inputs[1]).shape[1].cExpr,
                                           groups: plan.node(mm.inputs[2]).shape[1].cExpr,
                                           accumulate: plan.accumulatingMatmul[k.root] != nil)
        return lowering.lines
    }

    /// The name of a weight (a parameter that is not per-layer) read whole as operand `input` by
    /// a product of a repeated stage: the same matrix every iteration (the vocabulary head in
    /// `lm_chunk`), so a bf16 program packs it once per call. nil otherwise.
    static func repeatedWeight(_ plan: FusionPlan, _ k: Kernel, _ input: Int) -> String? {
        guard plan.program.stages[k.stage].count != nil, let v = plan.stridedView(input),
              v.offset.isEmpty || v.offset.sumExpr == "0",
              case .param(let name) = plan.node(v.base).op, plan.program.decl(name)?.perLayer == false else { return nil }
        return name
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
        let precision = plan.program.matmulPrecision
        if n.inputs.count == 3 {
            return try quantized(plan, k, n, a: a, m: m, n: nn, k: kk, buffer: buffer)
        }
        // Where C lands: contiguous in the matmul's shape, or the layout of the view of it
        // that is realized (a batch axis of stride 0 is summed: β = 1 after its first index).
        let c: StridedView = plan.outputViews[k.root]?.view ?? .contiguous(base: k.root, shape: n.shape)
        let cBase = c.offset.isEmpty || c.offset.sumExpr == "0" ? buffer(k.root) : "\(buffer(k.root)) + \(paren(c.offset.sumExpr))"
        let ldc = m == 1 ? nn.cExpr : c.strides[r - 2].cExpr
        let summed = batchDims.indices.filter { c.strides[$0] == Dim(0) && batchDims[$0] != 1 }
        var beta = plan.accumulatingMatmul[k.root] == nil ? "0.0f" : "1.0f"
        if !summed.isEmpty { beta = "(\(summed.map { "b\($0) > 0" }.joined(separator: " || "))) ? 1.0f : 0.0f" }
        func ptr(_ base: String, _ offs: [String]) -> String { offs.isEmpty ? base : "\(base) + \(offs.joined(separator: " + "))" }
        var lines: [String] = []
        if !batchDims.isEmpty {
            // One product per batch element; the OpenMP threads take batch elements (BLAS runs
            // single-threaded: one thread pool for the whole program). Axes summed into one C
            // stay serial.
            var offA: [String] = [], offB: [String] = [], offC: [String] = []
            let split = batchDims.indices.prefix { !summed.contains($0) }.count
            if split > 0 {
                let work = "\(paren(m.cExpr)) * \(paren(nn.cExpr)) * \(paren(kk.cExpr)) >= \(parallelThreshold)"
                let count = batchDims.prefix(split).map { paren($0.cExpr) }.joined(separator: " * ")
                lines.append("const int parallel = \(count) > 1 && \(work);")
                lines.append("if (parallel) la_blas_pool(0);")
                lines.append("#pragma omp parallel for collapse(\(split)) if (parallel)")
            }
            for (d, dim) in batchDims.enumerated() {
                lines.append(String(repeating: "    ", count: d) + "for (long b\(d) = 0; b\(d) < \(dim.cExpr); b\(d)++)")
                if a.batchStrides[d] != 0 { offA.append("b\(d) * \(paren(a.batchStrides[d].cExpr))") }
                if b.batchStrides[d] != 0 { offB.append("b\(d) * \(paren(b.batchStrides[d].cExpr))") }
                if c.strides[d] != 0 { offC.append("b\(d) * \(paren(c.strides[d].cExpr))") }
            }
            let call = Call(a: a, b: b, k: kk.cExpr, beta: beta, ldc: ldc, pa: ptr(a.pointer, offA), pb: ptr(b.pointer, offB), pc: ptr(cBase, offC))
            lines.append(String(repeating: "    ", count: batchDims.count) + call.text("la_gemm_serial", m: m.cExpr, n: nn.cExpr, precision: precision))
            return lines
        }
        // One product: the runtime splits C along its longer side over the threads.
        let call = Call(a: a, b: b, k: kk.cExpr, beta: beta, ldc: ldc, pa: a.pointer, pb: b.pointer, pc: cBase)
        if precision == .bf16, repeatedWeight(plan, k, n.inputs[1]) != nil {
            return ["/* the weight, packed once per program call */",
                    BF16GemmLowering.weightCall(ta: a.trans, tb: b.trans, m: m.cExpr, n: nn.cExpr, k: kk.cExpr,
                                                a: a.pointer, lda: a.ld, b: b.pointer, ldb: b.ld, beta: beta, c: cBase, ldc: ldc)]
        }
        let gemm = call.text("la_gemm", m: m.cExpr, n: nn.cExpr, precision: precision)
        // `x · Wᵀ` with W stored [N, K] (a weight): one row of x (decode) is a matrix-vector
        // product emitted here, the rest goes to the BLAS (training's bf16 products never have one row).
        guard b.trans, !a.trans, precision == .f32 else { return [gemm] }
        let gemv = GemvLowering(x: a.pointer, w: b.pointer, ldw: b.ld, y: cBase, n: nn.cExpr, k: kk.cExpr, accumulate: beta == "1.0f")
        if m == Dim(1) { return gemv.lines }
        return ["if (\(paren(m.cExpr)) != 1) {", "    " + gemm, "    return;", "}"] + gemv.lines
    }
}

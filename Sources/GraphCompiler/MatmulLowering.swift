import TensorGraph

/// Lowers a batched matmul to `la_sgemm` (OpenBLAS's `cblas_sgemm`) calls, one per batch element, reading the
/// operands through their strided views (no copies for transposes, slices or broadcasts).
/// OpenBLAS runs single-threaded: the program's OpenMP threads take batch elements, or blocks
/// of C's rows or columns, so one thread pool serves both the fused loops and the products
/// (OpenBLAS's own pool would spin after each call beside the next kernel's threads).
enum MatmulLowering {
    /// Products with fewer multiply-adds run on the calling thread.
    static let parallelThreshold = 1 << 17

    /// One BLAS call's operands, and the calls on a block of C's rows or columns.
    struct Call {
        var a: Operand, b: Operand
        var k: String, beta: String, ldc: String
        var pa: String, pb: String, pc: String

        func gemm(m: String, n: String) -> String {
            "la_sgemm(CblasRowMajor, \(a.trans ? "CblasTrans" : "CblasNoTrans"), \(b.trans ? "CblasTrans" : "CblasNoTrans"), "
                + "\(m), \(n), \(k), 1.0f, \(pa), \(a.ld), \(pb), \(b.ld), \(beta), \(pc), \(ldc));"
        }

        /// One row (batch-1 decode): a matrix-vector product streams the weights once.
        /// c[1,N] = a[1,K]·op(B): with B stored [N,K] that is B·a, with B stored [K,N] it is Bᵀ·a.
        func gemv(n: String) -> String {
            let incA = a.trans ? a.ld : "1"
            return "la_sgemv(CblasRowMajor, \(b.trans ? "CblasNoTrans" : "CblasTrans"), "
                + "\(b.trans ? n : k), \(b.trans ? k : n), 1.0f, \(pb), \(b.ld), \(pa), \(incA), \(beta), \(pc), 1);"
        }

        /// The call on C's rows `lo..<hi` (A's rows, or columns when A is read transposed).
        func rows() -> Call {
            var c = self
            c.pa = "\(pa) + lo" + (a.trans ? "" : " * \(paren(a.ld))")
            c.pc = "\(pc) + lo * \(paren(ldc))"
            return c
        }

        /// The call on C's columns `lo..<hi` (B's rows when stored [N,K], else its columns).
        func columns() -> Call {
            var c = self
            c.pb = "\(pb) + lo" + (b.trans ? " * \(paren(b.ld))" : "")
            c.pc = "\(pc) + lo"
            return c
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
        func ptr(_ base: String, _ offs: [String]) -> String { offs.isEmpty ? base : "\(base) + \(offs.joined(separator: " + "))" }
        // Work per thread below this many multiply-adds is not worth waking a thread for.
        let work = "\(paren(m.cExpr)) * \(paren(nn.cExpr)) * \(paren(kk.cExpr)) >= \(parallelThreshold)"
        var lines: [String] = []
        if !batchDims.isEmpty {
            // One product per batch element; the OpenMP threads take batch elements (BLAS runs
            // single-threaded: one thread pool for the whole program). Axes summed into one C
            // stay serial.
            var offA: [String] = [], offB: [String] = [], offC: [String] = []
            let split = batchDims.indices.prefix { !summed.contains($0) }.count
            if split > 0 {
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
            let pad = String(repeating: "    ", count: batchDims.count)
            if m == 1 {
                lines.append(pad + call.gemv(n: nn.cExpr))
            } else if m.isConstant {
                lines.append(pad + call.gemm(m: m.cExpr, n: nn.cExpr))
            } else {
                lines.append(pad + "if (\(m.cExpr) == 1) \(call.gemv(n: nn.cExpr))")
                lines.append(pad + "else \(call.gemm(m: m.cExpr, n: nn.cExpr))")
            }
            return lines
        }
        // One product: the threads split C along its longer side.
        let call = Call(a: a, b: b, k: kk.cExpr, beta: beta, ldc: ldc, pa: a.pointer, pb: b.pointer, pc: cBase)
        let M = paren(m.cExpr), N = paren(nn.cExpr)
        lines.append("const int parallel = \(work);")
        lines.append("if (parallel) la_blas_pool(0);")
        lines.append("#pragma omp parallel if (parallel)")
        lines.append("{")
        lines.append("    const long parts = omp_get_num_threads(), p = omp_get_thread_num();")
        func range(_ side: String) -> String { "const long lo = \(side) * p / parts, hi = \(side) * (p + 1) / parts;" }
        // One row (decode): a matrix-vector product is bound by streaming the weights, which
        // OpenBLAS's own threads do best; its pool is lent until the next split product.
        // (kept lent for the next one: decode runs one after another)
        let lend = "{ la_blas_pool(1); \(call.gemv(n: nn.cExpr)) }"
        if m == 1 { return [lend] }
        let gemmRows = ["    " + range(M), "    if (hi > lo) \(call.rows().gemm(m: "hi - lo", n: nn.cExpr))"]
        let gemmColumns = ["    " + range(N), "    if (hi > lo) \(call.columns().gemm(m: m.cExpr, n: "hi - lo"))"]
        lines += ["    if (\(M) >= \(N)) {"] + gemmRows.map { "    " + $0 } + ["    } else {"] + gemmColumns.map { "    " + $0 } + ["    }"]
        lines.append("}")
        if !m.isConstant {
            lines = ["if (\(M) == 1) \(lend)", "else {"] + lines.map { "    " + $0 } + ["}"]
        }
        return lines
    }
}

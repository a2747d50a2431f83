import TensorGraph

/// Lowers the fused causal-attention kernels (`Op.attention`, grouped by
/// `FusionPlan.fuseAttentionParts`) to C loops over batch × heads:
///
/// - forward: per query row, its visible scores `q·k_s/√HD` (`s ≤ start + t`, and the mask)
///   into one row `p[S]` that stays in cache, their softmax, the product with `v`, and the
///   row's log-sum-exp; the upper (masked) half is never visited, no `T×S` tensor is stored;
/// - backward `dq`: per query row, the probabilities recomputed from `q`, `k` and `lse`,
///   `ds = p·(dO·v_s − D_t)/√HD` with `D_t = dO·out`, and `dq = Σ_s ds·k_s`;
/// - backward `dk`, `dv`: per key/value head and key `s`, the same `p` and `ds` over the rows
///   that see it, summed over the `REP` query heads sharing the head: each thread owns whole
///   key rows, so there are no races and the order of the sums is fixed (bit-reproducible).
///
/// The operands are read through their strided views (unit stride along `HD`); the head-dim
/// loops are contiguous and `omp simd`.
struct AttentionLowering {
    let plan: FusionPlan
    let kernel: Kernel
    let buffer: (Int) -> String

    /// The attention nodes the kernel computes.
    var parts: [Int] { kernel.covered.filter { plan.node($0).op.isAttention } }

    func part(_ p: AttentionPart) -> Int? {
        parts.first { if case .attention(p, _, _) = plan.node($0).op { return true } else { return false } }
    }

    /// Where a part's value is stored.
    func store(_ i: Int) -> String { buffer(plan.attentionStore[i] ?? i) }

    /// Which kernel this is, for its name.
    var title: String {
        if part(.out) != nil || part(.lse) != nil { return "causal_attention_forward" }
        if part(.gradQ) != nil { return "causal_attention_backward_dq" }
        return "causal_attention_backward_dkv"
    }

    /// A C pointer and the strides of the non-contiguous axes of operand `i` (`names`, one per
    /// axis but the last, which must have unit stride). Locals are lowercase: the program's sizes
    /// (`B`, `T`, `V`, …) are uppercase symbols.
    func operand(_ i: Int, _ pointer: String, _ names: [String]) throws -> [String] {
        guard let v = plan.stridedView(i), let last = v.strides.last, last == Dim(1) || v.shape.last == Dim(1) else {
            throw NeedsRealization(node: i)
        }
        let base = v.offset.isEmpty || v.offset.sumExpr == "0" ? buffer(v.base) : "\(buffer(v.base)) + \(paren(v.offset.sumExpr))"
        return ["const float *\(pointer) = \(base);"] + zip(names, v.strides).map { "const long \($0) = \($1.cExpr);" }
    }

    func lines() throws -> [String] {
        guard let first = parts.first, case .attention(_, let start, let masked) = plan.node(first).op else { return [] }
        let n = plan.node(first)
        let (q, k) = (plan.node(n.inputs[0]), plan.node(n.inputs[1]))
        var c = [
            "const long nb = \(q.shape[0].cExpr), nt = \(q.shape[1].cExpr), nh = \(q.shape[2].cExpr), hd = \(q.shape[3].cExpr);",
            "const long ns = \(k.shape[1].cExpr), nkv = \(k.shape[2].cExpr), start = \(start.cExpr), rep = nh / nkv;",
            "const float scale = 1.0f / sqrtf((float)hd);",
        ]
        c += try operand(n.inputs[0], "qp", ["qsb", "qst", "qsh"])
        c += try operand(n.inputs[1], "kp", ["ksb", "kss", "ksh"])
        c += try operand(n.inputs[2], "vp", ["vsb", "vss", "vsh"])
        if masked { c += try operand(n.inputs[3], "mp", ["msb", "mst"]) }
        let mask = masked ? "mp[b * msb + t * mst + s] == 0.0f" : nil
        if part(.out) != nil || part(.lse) != nil { return c + forward(mask) }
        let extra = n.inputs.count - 3   // out, lse, dOut
        c += try operand(n.inputs[extra], "op", ["osb", "ost", "osh"])
        c += try operand(n.inputs[extra + 1], "lp", ["lsb", "lsh"])
        c += try operand(n.inputs[extra + 2], "gp", ["gsb", "gst", "gsh"])
        if let dq = part(.gradQ) { return c + backwardQuery(store(dq), mask) }
        return c + backwardKeyValue(dk: part(.gradK).map(store), dv: part(.gradV).map(store), mask)
    }

    /// Row `t`'s visible keys end at `last`.
    static let lastKey = "const long last = start + t < ns ? start + t : ns - 1;"

    /// `name = Σ_d a[d]·b[d]` over the head dim.
    static func dot(_ name: String, _ a: String, _ b: String) -> [String] {
        ["float \(name) = 0.0f;", "#pragma omp simd reduction(+:\(name))", "for (long d = 0; d < hd; d++) \(name) += \(a)[d] * \(b)[d];"]
    }

    private func forward(_ mask: String?) -> [String] {
        let out = part(.out).map(store), lse = part(.lse).map(store)
        var row = ["const float *qt = qp + b * qsb + t * qst + h * qsh;", AttentionLowering.lastKey,
                   "/* scores of the visible keys, and their max */", "float m = -INFINITY;", "for (long s = 0; s <= last; s++) {",
                   "    const float *ks = kp + b * ksb + s * kss + g * ksh;"]
        row += AttentionLowering.dot("dot", "qt", "ks").map { "    " + $0 }
        row += ["    float x = dot * scale;"]
        if let mask { row += ["    if (\(mask)) x = -INFINITY;"] }
        row += ["    p[s] = x;", "    m = x > m ? x : m;", "}",
                "/* softmax numerators and their sum */", "float sum = 0.0f;", "if (m > -INFINITY) {",
                "    #pragma omp simd reduction(+:sum)",
                "    for (long s = 0; s <= last; s++) { const float e = expf(p[s] - m); p[s] = e; sum += e; }", "}"]
        if let lse { row += ["\(lse)[(b * nh + h) * nt + t] = sum > 0.0f ? m + logf(sum) : -INFINITY;"] }
        if let out {
            row += ["/* out = Σ_s p_s/sum · v_s */", "float *ot = \(out) + ((b * nt + t) * nh + h) * hd;",
                    "for (long d = 0; d < hd; d++) ot[d] = 0.0f;", "if (sum > 0.0f) {", "    const float inv = 1.0f / sum;",
                    "    for (long s = 0; s <= last; s++) {", "        if (p[s] == 0.0f) continue;",
                    "        const float w = p[s] * inv;", "        const float *vs = vp + b * vsb + s * vss + g * vsh;",
                    "        #pragma omp simd", "        for (long d = 0; d < hd; d++) ot[d] += w * vs[d];", "    }", "}"]
        }
        return AttentionLowering.headLoop(["float p[ns];   /* one row of scores */", "for (long t = 0; t < nt; t++) {"]
                                          + row.map { "    " + $0 } + ["}"])
    }

    private func backwardQuery(_ dq: String, _ mask: String?) -> [String] {
        var row = ["const float *qt = qp + b * qsb + t * qst + h * qsh;", "const float *gt = gp + b * gsb + t * gst + h * gsh;",
                   "const float *ot = op + b * osb + t * ost + h * osh;", "const float l = lp[b * lsb + h * lsh + t];",
                   "float *dqt = \(dq) + ((b * nt + t) * nh + h) * hd;",
                   "for (long d = 0; d < hd; d++) dqt[d] = 0.0f;", "if (l == -INFINITY) continue;"]
        row += ["/* D_t = dO·out */"] + AttentionLowering.dot("rowd", "gt", "ot") + [AttentionLowering.lastKey]
        row += ["for (long s = 0; s <= last; s++) {"]
        if let mask { row += ["    if (\(mask)) continue;"] }
        row += ["    const float *ks = kp + b * ksb + s * kss + g * ksh, *vs = vp + b * vsb + s * vss + g * vsh;",
                "    float dot = 0.0f, dp = 0.0f;", "    #pragma omp simd reduction(+:dot, dp)",
                "    for (long d = 0; d < hd; d++) { dot += qt[d] * ks[d]; dp += gt[d] * vs[d]; }",
                "    const float ds = expf(dot * scale - l) * (dp - rowd) * scale;",
                "    #pragma omp simd", "    for (long d = 0; d < hd; d++) dqt[d] += ds * ks[d];", "}"]
        return AttentionLowering.headLoop(["for (long t = 0; t < nt; t++) {"] + row.map { "    " + $0 } + ["}"])
    }

    private func backwardKeyValue(dk: String?, dv: String?, _ mask: String?) -> [String] {
        var body = ["float rowd[rep * nt];   /* D_t = dO·out of each row of the heads sharing g */",
                    "for (long r = 0; r < rep; r++) {", "    const long h = g * rep + r;", "    for (long t = 0; t < nt; t++) {",
                    "        const float *gt = gp + b * gsb + t * gst + h * gsh, *ot = op + b * osb + t * ost + h * osh;"]
        body += AttentionLowering.dot("x", "gt", "ot").map { "        " + $0 }
        body += ["        rowd[r * nt + t] = x;", "    }", "}", "for (long s = 0; s < ns; s++) {",
                 "    const float *ks = kp + b * ksb + s * kss + g * ksh, *vs = vp + b * vsb + s * vss + g * vsh;"]
        if let dk { body += ["    float *dks = \(dk) + ((b * ns + s) * nkv + g) * hd;", "    for (long d = 0; d < hd; d++) dks[d] = 0.0f;"] }
        if let dv { body += ["    float *dvs = \(dv) + ((b * ns + s) * nkv + g) * hd;", "    for (long d = 0; d < hd; d++) dvs[d] = 0.0f;"] }
        var row = ["const float l = lp[b * lsb + h * lsh + t];", "if (l == -INFINITY) continue;"]
        if let mask { row += ["if (\(mask)) continue;"] }
        row += ["const float *qt = qp + b * qsb + t * qst + h * qsh, *gt = gp + b * gsb + t * gst + h * gsh;"]
        row += ["float dot = 0.0f, dp = 0.0f;", "#pragma omp simd reduction(+:dot, dp)",
                "for (long d = 0; d < hd; d++) { dot += qt[d] * ks[d]; dp += gt[d] * vs[d]; }",
                "const float pr = expf(dot * scale - l);", "const float ds = pr * (dp - rowd[r * nt + t]) * scale;", "#pragma omp simd"]
        switch (dk, dv) {
        case (.some, .some): row += ["for (long d = 0; d < hd; d++) { dks[d] += ds * qt[d]; dvs[d] += pr * gt[d]; }"]
        case (.some, nil): row += ["for (long d = 0; d < hd; d++) dks[d] += ds * qt[d];"]
        default: row += ["for (long d = 0; d < hd; d++) dvs[d] += pr * gt[d];"]
        }
        body += ["    /* the rows that see key s (t ≥ s − start), in every head sharing g */",
                 "    for (long r = 0; r < rep; r++) {", "        const long h = g * rep + r;",
                 "        for (long t = s - start > 0 ? s - start : 0; t < nt; t++) {"]
        body += row.map { "            " + $0 } + ["        }", "    }", "}"]
        return ["#pragma omp parallel for collapse(2) schedule(static)", "for (long b = 0; b < nb; b++) {",
                "    for (long g = 0; g < nkv; g++) {"] + body.map { "        " + $0 } + ["    }", "}"]
    }

    /// The parallel loop over batch × query heads around a per-head body.
    static func headLoop(_ body: [String]) -> [String] {
        ["#pragma omp parallel for collapse(2) schedule(static)", "for (long b = 0; b < nb; b++) {",
         "    for (long h = 0; h < nh; h++) {", "        const long g = h / rep;"] + body.map { "        " + $0 } + ["    }", "}"]
    }

    /// FLOPs, as multiply-adds over the visible half of the `T×S` pairs: forward 2 products
    /// of `HD` per pair, `dq` 3, `dk`+`dv` 4 (2 each when alone, plus the recomputed score).
    var flops: Dim {
        guard let first = parts.first else { return 0 }
        let q = plan.node(plan.node(first).inputs[0]).shape, s = plan.node(plan.node(first).inputs[1]).shape[1]
        let pairs = q[0] * q[2] * q[1] * s * q[3]   // B·H·T·S·HD; half of them are visible, 2 flops each
        if part(.out) != nil || part(.lse) != nil { return Dim(2) * pairs }
        if part(.gradQ) != nil { return Dim(3) * pairs }
        return Dim(part(.gradK) != nil && part(.gradV) != nil ? 4 : 3) * pairs
    }
}

extension AttentionLowering {
    /// The kernel's math in one line, for its comment.
    var formula: String {
        let names = parts.map { i -> String in
            guard case .attention(let p, _, _) = plan.node(i).op else { return "" }
            return "\(p.rawValue) → \(store(i))"
        }
        let mask = parts.first.map { i -> String in
            if case .attention(_, let start, let masked) = plan.node(i).op { return "s ≤ \(start.cExpr) + t\(masked ? ", mask" : "")" }
            return ""
        } ?? ""
        return "causal attention (\(mask)): " + names.joined(separator: ", ")
    }
}

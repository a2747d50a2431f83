import TensorGraph

// The fused causal-attention forward for one query row (`T = 1`: decode), emitted when the
// program's query length is the constant 1. Same locals as `AttentionKernels.swift`.

extension AttentionLowering {
    /// Keys per chunk of the decode kernel's scores (one online-softmax update per chunk).
    static let decodeChunk = 128
    /// How many keys ahead the decode kernel prefetches its key and value rows (on a 2-core Zen 3
    /// with the cache evicted between calls, as the weights do: 16 keys halved the kernel's time).
    static let decodePrefetch = 16

    /// Whether the kernel's queries are one row (the decode programs).
    var isSingleRow: Bool {
        guard let first = parts.first else { return false }
        return plan.node(plan.node(first).inputs[0]).shape[1] == Dim(1)
    }

    /// The forward for `T = 1`, over batch × key/value heads: each key and value row of the
    /// cache is read once for all `REP` query heads that share it. Per chunk of `decodeChunk`
    /// keys `s < kend = min(start + 1, S)`: the scores `sc[j][c] = q_j·k_s/√HD` (four keys at a
    /// time as four `omp simd` sums over d: vector registers, not one scalar chain of `HD`
    /// dependent FMAs, which `fmaf` in a reduction gave), masked ones −∞; per head the chunk's max `mt`,
    /// `sc ← exp(sc − mt)` (vector `expf`), the running sum `l ← l·e^(m−mt) + Σ sc` and
    /// `acc_j ← acc_j·e^(m−mt) + Σ_s sc[j][s]·v_s` (keys in order, four value rows per pass
    /// over `acc_j`).
    /// Output `acc_j / l_j`, log-sum-exp `m_j + log l_j`.
    func singleRowForward(_ mask: String?) -> [String] {
        let n = AttentionLowering.decodeChunk
        let out = part(.out).map(store), lse = part(.lse).map(store)
        let score = mask.map { "\($0) ? -INFINITY : y * scale" } ?? "y * scale"
        var finish: [String] = []
        if let out {
            finish += ["float *ot = \(out) + (b * nh + h) * hd;", "const float *ar = acc + j * hd;", "const float lr = l[j];",
                       "#pragma omp simd", "for (long d = 0; d < hd; d++) ot[d] = lr > 0.0f ? ar[d] / lr : 0.0f;"]
        }
        if let lse { finish += ["\(lse)[b * nh + h] = l[j] > 0.0f ? m[j] + logf(l[j]) : -INFINITY;"] }
        let text = """
        #pragma omp parallel for collapse(2) schedule(static)
        for (long b = 0; b < nb; b++) {
            for (long g = 0; g < nkv; g++) {
                \(mask == nil ? "" : "const long t = 0;")
                const long kend = start + 1 < ns ? start + 1 : ns;
                float sc[rep * \(n)], acc[rep * hd], m[rep], l[rep];
                const float *qr[rep];
                for (long j = 0; j < rep; j++) { m[j] = -INFINITY; l[j] = 0.0f; qr[j] = qp + b * qsb + (g * rep + j) * qsh; }
                for (long i = 0; i < rep * hd; i++) acc[i] = 0.0f;
                for (long key0 = 0; key0 < kend; key0 += \(n)) {
                    const long cols = kend - key0 < \(n) ? kend - key0 : \(n);
                    /* sc[j][c] = q_j·k_{key0+c}·scale: four key rows at a time, each read once for the
                       REP heads; four vector sums over d (`omp simd reduction`: a fixed order per build) */
                    for (long c0 = 0; c0 < cols; c0 += 4) {
                        const long nk = cols - c0 < 4 ? cols - c0 : 4;
                        const float *kr[4];
                        for (long u = 0; u < 4; u++) kr[u] = kp + b * ksb + (key0 + c0 + (u < nk ? u : nk - 1)) * kss + g * ksh;
                        const float *k0 = kr[0], *k1 = kr[1], *k2 = kr[2], *k3 = kr[3];
                        /* the key and value rows \(AttentionLowering.decodePrefetch) keys ahead, toward L1: the weights streamed
                           since the last token evicted the cache, and a head's rows lie a whole cache row apart */
                        for (long u = 0; u < 4; u++) {
                            const long s = key0 + c0 + \(AttentionLowering.decodePrefetch) + u;
                            if (s >= kend) break;
                            const char *kn = (const char *)(kp + b * ksb + s * kss + g * ksh), *vn = (const char *)(vp + b * vsb + s * vss + g * vsh);
                            for (long o = 0; o < hd * 4; o += 64) { __builtin_prefetch(kn + o); __builtin_prefetch(vn + o); }
                            __builtin_prefetch(kn + hd * 4 - 1);
                            __builtin_prefetch(vn + hd * 4 - 1);
                        }
                        for (long j = 0; j < rep; j++) {
                            const float *q = qr[j];
                            float y0 = 0.0f, y1 = 0.0f, y2 = 0.0f, y3 = 0.0f;
                            #pragma omp simd reduction(+:y0, y1, y2, y3)
                            for (long d = 0; d < hd; d++) {
                                const float qd = q[d];
                                y0 += qd * k0[d]; y1 += qd * k1[d]; y2 += qd * k2[d]; y3 += qd * k3[d];
                            }
                            const float ys[4] = {y0, y1, y2, y3};
                            for (long u = 0; u < nk; u++) {
                                const long c = c0 + u, s = key0 + c;
                                const float y = ys[u];
                                sc[j * \(n) + c] = \(score);
                            }
                        }
                    }
                    /* per head: the chunk's max, exp(score − max), the running sum; corr rescales acc */
                    for (long j = 0; j < rep; j++) {
                        float *x = sc + j * \(n);
                        float mt = m[j];
                        for (long c = 0; c < cols; c++) mt = fmaxf(mt, x[c]);
                        if (mt == -INFINITY) { for (long c = 0; c < cols; c++) x[c] = 0.0f; continue; }
                        const float corr = expf(m[j] - mt);
                        float sum = 0.0f;
                        #pragma omp simd reduction(+:sum)
                        for (long c = 0; c < cols; c++) { x[c] = x[c] == -INFINITY ? 0.0f : expf(x[c] - mt); sum += x[c]; }
                        l[j] = l[j] * corr + sum;
                        m[j] = mt;
                        float *aj = acc + j * hd;
                        #pragma omp simd
                        for (long d = 0; d < hd; d++) aj[d] *= corr;
                    }
                    /* acc[j] += Σ_c sc[j][c]·v_{key0+c}, c in order: four value rows per pass over acc,
                       each read once for the REP heads */
                    for (long c0 = 0; c0 < cols; c0 += 4) {
                        const long nk = cols - c0 < 4 ? cols - c0 : 4;
                        const float *vr[4];
                        for (long u = 0; u < 4; u++) vr[u] = vp + b * vsb + (key0 + c0 + (u < nk ? u : nk - 1)) * vss + g * vsh;
                        for (long j = 0; j < rep; j++) {
                            const float *p = sc + j * \(n) + c0;
                            float *aj = acc + j * hd;
                            if (nk == 4) {
                                #pragma omp simd
                                for (long d = 0; d < hd; d++)
                                    aj[d] = fmaf(p[3], vr[3][d], fmaf(p[2], vr[2][d], fmaf(p[1], vr[1][d], fmaf(p[0], vr[0][d], aj[d]))));
                            } else {
                                for (long u = 0; u < nk; u++) {
                                    #pragma omp simd
                                    for (long d = 0; d < hd; d++) aj[d] = fmaf(p[u], vr[u][d], aj[d]);
                                }
                            }
                        }
                    }
                }
                for (long j = 0; j < rep; j++) {
                    const long h = g * rep + j;
        """
        return AttentionLowering.block(text) + finish.map { String(repeating: "    ", count: 3) + $0 }
            + AttentionLowering.block("        }\n    }\n}")
    }
}

// The C of the fused causal-attention kernels (see `AttentionLowering`). Locals: `nb`, `nt`,
// `nh`, `hd`, `ns`, `nkv`, `start`, `rep`, `scale` (sizes), `qp`/`kp`/`vp`/`mp`/`op`/`lp`/`gp`
// (operands, with their strides `qsb`, `qst`, …); `b`, `h`, `g`, `t`, `s`, `d` index batch,
// query head, key/value head, row, key and head dim; `row0`, `key0` start a tile (arena
// buffers are `t0`, `t1`, …).

extension AttentionLowering {
    /// `text`'s lines, each indented by `depth` levels.
    static func block(_ text: String, _ depth: Int = 0) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { String(repeating: "    ", count: depth) + $0 }
    }

    /// The forward kernel: output and/or row log-sum-exp.
    func forward(_ mask: String?) -> [String] {
        let n = AttentionLowering.tile
        let out = part(.out).map(store), lse = part(.lse).map(store)
        let masked = mask.map { " || \($0)" } ?? ""
        var finish = ["const float *ar = acc + r * hd;"]
        if let out {
            finish += ["float *ot = \(out) + ((b * nt + t) * nh + h) * hd;", "const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;",
                       "#pragma omp simd", "for (long d = 0; d < hd; d++) ot[d] = ar[d] * inv;"]
        }
        if let lse { finish += ["\(lse)[(b * nh + h) * nt + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;"] }
        let text = """
        #pragma omp parallel for collapse(2) schedule(static)
        for (long b = 0; b < nb; b++) {
            for (long h = 0; h < nh; h++) {
                const long g = h / rep;
                float kt[hd * \(n)], qs[\(n) * hd], sc[\(n) * \(n)], acc[\(n) * hd], m[\(n)], l[\(n)];
                for (long row0 = 0; row0 < nt; row0 += \(n)) {
                    const long rows = nt - row0 < \(n) ? nt - row0 : \(n);
                    /* keys any row of the block sees: s < kend */
                    const long kend = start + row0 + rows < ns ? start + row0 + rows : ns;
                    for (long r = 0; r < rows; r++) { m[r] = -INFINITY; l[r] = 0.0f; }
                    for (long i = 0; i < rows * hd; i++) acc[i] = 0.0f;
                    /* the block's rows of q, scaled by 1/√HD (zeros past the end) */
                    for (long r = 0; r < \(n); r++) {
                        const float *qt = qp + b * qsb + (row0 + (r < rows ? r : 0)) * qst + h * qsh;
                        for (long d = 0; d < hd; d++) qs[r * hd + d] = r < rows ? qt[d] * scale : 0.0f;
                    }
                    for (long key0 = 0; key0 < kend; key0 += \(n)) {
                        const long cols = kend - key0 < \(n) ? kend - key0 : \(n);
                        /* the key tile, transposed: kt[d][c] = k[key0 + c][d] (zeros past the end) */
                        for (long c = 0; c < \(n); c++) {
                            const float *ks = kp + b * ksb + (key0 + (c < cols ? c : 0)) * kss + g * ksh;
                            for (long d = 0; d < hd; d++) kt[d * \(n) + c] = c < cols ? ks[d] : 0.0f;
                        }
                        /* the tile's scores sc[r][c] = q_r·k_c / √HD: \(n) independent rows of sums */
                        for (long i = 0; i < \(n) * \(n); i++) sc[i] = 0.0f;
                        for (long d = 0; d < hd; d++) {
                            for (long r = 0; r < \(n); r++) {
                                const float qd = qs[r * hd + d];
                                #pragma omp simd
                                for (long c = 0; c < \(n); c++) sc[r * \(n) + c] += qd * kt[d * \(n) + c];
                            }
                        }
                        for (long r = 0; r < rows; r++) {
                            const long t = row0 + r;
                            if (key0 > start + t) continue;   /* the whole tile is above the diagonal */
                            float *x = sc + r * \(n);
                            float mt = m[r];
                            for (long c = 0; c < \(n); c++) {
                                const long s = key0 + c;
                                if (c >= cols || s > start + t\(masked)) x[c] = -INFINITY;
                                mt = fmaxf(mt, x[c]);
                            }
                            if (mt == -INFINITY) continue;
                            /* online softmax: rescale what the row has so far to the new max */
                            const float corr = expf(m[r] - mt);
                            float sum = 0.0f;
                            #pragma omp simd reduction(+:sum)
                            for (long c = 0; c < \(n); c++) { x[c] = expf(x[c] - mt); sum += x[c]; }
                            l[r] = l[r] * corr + sum;
                            m[r] = mt;
                            float *ar = acc + r * hd;
                            if (corr != 1.0f) {
                                #pragma omp simd
                                for (long d = 0; d < hd; d++) ar[d] *= corr;
                            }
                            for (long c = 0; c < cols; c++) {
                                if (x[c] == 0.0f) continue;
                                const float w = x[c];
                                const float *vs = vp + b * vsb + (key0 + c) * vss + g * vsh;
                                #pragma omp simd
                                for (long d = 0; d < hd; d++) ar[d] += w * vs[d];
                            }
                        }
                    }
                    for (long r = 0; r < rows; r++) {
                        const long t = row0 + r;
        """
        return AttentionLowering.block(text) + finish.map { String(repeating: "    ", count: 4) + $0 }
            + AttentionLowering.block("            }\n        }\n    }\n}")
    }

    /// The backward kernel: whichever of `dq`, `dk`, `dv` the program needs, from one
    /// recomputation of the probabilities.
    func backward(dq: String?, dk: String?, dv: String?, _ mask: String?) -> [String] {
        let n = AttentionLowering.tile
        let masked = mask.map { " && !(\($0))" } ?? ""
        var zero: [String] = []
        if let dk { zero += ["float *dks = \(dk) + ((b * ns + s) * nkv + g) * hd;", "for (long d = 0; d < hd; d++) dks[d] = 0.0f;"] }
        if let dv { zero += ["float *dvs = \(dv) + ((b * ns + s) * nkv + g) * hd;", "for (long d = 0; d < hd; d++) dvs[d] = 0.0f;"] }
        var update = ["const long s = key0 + c;"]
        if dv != nil { update.append("const float p = x[c];") }
        if dq != nil || dk != nil { update.append("const float ds = dp[c];") }
        if dq != nil { update.append("const float *ks = kp + b * ksb + s * kss + g * ksh;") }
        var sums: [String] = []
        if let dq { update.append("float *dqt = \(dq) + ((b * nt + t) * nh + h) * hd;"); sums.append("dqt[d] += ds * ks[d];") }
        if let dk { update.append("float *dks = \(dk) + ((b * ns + s) * nkv + g) * hd;"); sums.append("dks[d] += ds * qt[d];") }
        if let dv { update.append("float *dvs = \(dv) + ((b * ns + s) * nkv + g) * hd;"); sums.append("dvs[d] += p * gt[d];") }
        let zeroQuery = dq.map { """
                    for (long t = 0; t < nt; t++) {
                        float *dqt = \($0) + ((b * nt + t) * nh + h) * hd;
                        for (long d = 0; d < hd; d++) dqt[d] = 0.0f;
                    }
        """ }
        var text = """
        #pragma omp parallel for collapse(2) schedule(static)
        for (long b = 0; b < nb; b++) {
            for (long g = 0; g < nkv; g++) {
                float kt[hd * \(n)], vt[hd * \(n)], qs[\(n) * hd], gs[\(n) * hd], sc[\(n) * \(n)], dps[\(n) * \(n)], rowd[nt];
                for (long s = 0; s < ns; s++) {

        """
        text += zero.map { "            " + $0 }.joined(separator: "\n")
        text += """

                }
                for (long r = 0; r < rep; r++) {
                    const long h = g * rep + r;
        \(zeroQuery ?? "")
                    /* D_t = dO·out */
                    for (long t = 0; t < nt; t++) {
                        const float *gt = gp + b * gsb + t * gst + h * gsh, *ot = op + b * osb + t * ost + h * osh;
                        float y = 0.0f;
                        #pragma omp simd reduction(+:y)
                        for (long d = 0; d < hd; d++) y += gt[d] * ot[d];
                        rowd[t] = y;
                    }
                    for (long key0 = 0; key0 < ns; key0 += \(n)) {
                        const long cols = ns - key0 < \(n) ? ns - key0 : \(n);
                        /* the key and value tiles, transposed (zeros past the end) */
                        for (long c = 0; c < \(n); c++) {
                            const long s = key0 + (c < cols ? c : 0);
                            const float *ks = kp + b * ksb + s * kss + g * ksh, *vs = vp + b * vsb + s * vss + g * vsh;
                            for (long d = 0; d < hd; d++) {
                                kt[d * \(n) + c] = c < cols ? ks[d] : 0.0f;
                                vt[d * \(n) + c] = c < cols ? vs[d] : 0.0f;
                            }
                        }
                        /* the rows that see a key of the tile (t ≥ key0 − start), \(n) at a time */
                        for (long row0 = key0 - start > 0 ? key0 - start : 0; row0 < nt; row0 += \(n)) {
                            const long rows = nt - row0 < \(n) ? nt - row0 : \(n);
                            for (long r = 0; r < \(n); r++) {
                                const long t = row0 + (r < rows ? r : 0);
                                const float *qt = qp + b * qsb + t * qst + h * qsh, *gt = gp + b * gsb + t * gst + h * gsh;
                                for (long d = 0; d < hd; d++) {
                                    qs[r * hd + d] = r < rows ? qt[d] * scale : 0.0f;
                                    gs[r * hd + d] = r < rows ? gt[d] : 0.0f;
                                }
                            }
                            /* scores sc[r][c] = q_r·k_c/√HD and dps[r][c] = dO_r·v_c */
                            for (long i = 0; i < \(n) * \(n); i++) { sc[i] = 0.0f; dps[i] = 0.0f; }
                            for (long d = 0; d < hd; d++) {
                                for (long r = 0; r < \(n); r++) {
                                    const float qd = qs[r * hd + d], gd = gs[r * hd + d];
                                    #pragma omp simd
                                    for (long c = 0; c < \(n); c++) {
                                        sc[r * \(n) + c] += qd * kt[d * \(n) + c];
                                        dps[r * \(n) + c] += gd * vt[d * \(n) + c];
                                    }
                                }
                            }
                            for (long r = 0; r < rows; r++) {
                                const long t = row0 + r;
                                const float lt = lp[b * lsb + h * lsh + t];
                                if (lt == -INFINITY) continue;
                                const float *qt = qp + b * qsb + t * qst + h * qsh, *gt = gp + b * gsb + t * gst + h * gsh;
                                float *x = sc + r * \(n), *dp = dps + r * \(n);
                                /* x ← p = exp(score − lse), dp ← ds = p·(dO·v − D_t)/√HD */
                                for (long c = 0; c < \(n); c++) {
                                    const long s = key0 + c;
                                    const float p = c < cols && s <= start + t\(masked) ? expf(x[c] - lt) : 0.0f;
                                    x[c] = p;
                                    dp[c] = p * (dp[c] - rowd[t]) * scale;
                                }
                                for (long c = 0; c < cols; c++) {
                                    if (x[c] == 0.0f) continue;

        """
        text += update.map { String(repeating: "    ", count: 7) + $0 }.joined(separator: "\n")
        text += """

                                    #pragma omp simd
                                    for (long d = 0; d < hd; d++) { \(sums.joined(separator: " ")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        """
        return AttentionLowering.block(text).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    }
}

// The C of the fused causal-attention kernels (see `AttentionLowering`). Locals: `nb`, `nt`,
// `nh`, `hd`, `ns`, `nkv`, `start`, `rep`, `scale` (sizes), `qp`/`kp`/`vp`/`mp`/`op`/`lp`/`gp`
// (operands, with their strides `qsb`, `qst`, …); `b`, `h`, `g`, `t`, `s`, `d` index batch,
// query head, key/value head, row, key and head dim; `row0`, `key0` start a tile (arena
// buffers are `t0`, `t1`, …). Every product of a tile is a small matrix product written so the
// compiler keeps its sums in vector registers (`fmaf`: one rounding, as BLAS does).

extension AttentionLowering {
    /// `text`'s lines, each indented by `depth` levels, blank ones dropped.
    static func block(_ text: String, _ depth: Int = 0) -> [String] {
        text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            .map { String(repeating: "    ", count: depth) + $0 }
    }

    /// Loads the `n` key rows of a tile as pointers `name[c]` (the last row repeated past the end).
    static func tileRows(_ name: String, _ base: String, _ n: Int) -> String {
        "const float *\(name)[\(n)];\nfor (long c = 0; c < \(n); c++) \(name)[c] = \(base)p + b * \(base)sb + (key0 + (c < cols ? c : cols - 1)) * \(base)ss + g * \(base)sh;"
    }

    /// The forward kernel: output and/or row log-sum-exp.
    func forward(_ mask: String?) -> [String] {
        let n = AttentionLowering.tile, rb = AttentionLowering.rowBlock
        let out = part(.out).map(store), lse = part(.lse).map(store)
        let masked = mask.map { " || \($0)" } ?? ""
        var finish = ["const float *ar = acc + r * hd;"]
        if let out {
            finish += ["float *ot = \(out) + ((b * nt + t) * nh + h) * hd;", "const float lr = l[r];",
                       "#pragma omp simd", "for (long d = 0; d < hd; d++) ot[d] = lr > 0.0f ? ar[d] / lr : 0.0f;"]
        }
        if let lse { finish += ["\(lse)[(b * nh + h) * nt + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;"] }
        let text = """
        #pragma omp parallel for collapse(2) schedule(static)
        for (long b = 0; b < nb; b++) {
            for (long h = 0; h < nh; h++) {
                const long g = h / rep;
                float kt[hd * \(n)], qs[\(rb) * hd], sc[\(n) * \(n)], acc[\(rb) * hd], m[\(rb)], l[\(rb)], corr[\(n)];
                for (long row0 = 0; row0 < nt; row0 += \(rb)) {
                    const long rows = nt - row0 < \(rb) ? nt - row0 : \(rb);
                    /* keys any row of the block sees: s < kend */
                    const long kend = start + row0 + rows < ns ? start + row0 + rows : ns;
                    for (long r = 0; r < \(rb); r++) { m[r] = -INFINITY; l[r] = 0.0f; }
                    for (long i = 0; i < \(rb) * hd; i++) acc[i] = 0.0f;
                    /* the block's rows of q */
                    for (long r = 0; r < rows; r++) {
                        const float *qt = qp + b * qsb + (row0 + r) * qst + h * qsh;
                        for (long d = 0; d < hd; d++) qs[r * hd + d] = qt[d];
                    }
                    for (long key0 = 0; key0 < kend; key0 += \(n)) {
                        const long cols = kend - key0 < \(n) ? kend - key0 : \(n);
        \(AttentionLowering.block(AttentionLowering.tileRows("kr", "k", n), 4).joined(separator: "\n"))
        \(AttentionLowering.block(AttentionLowering.tileRows("vr", "v", n), 4).joined(separator: "\n"))
                        /* the key tile transposed, kt[d][c] = k[key0 + c][d], when a sub-block is full */
                        if (rows >= \(n))
                            for (long d = 0; d < hd; d++)
                                for (long c = 0; c < \(n); c++) kt[d * \(n) + c] = kr[c][d];
                        /* each sub-block of \(n) rows that sees a key of the tile */
                        for (long r0 = 0; r0 < rows; r0 += \(n)) {
                            if (key0 > start + row0 + r0 + \(n - 1)) continue;
                            if (rows - r0 >= \(n)) {
                                /* sc[r][c] = q_r·k_c: \(n) independent vector sums */
                                for (long i = 0; i < \(n) * \(n); i++) sc[i] = 0.0f;
                                for (long d = 0; d < hd; d++) {
                                    for (long r = 0; r < \(n); r++) {
                                        const float qd = qs[(r0 + r) * hd + d];
                                        #pragma omp simd
                                        for (long c = 0; c < \(n); c++) sc[r * \(n) + c] = fmaf(qd, kt[d * \(n) + c], sc[r * \(n) + c]);
                                    }
                                }
                            } else {
                                /* a few rows (decode, a short tail): one dot product per score */
                                for (long r = 0; r < rows - r0; r++)
                                    for (long c = 0; c < \(n); c++) {
                                        const float *qr = qs + (r0 + r) * hd;
                                        float y = 0.0f;
                                        #pragma omp simd reduction(+:y)
                                        for (long d = 0; d < hd; d++) y = fmaf(qr[d], kr[c][d], y);
                                        sc[r * \(n) + c] = y;
                                    }
                            }
                            /* online softmax per row: masked scores out, the running max and sum
                               moved on, sc[r][c] ← exp(score − max); corr rescales what the row had */
                            for (long r = 0; r < \(n) && r0 + r < rows; r++) {
                                const long t = row0 + r0 + r;
                                float *x = sc + r * \(n);
                                float mt = m[r0 + r];
                                for (long c = 0; c < \(n); c++) {
                                    const long s = key0 + c;
                                    x[c] = c >= cols || s > start + t\(masked) ? -INFINITY : x[c] * scale;
                                    mt = fmaxf(mt, x[c]);
                                }
                                if (mt == -INFINITY) { corr[r] = 1.0f; for (long c = 0; c < \(n); c++) x[c] = 0.0f; continue; }
                                corr[r] = expf(m[r0 + r] - mt);
                                float sum = 0.0f;
                                #pragma omp simd reduction(+:sum)
                                for (long c = 0; c < \(n); c++) { x[c] = x[c] == -INFINITY ? 0.0f : expf(x[c] - mt); sum += x[c]; }
                                l[r0 + r] = l[r0 + r] * corr[r] + sum;
                                m[r0 + r] = mt;
                            }
                            /* acc[r] = corr[r]·acc[r] + Σ_c sc[r][c]·v_c */
                            for (long r = 0; r < \(n) && r0 + r < rows; r++) {
                                float *ar = acc + (r0 + r) * hd;
                                const float *x = sc + r * \(n);
                                const float cr = corr[r];
                                #pragma omp simd
                                for (long d = 0; d < hd; d++) {
                                    float a = ar[d] * cr;
                                    for (long c = 0; c < \(n); c++) a = fmaf(x[c], vr[c][d], a);
                                    ar[d] = a;
                                }
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
    /// recomputation of the probabilities per tile.
    func backward(dq: String?, dk: String?, dv: String?, _ mask: String?) -> [String] {
        let n = AttentionLowering.tile
        let masked = mask.map { " && !(\($0))" } ?? ""
        var zero: [String] = []
        if let dk { zero += ["float *dks = \(dk) + ((b * ns + s) * nkv + g) * hd;", "for (long d = 0; d < hd; d++) dks[d] = 0.0f;"] }
        if let dv { zero += ["float *dvs = \(dv) + ((b * ns + s) * nkv + g) * hd;", "for (long d = 0; d < hd; d++) dvs[d] = 0.0f;"] }
        let zeroQuery = dq.map { "for (long t = 0; t < nt; t++) {\n    float *dqt = \($0) + ((b * nt + t) * nh + h) * hd;\n    for (long d = 0; d < hd; d++) dqt[d] = 0.0f;\n}" } ?? ""
        var products: [String] = []
        if let dq {
            products.append("""
            /* dq[r] += Σ_c ds[r][c]·k_c */
            for (long r = 0; r < rows; r++) {
                float *dqt = \(dq) + ((b * nt + row0 + r) * nh + h) * hd;
                const float *x = dps + r * \(n);
                #pragma omp simd
                for (long d = 0; d < hd; d++) {
                    float a = dqt[d];
                    for (long c = 0; c < \(n); c++) a = fmaf(x[c], kr[c][d], a);
                    dqt[d] = a;
                }
            }
            """)
        }
        for (grad, weight, rowsOf, what) in [(dk, "dps", "qs", "ds[r][c]·q_r"), (dv, "sc", "gs", "p[r][c]·dO_r")] {
            guard let grad else { continue }
            products.append("""
            /* \(grad == dk ? "dk" : "dv")[c] += Σ_r \(what) */
            for (long c = 0; c < cols; c++) {
                float *dst = \(grad) + ((b * ns + key0 + c) * nkv + g) * hd;
                #pragma omp simd
                for (long d = 0; d < hd; d++) {
                    float a = dst[d];
                    for (long r = 0; r < \(n); r++) a = fmaf(\(weight)[r * \(n) + c], \(rowsOf)[r * hd + d], a);
                    dst[d] = a;
                }
            }
            """)
        }
        let text = """
        #pragma omp parallel for collapse(2) schedule(static)
        for (long b = 0; b < nb; b++) {
            for (long g = 0; g < nkv; g++) {
                float kt[hd * \(n)], vt[hd * \(n)], qs[\(n) * hd], gs[\(n) * hd], sc[\(n) * \(n)], dps[\(n) * \(n)], rowd[nt];
                for (long s = 0; s < ns; s++) {
        \(AttentionLowering.block(zero.joined(separator: "\n"), 3).joined(separator: "\n"))
                }
                for (long r = 0; r < rep; r++) {
                    const long h = g * rep + r;
        \(AttentionLowering.block(zeroQuery, 3).joined(separator: "\n"))
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
        \(AttentionLowering.block(AttentionLowering.tileRows("kr", "k", n), 4).joined(separator: "\n"))
        \(AttentionLowering.block(AttentionLowering.tileRows("vr", "v", n), 4).joined(separator: "\n"))
                        /* the key and value tiles transposed: kt[d][c] = k[key0 + c][d] */
                        for (long d = 0; d < hd; d++)
                            for (long c = 0; c < \(n); c++) { kt[d * \(n) + c] = kr[c][d]; vt[d * \(n) + c] = vr[c][d]; }
                        /* the rows that see a key of the tile (t ≥ key0 − start), \(n) at a time */
                        for (long row0 = key0 - start > 0 ? key0 - start : 0; row0 < nt; row0 += \(n)) {
                            const long rows = nt - row0 < \(n) ? nt - row0 : \(n);
                            for (long r = 0; r < \(n); r++) {
                                const long t = row0 + (r < rows ? r : 0);
                                const float *qt = qp + b * qsb + t * qst + h * qsh, *gt = gp + b * gsb + t * gst + h * gsh;
                                for (long d = 0; d < hd; d++) {
                                    qs[r * hd + d] = r < rows ? qt[d] : 0.0f;
                                    gs[r * hd + d] = r < rows ? gt[d] : 0.0f;
                                }
                            }
                            /* sc[r][c] = q_r·k_c and dps[r][c] = dO_r·v_c */
                            for (long i = 0; i < \(n) * \(n); i++) { sc[i] = 0.0f; dps[i] = 0.0f; }
                            for (long d = 0; d < hd; d++) {
                                for (long r = 0; r < \(n); r++) {
                                    const float qd = qs[r * hd + d], gd = gs[r * hd + d];
                                    #pragma omp simd
                                    for (long c = 0; c < \(n); c++) {
                                        sc[r * \(n) + c] = fmaf(qd, kt[d * \(n) + c], sc[r * \(n) + c]);
                                        dps[r * \(n) + c] = fmaf(gd, vt[d * \(n) + c], dps[r * \(n) + c]);
                                    }
                                }
                            }
                            /* sc ← p = exp(score/√HD − lse), dps ← ds = p·(dO·v − D_t)/√HD (0 where masked) */
                            for (long r = 0; r < \(n); r++) {
                                const long t = row0 + r;
                                const float lt = r < rows ? lp[b * lsb + h * lsh + t] : -INFINITY, dt = r < rows ? rowd[t] : 0.0f;
                                for (long c = 0; c < \(n); c++) {
                                    const long s = key0 + c;
                                    const float p = lt > -INFINITY && c < cols && s <= start + t\(masked) ? expf(sc[r * \(n) + c] * scale - lt) : 0.0f;
                                    sc[r * \(n) + c] = p;
                                    dps[r * \(n) + c] = p * (dps[r * \(n) + c] - dt) * scale;
                                }
                            }
        \(AttentionLowering.block(products.joined(separator: "\n"), 5).joined(separator: "\n"))
                        }
                    }
                }
            }
        }
        """
        return AttentionLowering.block(text)
    }
}

import TensorGraph

/// Lowers `x · dequant(q, scales)ᵀ` (`GraphBuilder.quantizedMatmul`): `x` `[M, K]` f32, `q`
/// `[N, KP]` quantized (`q8`: int8; `q4`: two values a byte, runs of 32 in 16 bytes, `q + 8`)
/// with rows padded to `KP`, `scales` `[N, NG]`, group `G = KP / NG` (a row's last group holds
/// what is left of K). The weight is never dequantized into memory:
/// - one row (decode, M = 1): x is quantized to int8 per group and each of W's rows is a sum of
///   exact int32 group dot products times both scales (`QuantGemvLowering`), rows over the threads;
/// - several rows (prefill, f32 activations as ggml's BLAS path): each thread dequantizes a tile
///   of W's rows into 64 KiB on its stack and multiplies it with one single-threaded `sgemm`
///   (`la_sgemm`); rows longer than the tile go one row of x at a time through an f32 GEMV
///   (each group's `scale · Σ q·x` on SIMD lanes, fixed order per build).
struct QuantMatmulLowering {
    var dtype: DType
    var x: String, lda: String, q: String, scales: String, y: String, ldy: String
    /// Sizes: rows of x, rows of W, x's row length, W's padded row length, groups per row.
    var m: String, n: String, k: String, kp: String, groups: String
    var accumulate: Bool

    /// Floats of W a thread dequantizes at once (on its stack).
    static let tileFloats = 16384

    var lines: [String] {
        var out = ["const long group = \(paren(kp)) / \(paren(groups));  /* values per scale; a row's last group may be short */",
                   "la_blas_pool(0);"]
        let int8 = QuantGemvLowering(dtype: dtype, x: x, q: q, scales: scales, y: y, n: n, k: k, kp: kp, groups: groups,
                                     accumulate: accumulate).lines
        if m == "1" { return out + int8 }
        out.append("if (\(paren(m)) == 1) {")
        out += int8.map { "    " + $0 }
        out.append("} else if (\(paren(k)) > \(QuantMatmulLowering.tileFloats)) {")
        out.append("    for (long i = 0; i < \(m); i++) {")
        out += gemv(x: "\(x) + i * \(paren(lda))", y: "\(y) + i * \(paren(ldy))").map { "        " + $0 }
        out.append("    }")
        out.append("} else {")
        out += gemm.map { "    " + $0 }
        out.append("}")
        return out
    }

    private var rowPointers: [String] {
        let stride = dtype == .q4 ? "\(paren(kp)) / 2" : paren(kp)
        return ["const \(dtype.cType) *restrict qr = \(q) + r * (\(stride));",
                "const float *restrict sr = \(scales) + r * \(paren(groups));"]
    }

    /// The loop over a row's groups: `g`, the group's first value `g·group`, its length `len`.
    private func groupLoop(_ body: [String]) -> [String] {
        ["for (long g = 0; g < \(paren(groups)); g++) {",
         "    const long len = \(paren(k)) - g * group < group ? \(paren(k)) - g * group : group;"]
            + body.map { "    " + $0 } + ["}"]
    }

    /// `lanes[c] += scale · value · x` for each whole run of 32 of group g, then the rest of a short
    /// group into `acc` (`xg`: the group's slice of x).
    private var groupRuns: [String] {
        let run: [String]
        switch dtype {
        case .q4:
            run = ["const uint8_t *restrict qb = qr + (g * group + h) / 2;",
                   "#pragma omp simd",
                   "for (long c = 0; c < 16; c++) {",
                   "    lanes[c] += s * (float)((int)(qb[c] & 15) - 8) * xg[h + c];",
                   "    lanes[c + 16] += s * (float)((int)(qb[c] >> 4) - 8) * xg[h + c + 16];",
                   "}"]
        default:
            run = ["const int8_t *restrict qb = qr + g * group + h;",
                   "#pragma omp simd",
                   "for (long c = 0; c < 32; c++) lanes[c] += s * (float)qb[c] * xg[h + c];"]
        }
        let tail: [String]
        switch dtype {
        case .q4:
            tail = ["for (; h < len; h++) {",
                    "    const long c = h % 32;",
                    "    const uint8_t b = qr[(g * group + h - c) / 2 + c % 16];",
                    "    acc += s * (float)((int)(c < 16 ? b & 15 : b >> 4) - 8) * xg[h];",
                    "}"]
        default:
            tail = ["for (; h < len; h++) acc += s * (float)qr[g * group + h] * xg[h];"]
        }
        return ["const float s = sr[g];", "long h = 0;", "for (; h + 32 <= len; h += 32) {"] + run.map { "    " + $0 } + ["}"] + tail
    }

    /// One row of x (f32) times W's rows: 32 partial sums (one per position in a run of 32 values,
    /// kept in SIMD registers across the groups) added at the end — a fixed order.
    private func gemv(x: String, y: String) -> [String] {
        let store = accumulate ? "(\(y))[r] += acc;" : "(\(y))[r] = acc;"
        return ["#pragma omp parallel for schedule(static) if (\(paren(n)) * \(paren(k)) >= \(GemvLowering.parallelThreshold))",
                "for (long r = 0; r < \(n); r++) {"]
            + rowPointers.map { "    " + $0 }
            + ["    float lanes[32] = {0.0f}, acc = 0.0f;"]
            + groupLoop(["const float *restrict xg = \(x) + g * group;"] + groupRuns).map { "    " + $0 }
            + ["    for (long c = 0; c < 32; c++) acc += lanes[c];",
               "    " + store, "}"]
    }

    /// `tr[·] = W's row r, dequantized` (its first K values).
    private var dequantRow: [String] {
        switch dtype {
        case .q4:
            return groupLoop(["for (long h = 0; h < len; h++) {",
                              "    const long c = g * group + h, run = c % 32;",
                              "    const uint8_t b = qr[(c - run) / 2 + run % 16];",
                              "    tr[c] = sr[g] * (float)((int)(run < 16 ? b & 15 : b >> 4) - 8);",
                              "}"])
        default:
            return groupLoop(["#pragma omp simd",
                              "for (long c = 0; c < len; c++) tr[g * group + c] = sr[g] * (float)qr[g * group + c];"])
        }
    }

    private var gemm: [String] {
        let tile = QuantMatmulLowering.tileFloats
        let work = "\(paren(m)) * \(paren(n)) * \(paren(k)) >= \(MatmulLowering.parallelThreshold)"
        return ["const long tile_rows = \(tile) / \(paren(k));  /* rows of W dequantized at once */",
                "#pragma omp parallel for schedule(static) if (\(work))",
                "for (long r0 = 0; r0 < \(n); r0 += tile_rows) {",
                "    float tile[\(tile)];",
                "    const long nr = r0 + tile_rows <= \(paren(n)) ? tile_rows : \(paren(n)) - r0;",
                "    for (long r = r0; r < r0 + nr; r++) {",
                "        float *restrict tr = tile + (r - r0) * \(paren(k));"]
            + rowPointers.map { "        " + $0 }
            + dequantRow.map { "        " + $0 }
            + ["    }",
               "    la_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, \(m), nr, \(k), 1.0f, \(x), \(lda), tile, \(k), "
                + "\(accumulate ? "1.0f" : "0.0f"), \(y) + r0, \(ldy));",
               "}"]
    }
}

import TensorGraph

/// One row times a quantized weight (decode's products) with **int8 activations**, as ggml's
/// `Q8_0 × Q8_0` and llama2.c's `runq`: `x` `[K]` is first quantized per group of the weight's
/// `G` values (`d = max|x|/127`, `q = roundf(x/d)`, the scale kept in f32; zeros past K), then
/// `y[n] = Σ_g sw[n, g] · d_x[g] · Σ_{k∈g} qw[n, k] · qx[k]` with the inner sums exact in int32.
///
/// The integer sums are AVX-512 VNNI dot products (`vpdpbusd`: 64 unsigned × signed bytes into
/// 16 int32 lanes, four products a lane), two runs of 32 values at a time. `vpdpbusd` needs one
/// unsigned operand, so the weight is made unsigned and the activation's sum corrects it:
/// q8: `u = q + 128` (`q ^ 0x80`), q4: the stored nibble `u = q + 8`; `Σ u·qx = Σ q·qx + off·Σ qx`,
/// and `−off·Σ qx` of each run starts that run's first lane. The activation is laid out in the
/// weight's byte order once per product (q4: a pair's low nibbles, then its high nibbles), with
/// each lane's activation scale and correction beside it; each row then costs a load, an
/// unpack, one `vpdpbusd`, a convert and a multiply-add per 64 values, four rows sharing the
/// activation's loads. Without VNNI (`__AVX512VNNI__` unset), or for a group size that is
/// neither 32 nor a multiple of 64, AVX2 runs the same sums group by group (`vpmaddubsw` on `|q|` and
/// `sign(qx, q)`, as ggml's AVX2 `Q8_0 × Q8_0`), and without AVX2 plain C does.
struct QuantGemvLowering {
    var dtype: DType
    var x: String, q: String, scales: String, y: String
    /// Rows of W, x's row length, W's padded row length, groups per row.
    var n: String, k: String, kp: String, groups: String
    var accumulate: Bool

    /// Products with fewer multiply-adds run on the calling thread. 2¹⁵ splits every layer
    /// product of `small` (`[288, 288]` and up): on a quiet AVX2 Zen 3, whose single core streams
    /// few bytes a second, that decoded ~20% faster than 2¹⁸ (only the output matrix split); on
    /// a quiet Zen 5 the two were level; beside other jobs a split `[768, 288]` product took
    /// ~40 µs against 3.4 µs serial (a parallel region waits for a busy core), where 2¹⁸ wins.
    static let parallelThreshold = 1 << 15

    var lines: [String] {
        quantizeActivation + ["#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)",
                              "if (group == 32 || group % 64 == 0) {  /* a pair of runs spans one group, or two of 32 */"]
            + (vnniLayout + vnniRows).map { "    " + $0 } + ["} else", "#endif", "{", "#if defined(__AVX2__) && defined(__FMA__)"]
            + avx2Rows.map { "    " + $0 } + ["#else"] + plainRows.map { "    " + $0 } + ["#endif", "}"]
    }

    private var isQ4: Bool { dtype == .q4 }
    /// The run (0 or 1 of a pair) a lane of `vpdpbusd`'s result sums: q8 lanes 0–7 / 8–15,
    /// q4 lanes 0–3 and 8–11 / 4–7 and 12–15.
    private var laneRun: String { isQ4 ? "(l / 4) % 2" : "l / 8" }

    /// `act_x` (x's int8 values in order, zeros past K, 64 bytes a pair of runs) and `act_gd`
    /// (each group's activation scale): what every path reads. Every loop here is on SIMD
    /// lanes; it runs once per product, before the rows, on the calling thread.
    private var quantizeActivation: [String] {
        [
            "/* x → int8 per group of `group` values: act_x in x's order, act_gd per group */",
            "const long runs = \(paren(kp)) / 32, pairs = (runs + 1) / 2;",
            "int8_t act_x[64 * pairs];  /* zeros past K */",
            "float act_gd[\(paren(groups))];",
            "memset(act_x, 0, sizeof act_x);",
            "for (long g = 0; g < \(paren(groups)); g++) {",
            "    const long v0 = g * group, len = \(paren(k)) - v0 < group ? \(paren(k)) - v0 : group;",
            "    float amax = 0.0f;",
            "    #pragma omp simd reduction(max:amax)",
            "    for (long c = 0; c < len; c++) amax = fmaxf(amax, fabsf((\(x))[v0 + c]));",
            "    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;",
            "    act_gd[g] = d;",
            "    #pragma omp simd",
            "    for (long c = 0; c < len; c++) act_x[v0 + c] = (int8_t)roundf((\(x))[v0 + c] * id);",
            "}",
        ]
    }

    /// What the VNNI rows read besides: `act_q` (`act_x` in the weight's byte order), `act_d`
    /// (each result lane's activation scale), `act_fix` (each run's `−off·Σ qx` on its first lane).
    private var vnniLayout: [String] {
        let firstLane = isQ4 ? "4 * (run % 2)" : "8 * (run % 2)"
        var out = [
            "/* act_q in W's byte order, act_d / act_fix per result lane */",
            "float act_d[16 * pairs];",
            "int32_t act_fix[16 * pairs];",
            "memset(act_fix, 0, sizeof act_fix);",
            "for (long run = 0; run < runs; run++) {",
            "    int32_t sum = 0;",
            "    #pragma omp simd reduction(+:sum)",
            "    for (long j = 0; j < 32; j++) sum += act_x[32 * run + j];",
            "    act_fix[16 * (run / 2) + \(firstLane)] = -\(isQ4 ? 8 : 128) * sum;",
            "}",
        ]
        if isQ4 {
            out += ["int8_t act_q[64 * pairs];",
                    "for (long p = 0; p < pairs; p++) {  /* a pair: run 2p's values 0–15, run 2p+1's 0–15, then both runs' 16–31 */",
                    "    memcpy(act_q + 64 * p, act_x + 64 * p, 16);",
                    "    memcpy(act_q + 64 * p + 16, act_x + 64 * p + 32, 16);",
                    "    memcpy(act_q + 64 * p + 32, act_x + 64 * p + 16, 16);",
                    "    memcpy(act_q + 64 * p + 48, act_x + 64 * p + 48, 16);",
                    "}"]
        } else {
            out += ["const int8_t *restrict act_q = act_x;  /* q8's bytes are in x's order */"]
        }
        return out + [
            "for (long p = 0; p < pairs; p++) {",
            "    for (long l = 0; l < 16; l++) {",
            "        const long run = 2 * p + \(laneRun);",
            "        act_d[16 * p + l] = run < runs ? act_gd[run * 32 / group] : 0.0f;",
            "    }",
            "}",
        ]
    }

    /// The weight's 64 unsigned bytes of pair p (`tail`: only its first run exists; masked loads
    /// never read past the row).
    private func unsignedWeight(tail: Bool) -> [String] {
        if isQ4 {
            let load = tail ? "_mm256_maskz_loadu_epi8(0xFFFFu, qr + 32 * p)" : "_mm256_loadu_si256((const __m256i *)(qr + 32 * p))"
            return ["const __m256i b = \(load);  /* two runs: 16 bytes each, value j low, j + 16 high */",
                    "const __m512i u = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(b, low4)),",
                    "                                     _mm256_and_si256(_mm256_srli_epi16(b, 4), low4), 1);  /* q + 8 */"]
        }
        let load = tail ? "_mm512_maskz_loadu_epi8(0xFFFFFFFFull, qr + 64 * p)" : "_mm512_loadu_si512(qr + 64 * p)"
        return ["const __m512i u = _mm512_xor_si512(\(load), flip);  /* q + 128 */"]
    }

    /// `acc[i] += sw · d_x · Σ u·qx` over pair p's 16 lanes for row `r0 + i` (`tail`: only run 2p
    /// exists, so only the row's scale of its group is loaded).
    private func pairStep(tail: Bool, rows: Int) -> [String] {
        let stride = rowBytes
        return [
            "const __m512i fix = _mm512_loadu_si512(act_fix + 16 * p), xq = _mm512_loadu_si512(act_q + 64 * p);",
            "const __m512 xd = _mm512_loadu_ps(act_d + 16 * p);",
            "for (long i = 0; i < \(rows); i++) {",
            "    const \(dtype.cType) *restrict qr = \(q) + (r0 + i) * (\(stride));",
            "    const float *restrict sr = \(scales) + (r0 + i) * \(paren(groups));",
        ] + unsignedWeight(tail: tail).map { "    " + $0 } + [
            "    const __m512i dot = _mm512_dpbusd_epi32(fix, u, xq);",
            "    const __m512 sw = _mm512_permutexvar_ps(lane_group, _mm512_castps128_ps512(_mm_maskz_loadu_ps(\(tail ? "1" : "two_groups"), sr + 64 * p / group)));",
            "    acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(sw, xd), _mm512_cvtepi32_ps(dot), acc[i]);",
            "}",
        ]
    }

    /// A row's bytes of W (its stride: q4 packs two values a byte).
    private var rowBytes: String { isQ4 ? "\(paren(kp)) / 2" : paren(kp) }

    /// How many rows ahead of a block of four the kernel prefetches W and its scales: whole
    /// blocks, about `GemvLowering.prefetchBytes` of values.
    private var aheadDeclaration: String {
        "const long ahead = 4 * (\(GemvLowering.prefetchBytes) / (4 * (\(rowBytes))) + 1);  /* rows of W prefetched ahead */"
    }

    /// The block of four rows `ahead` rows on, values and scales, toward the cache (W streams
    /// from memory once a call; the hardware prefetcher alone keeps too few lines in flight).
    private var prefetchAhead: [String] {
        ["if (r0 + ahead + 4 <= \(paren(n))) {",
         "    const char *next = (const char *)(\(q) + (r0 + ahead) * (\(rowBytes)));",
         "    for (long o = 0; o < 4 * (\(rowBytes)); o += 64) __builtin_prefetch(next + o);",
         "    const char *next_scales = (const char *)(\(scales) + (r0 + ahead) * \(paren(groups)));",
         "    for (long o = 0; o < 16 * \(paren(groups)); o += 64) __builtin_prefetch(next_scales + o);",
         "}"]
    }

    /// Rows `r0 … r0 + rows − 1` of W: the activation's pair is loaded once for all of them.
    private func rowBlock(rows: Int) -> [String] {
        let store = accumulate ? "(\(y))[r0 + i] += " : "(\(y))[r0 + i] = "
        return (rows == 4 ? prefetchAhead : []) + ["__m512 acc[\(rows)];",
                "for (long i = 0; i < \(rows); i++) acc[i] = _mm512_setzero_ps();",
                "for (long p = 0; p < runs / 2; p++) {"]
            + pairStep(tail: false, rows: rows).map { "    " + $0 }
            + ["}", "if (runs % 2) {", "    const long p = runs / 2;"]
            + pairStep(tail: true, rows: rows).map { "    " + $0 }
            + ["}", "for (long i = 0; i < \(rows); i++) \(store)_mm512_reduce_add_ps(acc[i]);"]
    }

    /// W's rows in blocks of 4 over the threads (then the last `N % 4` one at a time); each
    /// lane's row scale comes from the pair's first group (and the next one when G = 32 puts the
    /// pair's runs in two groups).
    private var vnniRows: [String] {
        [
            "int32_t lane_groups[16];  /* which of the pair's (at most) two groups a lane's run is in */",
            "for (long l = 0; l < 16; l++) lane_groups[l] = group == 32 ? \(laneRun) : 0;",
            "const __m512i lane_group = _mm512_loadu_si512(lane_groups);",
            "const __mmask8 two_groups = group == 32 ? 3 : 1;",
            isQ4 ? "const __m256i low4 = _mm256_set1_epi8(15);" : "const __m512i flip = _mm512_set1_epi8((char)0x80);",
            aheadDeclaration,
            "#pragma omp parallel for schedule(static) if (\(paren(n)) * \(paren(k)) >= \(QuantGemvLowering.parallelThreshold))",
            "for (long r0 = 0; r0 < \(paren(n)) - 3; r0 += 4) {",
        ] + rowBlock(rows: 4).map { "    " + $0 } + [
            "}",
            "for (long r0 = \(paren(n)) - \(paren(n)) % 4; r0 < \(n); r0++) {",
        ] + rowBlock(rows: 1).map { "    " + $0 } + ["}"]
    }

    /// The same sums on AVX2, one group at a time, four rows sharing the activation's loads:
    /// q8, per run of 32, `Σ q·qx` as `vpmaddubsw(|q|, sign(qx, q))` (exact: the unsigned
    /// `|q| ≤ 128` — a q8 of −128 included — times `|qx| ≤ 127`, two products a 16-bit lane, at
    /// most 32,512); q4 as `vpmaddubsw(u, qx)` on the stored nibble `u = q + 8 ≤ 15` (at most
    /// 3,810 a 16-bit lane; two fewer sign operations and no subtraction a run), each int32 lane
    /// of a group started at `−8·Σ qx` over the values it sums (computed once per product), so
    /// the lanes hold exactly the signed sums the subtraction gave. Then `vpmaddwd`
    /// by 1 into 8 int32 lanes summed over the group's runs (at most 2·32,512 a lane a run);
    /// each group adds `sw · d_x` times them to 8 f32 lanes. No division per run: a row holds
    /// exactly `groups · group / 32` runs.
    private var avx2Rows: [String] {
        let ints = isQ4 ? "const __m256i ones16 = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(15);"
            : "const __m256i ones16 = _mm256_set1_epi16(1);"
        let head = isQ4
            ? ["/* AVX2: Σ u·qx per run of 32 on the stored nibbles u = q + 8 (vpmaddubsw: unsigned × signed byte pairs),",
               "   then pairs of pairs (vpmaddwd); int32 lane l of a group starts at −8·Σ qx over the values it sums",
               "   (4l … 4l + 3 of each run), so it ends at Σ q·qx over them */",
               ints,
               "const long group_runs = group / 32;",
               "int32_t act_lfix[8 * \(paren(groups))];",
               "for (long g = 0; g < \(paren(groups)); g++) {",
               "    for (long l = 0; l < 8; l++) {",
               "        int32_t sum = 0;",
               "        for (long run = g * group_runs; run < (g + 1) * group_runs; run++)",
               "            for (long t = 0; t < 4; t++) sum += act_x[32 * run + 4 * l + t];",
               "        act_lfix[8 * g + l] = -8 * sum;",
               "    }",
               "}"]
            : ["/* AVX2: Σ q·qx per run of 32 as |q| × sign(qx, q) byte pairs (vpmaddubsw), then pairs of pairs (vpmaddwd) */",
               ints,
               "const long group_runs = group / 32;"]
        return head + [
                aheadDeclaration,
                "#pragma omp parallel for schedule(static) if (\(paren(n)) * \(paren(k)) >= \(QuantGemvLowering.parallelThreshold))",
                "for (long r0 = 0; r0 < \(paren(n)) - 3; r0 += 4) {"]
            + avx2Block(rows: 4).map { "    " + $0 }
            + ["}", "for (long r0 = \(paren(n)) - \(paren(n)) % 4; r0 < \(n); r0++) {"]
            + avx2Block(rows: 1).map { "    " + $0 } + ["}"]
    }

    /// Rows `r0 … r0 + rows − 1` on AVX2: 8 int32 lanes a row per group, 8 f32 lanes a row
    /// summed at the end.
    private func avx2Block(rows: Int) -> [String] {
        let stride = rowBytes
        let weight = isQ4
            ? ["const __m128i b = _mm_loadu_si128((const __m128i *)(qr + 16 * run));  /* value j low nibble, j + 16 high */",
               "const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), low4);"]
            : ["const __m256i w = _mm256_loadu_si256((const __m256i *)(qr + 32 * run));"]
        let product = isQ4 ? "_mm256_maddubs_epi16(u, xq)" : "_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w))"
        let start = isQ4 ? "_mm256_loadu_si256((const __m256i *)(act_lfix + 8 * g))" : "_mm256_setzero_si256()"
        let store = accumulate ? "(\(y))[r0 + i] += " : "(\(y))[r0 + i] = "
        return (rows == 4 ? prefetchAhead : []) + ["__m256 acc[\(rows)];",
                "for (long i = 0; i < \(rows); i++) acc[i] = _mm256_setzero_ps();",
                "for (long g = 0; g < \(paren(groups)); g++) {",
                "    __m256i dot[\(rows)];",
                "    for (long i = 0; i < \(rows); i++) dot[i] = \(start);",
                "    for (long run = g * group_runs; run < (g + 1) * group_runs; run++) {",
                "        const __m256i xq = _mm256_loadu_si256((const __m256i *)(act_x + 32 * run));",
                "        for (long i = 0; i < \(rows); i++) {",
                "            const \(dtype.cType) *restrict qr = \(q) + (r0 + i) * (\(stride));"]
            + weight.map { "            " + $0 } + [
                "            dot[i] = _mm256_add_epi32(dot[i], _mm256_madd_epi16(\(product), ones16));",
                "        }",
                "    }",
                "    for (long i = 0; i < \(rows); i++) {",
                "        const float sw = (\(scales))[(r0 + i) * \(paren(groups)) + g];",
                "        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(sw * act_gd[g]), _mm256_cvtepi32_ps(dot[i]), acc[i]);",
                "    }",
                "}",
                "for (long i = 0; i < \(rows); i++) {",
                "    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));",
                "    s = _mm_add_ps(s, _mm_movehl_ps(s, s));",
                "    \(store)_mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));",
                "}"]
    }

    /// The same sums without AVX2: per run, `Σ q·qx` in int32 (signed weights, no correction).
    private var plainRows: [String] {
        let stride = rowBytes
        let value = isQ4 ? "(int32_t)((j < 16 ? qr[16 * run + j] & 15 : qr[16 * run + j - 16] >> 4) - 8)" : "(int32_t)qr[32 * run + j]"
        return [
            "#pragma omp parallel for schedule(static) if (\(paren(n)) * \(paren(k)) >= \(QuantGemvLowering.parallelThreshold))",
            "for (long r = 0; r < \(n); r++) {",
            "    const \(dtype.cType) *restrict qr = \(q) + r * (\(stride));",
            "    const float *restrict sr = \(scales) + r * \(paren(groups));",
            "    float acc = 0.0f;",
            "    for (long run = 0; run < runs; run++) {",
            "        int32_t dot = 0;",
            "        for (long j = 0; j < 32; j++) dot += \(value) * (int32_t)act_x[32 * run + j];",
            "        acc += sr[run * 32 / group] * act_gd[run * 32 / group] * (float)dot;",
            "    }",
            "    " + (accumulate ? "(\(y))[r] += acc;" : "(\(y))[r] = acc;"),
            "}",
        ]
    }
}

/// One row times a weight stored `[N, K]`: `y[n] = Σ_k x[k] · W[n, k]` (decode's products).
/// The rows of W are split over the program's OpenMP threads in contiguous blocks, and each
/// row's dot product runs on SIMD lanes (`omp simd reduction`: a fixed summation order per
/// build). Streaming W once is the whole cost, so nothing else is done per row.
struct GemvLowering {
    var x: String, w: String, ldw: String, y: String
    var n: String, k: String
    /// `y += …` (β = 1) instead of `y = …`.
    var accumulate: Bool

    /// Products with fewer multiply-adds run on the calling thread.
    static let parallelThreshold = 1 << 15

    /// How far ahead of the row being summed the kernel prefetches W (bytes, rounded up to whole
    /// rows): on a 2-core Zen 3, a `[32000, 288]` f32 product from memory went from ~21 to ~31–40
    /// GB/s with 4–6 rows (4.5–7 KiB) ahead; the hardware prefetcher alone kept fewer lines in flight.
    static let prefetchBytes = 4096

    var lines: [String] {
        let store = accumulate ? "(\(y))[r] += acc;" : "(\(y))[r] = acc;"
        return [
            "la_blas_pool(0);",
            "const long ahead = \(GemvLowering.prefetchBytes) / (\(paren(k)) * 4) + 1;  /* rows of W prefetched ahead */",
            "#pragma omp parallel for schedule(static) if (\(paren(n)) * \(paren(k)) >= \(GemvLowering.parallelThreshold))",
            "for (long r = 0; r < \(n); r++) {",
            "    const float *restrict wr = \(w) + r * \(paren(ldw));",
            "    if (r + ahead < \(n)) {  /* row r + ahead toward the cache: W streams from memory once a call */",
            "        const char *next = (const char *)(wr + ahead * \(paren(ldw)));",
            "        for (long o = 0; o < \(paren(k)) * 4; o += 64) __builtin_prefetch(next + o);",
            "    }",
            "    float acc = 0.0f;",
            "    #pragma omp simd reduction(+:acc)",
            "    for (long c = 0; c < \(k); c++) acc += wr[c] * (\(x))[c];",
            "    " + store,
            "}",
        ]
    }
}

import TensorGraph

/// The products of a `.bf16` program (`MatmulPrecision.bf16`): emitted once into each family's
/// C file that has such a program, and called by its product kernels instead of `la_gemm`.
///
/// The operands stay float32 in memory; each is rounded to bfloat16 (nearest even) while the
/// product packs it into the layout `vdpbf16ps` reads — the packing is the one pass over an
/// operand that any blocked product makes, so the cast costs no pass of its own (a separate
/// bf16 copy would still have to be packed: measured, packing float32 directly is cheaper).
/// Micro-kernel: a 12 × 32 tile of C in 24 zmm accumulators, float32 accumulation; blocks of
/// 256 values of K, 96 rows of A, 4096 columns of B. Only compiled for AVX-512 BF16
/// (`target` attribute); the runtime refuses a bf16 program on a CPU without it. Where the CPU
/// and the OS allow AMX-BF16, `la_bf16_gemm_serial` and `la_bf16_gemm_weight` hand the product to
/// `AMXGemmLowering`'s tiles instead (`la_bf16_amx()`, `LLAMA_ALIGN_AMX=0` turns it off).
enum BF16GemmLowering {
    /// The call in a product kernel: `la_bf16_gemm` splits it over the threads, `la_bf16_gemm_serial` does not.
    static func call(_ function: String, ta: Bool, tb: Bool, m: String, n: String, k: String,
                     a: String, lda: String, b: String, ldb: String, beta: String, c: String, ldc: String) -> String {
        "\(function)(\(ta ? 1 : 0), \(tb ? 1 : 0), \(m), \(n), \(k), \(a), \(lda), \(b), \(ldb), \(beta), \(c), \(ldc));"
    }

    /// A product whose B is a weight kept packed for the program call (`la_bf16_gemm_weight`), in
    /// the file's copy for B's layout (`la_bf16_weights[tb]`: every kernel reading the weight so
    /// shares one copy).
    static func weightCall(ta: Bool, tb: Bool, m: String, n: String, k: String,
                           a: String, lda: String, b: String, ldb: String, beta: String, c: String, ldc: String) -> String {
        "la_bf16_gemm_weight(&la_bf16_weights[\(tb ? 1 : 0)], \(ta ? 1 : 0), \(tb ? 1 : 0), \(m), \(n), \(k), \(a), \(lda), \(b), \(ldb), \(beta), \(c), \(ldc));"
    }

    /// The C the family's file includes once, before its kernels.
    static let support: String = #"""
#include <stdio.h>
#include <stdlib.h>
#include <immintrin.h>

/* bf16 products: C[M,N] = op(A)[M,K] · op(B)[K,N] + beta · C, row major, fp32 in memory. Each
   operand is rounded to bf16 (nearest even) while it is packed — the only pass over it — into
   the layout of vdpbf16ps: A as tiles of 12 rows × pairs of K, B as panels of 32 columns ×
   pairs of K; the products accumulate in fp32. Blocks: KC values of K, MC rows of A (in L2),
   NC columns of B (in L2). Each thread packs into its own workspace, grown once. */
#define LA_BF_MR 12
#define LA_BF_NR 32
#define LA_BF_KC 256
#define LA_BF_MC 96
#define LA_BF_NC 4096
#define LA_BF_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
/* The AMX-BF16 path (AMXGemmLowering, after this text), taken when la_bf16_amx(). */
#define LA_AMX_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))
LA_AMX_TARGET static void la_amx_gemm_serial(int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc);

static _Thread_local uint32_t *la_bf_work;

/* 16 floats at p (the first n; the rest 0) rounded to bf16, each in the low half of a lane. */
LA_BF_TARGET static inline __m512i la_bf_load16(const float *p, long n) {
    __m512 x = n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)((1u << (n > 0 ? n : 0)) - 1), p);
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x));
}
/* Pairs of consecutive floats (k, k+1) at p: 16 pairs, the first n floats (rest 0). */
LA_BF_TARGET static inline __m512i la_bf_pairs16(const float *p, long n) {
    __m512 lo = n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps((__mmask16)((1u << (n > 0 ? n : 0)) - 1), p);
    long m = n - 16;
    __m512 hi = m >= 16 ? _mm512_loadu_ps(p + 16) : _mm512_maskz_loadu_ps((__mmask16)((1u << (m > 0 ? m : 0)) - 1), p + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* Ap[t][p][r] = pair (k0+2p, k0+2p+1) of row i0 + 12t + r of op(A), rows past mc and K past kc 0. */
LA_BF_TARGET static void la_bf_pack_a(int ta, const float *A, long lda, long i0, long mc, long k0, long kc, uint32_t *Ap) {
    const long kp = (kc + 1) / 2, tiles = (mc + LA_BF_MR - 1) / LA_BF_MR;
    memset(Ap, 0, sizeof *Ap * tiles * kp * LA_BF_MR);
    uint32_t tmp[16] __attribute__((aligned(64)));
    if (!ta) {
        /* a row of A: 32 values of K at a time */
        for (long r = 0; r < mc; r++) {
            const float *row = A + (i0 + r) * lda + k0;
            uint32_t *dst = Ap + (r / LA_BF_MR) * kp * LA_BF_MR + r % LA_BF_MR;
            for (long p = 0; p < kp; p += 16) {
                _mm512_store_si512(tmp, la_bf_pairs16(row + 2 * p, kc - 2 * p));
                const long q1 = kp - p < 16 ? kp - p : 16;
                for (long q = 0; q < q1; q++) dst[(p + q) * LA_BF_MR] = tmp[q];
            }
        }
    } else {
        /* A stored [K, M]: 16 rows of op(A) at a time from two rows of A */
        for (long p = 0; p < kp; p++) {
            const float *lo = A + (k0 + 2 * p) * lda + i0, *hi = lo + lda;
            const int has_hi = 2 * p + 1 < kc;
            for (long r = 0; r < mc; r += 16) {
                __m512i v = la_bf_load16(lo + r, mc - r);
                if (has_hi) v = _mm512_or_si512(v, _mm512_slli_epi32(la_bf_load16(hi + r, mc - r), 16));
                _mm512_store_si512(tmp, v);
                const long q1 = mc - r < 16 ? mc - r : 16;
                for (long q = 0; q < q1; q++) Ap[((r + q) / LA_BF_MR) * kp * LA_BF_MR + p * LA_BF_MR + (r + q) % LA_BF_MR] = tmp[q];
            }
        }
    }
}

/* Bp[j][p][c] = pair (k0+2p, k0+2p+1) of column n0 + 32j + c of op(B), columns past nc and K past kc 0. */
LA_BF_TARGET static void la_bf_pack_b(int tb, const float *B, long ldb, long n0, long nc, long k0, long kc, uint32_t *Bp) {
    const long kp = (kc + 1) / 2, panels = (nc + LA_BF_NR - 1) / LA_BF_NR;
    if (!tb) {
        /* B stored [K, N]: 16 columns from two rows of B */
        for (long j = 0; j < panels; j++)
            for (long p = 0; p < kp; p++) {
                const float *lo = B + (k0 + 2 * p) * ldb + n0 + j * LA_BF_NR, *hi = lo + ldb;
                const int has_hi = 2 * p + 1 < kc;
                for (long c = 0; c < LA_BF_NR; c += 16) {
                    const long n = nc - j * LA_BF_NR - c;
                    __m512i v = la_bf_load16(lo + c, n);
                    if (has_hi) v = _mm512_or_si512(v, _mm512_slli_epi32(la_bf_load16(hi + c, n), 16));
                    _mm512_store_si512(Bp + (j * kp + p) * LA_BF_NR + c, v);
                }
            }
    } else {
        /* B stored [N, K] (a weight in x·Wᵀ): 32 values of K of one column at a time */
        uint32_t tmp[16] __attribute__((aligned(64)));
        memset(Bp, 0, sizeof *Bp * panels * kp * LA_BF_NR);
        for (long c = 0; c < nc; c++) {
            const float *col = B + (n0 + c) * ldb + k0;
            uint32_t *dst = Bp + (c / LA_BF_NR) * kp * LA_BF_NR + c % LA_BF_NR;
            for (long p = 0; p < kp; p += 16) {
                _mm512_store_si512(tmp, la_bf_pairs16(col + 2 * p, kc - 2 * p));
                const long q1 = kp - p < 16 ? kp - p : 16;
                for (long q = 0; q < q1; q++) dst[(p + q) * LA_BF_NR] = tmp[q];
            }
        }
    }
}

/* C[mr, nr] (mr ≤ 12, nr ≤ 32) = Σ_p Ap[p] · Bp[p] + (first ? beta·C : C): 24 fp32 accumulators. */
LA_BF_TARGET static void la_bf_tile(long kp, const uint32_t *restrict ap, const uint32_t *restrict bp, float *restrict c, long ldc,
                                  long mr, long nr, int first, float beta) {
    __m512 acc[LA_BF_MR][2];
    for (int i = 0; i < LA_BF_MR; i++) { acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps(); }
    for (long p = 0; p < kp; p++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(bp + p * LA_BF_NR), b1 = (__m512bh)_mm512_load_si512(bp + p * LA_BF_NR + 16);
        for (int i = 0; i < LA_BF_MR; i++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[p * LA_BF_MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
        }
    }
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1), m1 = (__mmask16)(nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
    const float b = first ? beta : 1.0f;
    for (int i = 0; i < LA_BF_MR; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        __m512 x0 = acc[i][0], x1 = acc[i][1];
        if (b != 0.0f) {
            x0 = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_maskz_loadu_ps(m0, ci), x0);
            x1 = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_maskz_loadu_ps(m1, ci + 16), x1);
        }
        _mm512_mask_storeu_ps(ci, m0, x0);
        _mm512_mask_storeu_ps(ci + 16, m1, x1);
    }
}

/* The product on the calling thread. */
LA_BF_TARGET static void la_bf16_gemm_serial(int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc) {
    if (M <= 0 || N <= 0) return;
    if (!la_bf_work) {
        la_bf_work = aligned_alloc(64, sizeof(uint32_t) * (LA_BF_KC / 2) * (LA_BF_MC + LA_BF_NC));
        if (!la_bf_work) { fputs("llama-align: out of memory for the bf16 products' packing workspace (2 MiB a thread)\n", stderr); exit(1); }
    }
    uint32_t *Ap = la_bf_work, *Bp = la_bf_work + (LA_BF_KC / 2) * LA_BF_MC;
    if (K <= 0) { /* C = beta·C */
        for (long i = 0; i < M; i++) for (long j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    if (la_bf16_amx()) { la_amx_gemm_serial(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc); return; }
    for (long k0 = 0; k0 < K; k0 += LA_BF_KC) {
        const long kc = K - k0 < LA_BF_KC ? K - k0 : LA_BF_KC, kp = (kc + 1) / 2;
        for (long n0 = 0; n0 < N; n0 += LA_BF_NC) {
            const long nc = N - n0 < LA_BF_NC ? N - n0 : LA_BF_NC;
            la_bf_pack_b(tb, B, ldb, n0, nc, k0, kc, Bp);
            for (long m0 = 0; m0 < M; m0 += LA_BF_MC) {
                const long mc = M - m0 < LA_BF_MC ? M - m0 : LA_BF_MC;
                la_bf_pack_a(ta, A, lda, m0, mc, k0, kc, Ap);
                for (long j = 0; j < nc; j += LA_BF_NR)
                    for (long i = 0; i < mc; i += LA_BF_MR)
                        la_bf_tile(kp, Ap + (i / LA_BF_MR) * kp * LA_BF_MR, Bp + (j / LA_BF_NR) * kp * LA_BF_NR,
                                   C + (m0 + i) * ldc + n0 + j, ldc, mc - i < LA_BF_MR ? mc - i : LA_BF_MR,
                                   nc - j < LA_BF_NR ? nc - j : LA_BF_NR, k0 == 0, beta);
            }
        }
    }
}

/* The product split over the kernels' threads along C's longer side (as la_gemm does);
   products under 2^17 multiply-adds stay on the calling thread. */
LA_BF_TARGET static void la_bf16_gemm(int ta, int tb, long M, long N, long K, const float *A, long lda,
                                    const float *B, long ldb, float beta, float *C, long ldc) {
    const int parallel = M * N * K >= (1L << 17);
    if (parallel) la_blas_pool(0);
    #pragma omp parallel if (parallel)
    {
        const long parts = omp_get_num_threads(), p = omp_get_thread_num();
        if (M >= N) {
            const long lo = M * p / parts, hi = M * (p + 1) / parts;
            if (hi > lo) la_bf16_gemm_serial(ta, tb, hi - lo, N, K, A + (ta ? lo : lo * lda), lda, B, ldb, beta, C + lo * ldc, ldc);
        } else {
            const long lo = N * p / parts, hi = N * (p + 1) / parts;
            if (hi > lo) la_bf16_gemm_serial(ta, tb, M, hi - lo, K, A, lda, B + (tb ? lo * ldb : lo), ldb, beta, C + lo, ldc);
        }
    }
}
/* A weight's packed bf16 copy, kept for one program call: a product in a repeated stage that
   reads the same (not per-layer) weight each iteration — the vocabulary head, once per chunk —
   packs it once per call instead of once per iteration. la_bf16_epoch is bumped at each bf16
   program's entry, so a copy never outlives the call that made it (AdamW changes the weights
   between calls). */
typedef struct {
    const float *src;
    long ld, n, k;
    int tb;
    unsigned long epoch;
    uint32_t *packed;
    size_t cap;
    int amx;  /* the layout: AMX's (1) or vdpbf16ps's (0) */
} la_bf16_packed;
LA_AMX_TARGET static void la_amx_gemm_weight(la_bf16_packed *w, int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc);
static unsigned long la_bf16_epoch;
/* The copies of this file's kernels, one per layout of B (stored [K, N], or [N, K]: tb). */
static la_bf16_packed la_bf16_weights[2];

/* op(B)[K,N] packed whole: blocks of KC values of K, each as its panels of 32 columns
   (block kb's panel j at kb·(KC/2)·panels·32 + j·kp·32, kp its pairs). */
LA_BF_TARGET static const uint32_t *la_bf16_pack_whole(la_bf16_packed *w, int tb, long N, long K, const float *B, long ldb) {
    if (w->packed && !w->amx && w->src == B && w->epoch == la_bf16_epoch && w->ld == ldb && w->n == N && w->k == K && w->tb == tb) return w->packed;
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR, blocks = (K + LA_BF_KC - 1) / LA_BF_KC;
    const size_t need = (size_t)blocks * (LA_BF_KC / 2) * panels * LA_BF_NR;
    if (need > w->cap) {
        free(w->packed);
        w->packed = aligned_alloc(64, need * sizeof(uint32_t));
        if (!w->packed) { fputs("llama-align: out of memory for a weight's packed bf16 copy\n", stderr); exit(1); }
        w->cap = need;
    }
    uint32_t *dst = w->packed;
    #pragma omp parallel for collapse(2) if (N * K >= (1L << 16))
    for (long kb = 0; kb < blocks; kb++)
        for (long j = 0; j < panels; j++) {
            const long k0 = kb * LA_BF_KC, kc = K - k0 < LA_BF_KC ? K - k0 : LA_BF_KC, nc = N - j * LA_BF_NR;
            la_bf_pack_b(tb, B, ldb, j * LA_BF_NR, nc < LA_BF_NR ? nc : LA_BF_NR, k0, kc,
                         dst + (size_t)kb * (LA_BF_KC / 2) * panels * LA_BF_NR + (size_t)j * ((kc + 1) / 2) * LA_BF_NR);
        }
    w->src = B; w->ld = ldb; w->n = N; w->k = K; w->tb = tb; w->epoch = la_bf16_epoch; w->amx = 0;
    return w->packed;
}

/* C[M, panels j0..j1 of N] on the calling thread, op(B) packed whole (la_bf16_pack_whole). */
LA_BF_TARGET static void la_bf16_gemm_packed_serial(int ta, long M, long j0, long j1, long N, long K, const float *A, long lda,
                                                  const uint32_t *Bw, float beta, float *C, long ldc) {
    if (M <= 0 || j1 <= j0) return;
    if (!la_bf_work) {
        la_bf_work = aligned_alloc(64, sizeof(uint32_t) * (LA_BF_KC / 2) * (LA_BF_MC + LA_BF_NC));
        if (!la_bf_work) { fputs("llama-align: out of memory for the bf16 products' packing workspace (2 MiB a thread)\n", stderr); exit(1); }
    }
    uint32_t *Ap = la_bf_work;
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR;
    for (long k0 = 0; k0 < K; k0 += LA_BF_KC) {
        const long kc = K - k0 < LA_BF_KC ? K - k0 : LA_BF_KC, kp = (kc + 1) / 2;
        const uint32_t *Bk = Bw + (size_t)(k0 / LA_BF_KC) * (LA_BF_KC / 2) * panels * LA_BF_NR;
        for (long m0 = 0; m0 < M; m0 += LA_BF_MC) {
            const long mc = M - m0 < LA_BF_MC ? M - m0 : LA_BF_MC;
            la_bf_pack_a(ta, A, lda, m0, mc, k0, kc, Ap);
            for (long j = j0; j < j1; j++)
                for (long i = 0; i < mc; i += LA_BF_MR)
                    la_bf_tile(kp, Ap + (i / LA_BF_MR) * kp * LA_BF_MR, Bk + (size_t)j * kp * LA_BF_NR,
                               C + (m0 + i) * ldc + j * LA_BF_NR, ldc, mc - i < LA_BF_MR ? mc - i : LA_BF_MR,
                               N - j * LA_BF_NR < LA_BF_NR ? N - j * LA_BF_NR : LA_BF_NR, k0 == 0, beta);
        }
    }
}

/* la_bf16_gemm with B a weight kept packed in `w` for the call: threads split C's rows, or
   its panels of 32 columns when C is wider than tall. */
LA_BF_TARGET static void la_bf16_gemm_weight(la_bf16_packed *w, int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc) {
    if (M <= 0 || N <= 0 || K <= 0) { la_bf16_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc); return; }
    la_blas_pool(0);
    if (la_bf16_amx()) { la_amx_gemm_weight(w, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc); return; }
    const uint32_t *Bw = la_bf16_pack_whole(w, tb, N, K, B, ldb);
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR;
    const int parallel = M * N * K >= (1L << 17);
    #pragma omp parallel if (parallel)
    {
        const long parts = omp_get_num_threads(), p = omp_get_thread_num();
        if (M >= N) {
            const long lo = M * p / parts, hi = M * (p + 1) / parts;
            la_bf16_gemm_packed_serial(ta, hi - lo, 0, panels, N, K, A + (ta ? lo : lo * lda), lda, Bw, beta, C + lo * ldc, ldc);
        } else {
            la_bf16_gemm_packed_serial(ta, M, panels * p / parts, panels * (p + 1) / parts, N, K, A, lda, Bw, beta, C, ldc);
        }
    }
}
"""#
}

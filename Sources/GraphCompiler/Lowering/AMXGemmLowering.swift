/// The AMX-BF16 path of a `.bf16` program's products: emitted after `BF16GemmLowering.support`
/// into each family's C file that has such a program. `la_bf16_gemm_serial` and
/// `la_bf16_gemm_weight` run it instead of their `vdpbf16ps` micro-kernel when `la_bf16_amx()`
/// (Sources/Kernels/la_amx.c: the CPU and the OS allow AMX, `LLAMA_ALIGN_AMX` is not 0); the
/// threads' split of a product is the same on both paths.
///
/// Same numbers in, same rounding: each operand is rounded to bfloat16 (nearest even) while it is
/// packed, products accumulate in float32 (`TDPBF16PS`). Layouts: A as rows of KC/2 bf16 pairs
/// (a 16-row tile is 16 such rows), B as panels of 32 columns × pairs of K (two 16-column tiles),
/// K padded with zeros to whole tiles (32 values). Micro-kernel: a 32 × 32 block of C in four
/// accumulator tiles (0–3), two A tiles (4, 5), two B tiles (6, 7). Compiled with the target
/// attribute `amx-tile,amx-bf16`, so any x86-64 compiler the package supports builds it; each
/// thread loads the tile configuration at the start of its part of a product and releases it
/// at the end.
enum AMXGemmLowering {
    /// The C the family's file includes once, right after `BF16GemmLowering.support`.
    static let support: String = #"""
/* AMX-BF16 products (see BF16GemmLowering's text for the contract). Blocks: KC values of K (a
   multiple of 32), MC rows of A, NC columns of B; a thread packs into its own workspace. */
#define LA_AMX_KC 512
#define LA_AMX_MC 128
#define LA_AMX_NC 512

static _Thread_local uint32_t *la_amx_work;

/* Palette 1, eight tiles of 16 rows × 64 bytes (16 floats, or 16 pairs of bf16). */
LA_AMX_TARGET static void la_amx_begin(void) {
    unsigned char cfg[64] __attribute__((aligned(64)));
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1;
    for (int t = 0; t < 8; t++) { cfg[16 + 2 * t] = 64; cfg[48 + t] = 16; }
    _tile_loadconfig(cfg);
}

/* Ap[r][p] = pair (k0+2p, k0+2p+1) of row i0 + r of op(A), r < mc rounded up to 16, p < kpad
   (a multiple of 16): rows past mc and K past kc are 0. */
LA_AMX_TARGET static void la_amx_pack_a(int ta, const float *A, long lda, long i0, long mc, long k0, long kc, long kpad, uint32_t *Ap) {
    const long rows = (mc + 15) / 16 * 16;
    if (!ta) {
        for (long r = 0; r < mc; r++) {
            const float *row = A + (i0 + r) * lda + k0;
            for (long p = 0; p < kpad; p += 16) _mm512_store_si512(Ap + r * kpad + p, la_bf_pairs16(row + 2 * p, kc - 2 * p));
        }
        memset(Ap + mc * kpad, 0, sizeof *Ap * (rows - mc) * kpad);
        return;
    }
    /* A stored [K, M]: 16 rows of op(A) at a time from two rows of A, then written down the rows */
    const long kp = (kc + 1) / 2;
    memset(Ap, 0, sizeof *Ap * rows * kpad);
    uint32_t tmp[16] __attribute__((aligned(64)));
    for (long p = 0; p < kp; p++) {
        const float *lo = A + (k0 + 2 * p) * lda + i0, *hi = lo + lda;
        const int has_hi = 2 * p + 1 < kc;
        for (long r = 0; r < mc; r += 16) {
            __m512i v = la_bf_load16(lo + r, mc - r);
            if (has_hi) v = _mm512_or_si512(v, _mm512_slli_epi32(la_bf_load16(hi + r, mc - r), 16));
            _mm512_store_si512(tmp, v);
            const long q1 = mc - r < 16 ? mc - r : 16;
            for (long q = 0; q < q1; q++) Ap[(r + q) * kpad + p] = tmp[q];
        }
    }
}

/* Panels of 32 columns n0.. of op(B), each kpad pairs × 32 (vdpbf16ps's panel, padded with zero pairs). */
LA_AMX_TARGET static void la_amx_pack_b(int tb, const float *B, long ldb, long n0, long nc, long k0, long kc, long kpad, uint32_t *Bp) {
    const long kp = (kc + 1) / 2;
    for (long j = 0; j * LA_BF_NR < nc; j++) {
        uint32_t *panel = Bp + j * kpad * LA_BF_NR;
        const long w = nc - j * LA_BF_NR < LA_BF_NR ? nc - j * LA_BF_NR : LA_BF_NR;
        la_bf_pack_b(tb, B, ldb, n0 + j * LA_BF_NR, w, k0, kc, panel);
        memset(panel + kp * LA_BF_NR, 0, sizeof *panel * (kpad - kp) * LA_BF_NR);
    }
}

/* C[mr, nr] (mr, nr ≤ 32) = buf[mr, nr] + (first ? beta·C : C), buf 32 × 32 floats. */
LA_AMX_TARGET static void la_amx_merge(const float *buf, float *c, long ldc, long mr, long nr, int first, float beta) {
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1), m1 = (__mmask16)(nr >= 32 ? 0xffff : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
    const float b = first ? beta : 1.0f;
    for (long i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m512 x0 = _mm512_load_ps(buf + 32 * i), x1 = _mm512_load_ps(buf + 32 * i + 16);
        if (b != 0.0f) {
            x0 = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_maskz_loadu_ps(m0, ci), x0);
            x1 = _mm512_fmadd_ps(_mm512_set1_ps(b), _mm512_maskz_loadu_ps(m1, ci + 16), x1);
        }
        _mm512_mask_storeu_ps(ci, m0, x0);
        _mm512_mask_storeu_ps(ci + 16, m1, x1);
    }
}

/* C[mr, nr] (mr, nr ≤ 32) = Σ_p A rows · B panel + (first ? beta·C : C): tiles 0,1 are C's rows
   0–15 (columns 0–15, 16–31), tiles 2,3 rows 16–31 (only when mr > 16). A whole 32 × 32 block
   accumulates on top of C loaded into the tiles; an edge block goes through `buf`. */
LA_AMX_TARGET static void la_amx_tile(long kpad, const uint32_t *ap, const uint32_t *bp, float *c, long ldc,
                                    long mr, long nr, int first, float beta, float *buf) {
    const long sa = kpad * 4, sb = LA_BF_NR * 4, sc = ldc * 4;
    const int two = mr > 16, direct = mr == 32 && nr == 32 && (!first || beta == 0.0f || beta == 1.0f);
    if (direct && !(first && beta == 0.0f)) {
        _tile_loadd(0, c, sc); _tile_loadd(1, c + 16, sc); _tile_loadd(2, c + 16 * ldc, sc); _tile_loadd(3, c + 16 * ldc + 16, sc);
    } else {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    }
    for (long p = 0; p < kpad; p += 16) {
        _tile_loadd(6, bp + p * LA_BF_NR, sb);
        _tile_loadd(7, bp + p * LA_BF_NR + 16, sb);
        _tile_loadd(4, ap + p, sa);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
            _tile_loadd(5, ap + 16 * kpad + p, sa);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    if (direct) {
        _tile_stored(0, c, sc); _tile_stored(1, c + 16, sc); _tile_stored(2, c + 16 * ldc, sc); _tile_stored(3, c + 16 * ldc + 16, sc);
        return;
    }
    _tile_stored(0, buf, 128); _tile_stored(1, buf + 16, 128);
    if (two) { _tile_stored(2, buf + 512, 128); _tile_stored(3, buf + 512 + 16, 128); }
    la_amx_merge(buf, c, ldc, mr, nr, first, beta);
}

/* C[mc, nc] of one K block: packed A rows (Ap) times packed panels (Bp), 32 × 32 blocks. */
LA_AMX_TARGET static void la_amx_block(long kpad, const uint32_t *Ap, long mc, const uint32_t *Bp, long nc,
                                     float *C, long ldc, int first, float beta) {
    float buf[32 * 32] __attribute__((aligned(64)));
    for (long j = 0; j < nc; j += 32)
        for (long i = 0; i < mc; i += 32)
            la_amx_tile(kpad, Ap + i * kpad, Bp + (j / 32) * kpad * LA_BF_NR, C + i * ldc + j, ldc,
                        mc - i < 32 ? mc - i : 32, nc - j < 32 ? nc - j : 32, first, beta, buf);
}

/* The thread's packing workspace: KC/2 pairs × (MC rows + NC columns). */
static uint32_t *la_amx_workspace(void) {
    if (!la_amx_work) {
        la_amx_work = aligned_alloc(64, sizeof(uint32_t) * (LA_AMX_KC / 2) * (LA_AMX_MC + LA_AMX_NC));
        if (!la_amx_work) { fputs("llama-align: out of memory for the AMX products' packing workspace (1.3 MiB a thread)\n", stderr); exit(1); }
    }
    return la_amx_work;
}

/* la_bf16_gemm_serial on AMX tiles (M, N, K > 0). */
LA_AMX_TARGET static void la_amx_gemm_serial(int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc) {
    uint32_t *Ap = la_amx_workspace(), *Bp = Ap + (LA_AMX_KC / 2) * LA_AMX_MC;
    la_amx_begin();
    for (long k0 = 0; k0 < K; k0 += LA_AMX_KC) {
        const long kc = K - k0 < LA_AMX_KC ? K - k0 : LA_AMX_KC, kpad = (kc + 31) / 32 * 16;
        for (long n0 = 0; n0 < N; n0 += LA_AMX_NC) {
            const long nc = N - n0 < LA_AMX_NC ? N - n0 : LA_AMX_NC;
            la_amx_pack_b(tb, B, ldb, n0, nc, k0, kc, kpad, Bp);
            for (long m0 = 0; m0 < M; m0 += LA_AMX_MC) {
                const long mc = M - m0 < LA_AMX_MC ? M - m0 : LA_AMX_MC;
                la_amx_pack_a(ta, A, lda, m0, mc, k0, kc, kpad, Ap);
                la_amx_block(kpad, Ap, mc, Bp, nc, C + m0 * ldc + n0, ldc, k0 == 0, beta);
            }
        }
    }
    _tile_release();
}

/* op(B)[K,N] packed whole for AMX: block kb (KC values of K) at kb·(KC/2)·panels·32, its panel j
   at j·kpad·32 (kpad: the block's pairs rounded up to 16). */
LA_AMX_TARGET static const uint32_t *la_amx_pack_whole(la_bf16_packed *w, int tb, long N, long K, const float *B, long ldb) {
    if (w->packed && w->amx && w->src == B && w->epoch == la_bf16_epoch && w->ld == ldb && w->n == N && w->k == K && w->tb == tb) return w->packed;
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR, blocks = (K + LA_AMX_KC - 1) / LA_AMX_KC;
    const size_t need = (size_t)blocks * (LA_AMX_KC / 2) * panels * LA_BF_NR;
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
            const long k0 = kb * LA_AMX_KC, kc = K - k0 < LA_AMX_KC ? K - k0 : LA_AMX_KC, kpad = (kc + 31) / 32 * 16, nc = N - j * LA_BF_NR;
            la_amx_pack_b(tb, B, ldb, j * LA_BF_NR, nc < LA_BF_NR ? nc : LA_BF_NR, k0, kc, kpad,
                          dst + (size_t)kb * (LA_AMX_KC / 2) * panels * LA_BF_NR + (size_t)j * kpad * LA_BF_NR);
        }
    w->src = B; w->ld = ldb; w->n = N; w->k = K; w->tb = tb; w->epoch = la_bf16_epoch; w->amx = 1;
    return w->packed;
}

/* C[M, panels j0..j1 of N] on the calling thread, op(B) packed whole (la_amx_pack_whole). */
LA_AMX_TARGET static void la_amx_gemm_packed_serial(int ta, long M, long j0, long j1, long N, long K, const float *A, long lda,
                                                  const uint32_t *Bw, float beta, float *C, long ldc) {
    if (M <= 0 || j1 <= j0) return;
    uint32_t *Ap = la_amx_workspace();
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR, n0 = j0 * LA_BF_NR, n1 = j1 * LA_BF_NR < N ? j1 * LA_BF_NR : N;
    la_amx_begin();
    for (long k0 = 0; k0 < K; k0 += LA_AMX_KC) {
        const long kc = K - k0 < LA_AMX_KC ? K - k0 : LA_AMX_KC, kpad = (kc + 31) / 32 * 16;
        const uint32_t *Bk = Bw + (size_t)(k0 / LA_AMX_KC) * (LA_AMX_KC / 2) * panels * LA_BF_NR + (size_t)j0 * kpad * LA_BF_NR;
        for (long m0 = 0; m0 < M; m0 += LA_AMX_MC) {
            const long mc = M - m0 < LA_AMX_MC ? M - m0 : LA_AMX_MC;
            la_amx_pack_a(ta, A, lda, m0, mc, k0, kc, kpad, Ap);
            la_amx_block(kpad, Ap, mc, Bk, n1 - n0, C + m0 * ldc + n0, ldc, k0 == 0, beta);
        }
    }
    _tile_release();
}

/* la_bf16_gemm_weight on AMX tiles (M, N, K > 0; the caller has taken the threads back). */
LA_AMX_TARGET static void la_amx_gemm_weight(la_bf16_packed *w, int ta, int tb, long M, long N, long K, const float *A, long lda,
                                           const float *B, long ldb, float beta, float *C, long ldc) {
    const uint32_t *Bw = la_amx_pack_whole(w, tb, N, K, B, ldb);
    const long panels = (N + LA_BF_NR - 1) / LA_BF_NR;
    const int parallel = M * N * K >= (1L << 17);
    #pragma omp parallel if (parallel)
    {
        const long parts = omp_get_num_threads(), p = omp_get_thread_num();
        if (M >= N) {
            const long lo = M * p / parts, hi = M * (p + 1) / parts;
            la_amx_gemm_packed_serial(ta, hi - lo, 0, panels, N, K, A + (ta ? lo : lo * lda), lda, Bw, beta, C + lo * ldc, ldc);
        } else {
            la_amx_gemm_packed_serial(ta, M, panels * p / parts, panels * (p + 1) / parts, N, K, A, lda, Bw, beta, C, ldc);
        }
    }
}
"""#
}

// Runtime support for the emitted kernels: one thread pool, and the product helpers that split
// a matrix product over it. Hand-written (threads and BLAS glue), not a kernel.
#include "la_runtime.h"

/* ---- threads --------------------------------------------------------------------------- */

/* The kernels' OpenMP threads split every product; OpenBLAS itself runs on the calling thread
   (its own pool would spin after each call beside the next kernel). OpenBLAS starts with its
   pool (sized from the cores when it loads): lent. */
static int la_threads = 0, la_lent = 1;

void la_set_num_threads(int n) {
    la_threads = n;
    la_lent = 0;
    omp_set_num_threads(n);
    la_blas_set_threads(1);
}

int la_num_threads(void) { return omp_get_max_threads(); }

void la_blas_pool(int lend) {
    if (lend == la_lent) return;
    la_lent = lend;
    if (la_threads == 0) la_threads = omp_get_max_threads();
    la_blas_set_threads(lend ? la_threads : 1);
}

/* ---- products -------------------------------------------------------------------------- */

/* Products with fewer multiply-adds run on the calling thread. */
static const long la_gemm_parallel_work = 1L << 17;

/* c[1,N] = a[1,K] · op(B): with B stored [N,K] (tb) that is B·a, stored [K,N] it is Bᵀ·a. */
static void la_gemv_row(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, long N, long K,
                        const float *A, long lda, const float *B, long ldb, float beta, float *C) {
    const int bt = tb == CblasTrans;
    la_sgemv(CblasRowMajor, bt ? CblasNoTrans : CblasTrans, bt ? N : K, bt ? K : N, 1.0f, B, ldb,
             A, ta == CblasTrans ? lda : 1, beta, C, 1);
}

void la_gemm_serial(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, long M, long N, long K,
                    const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
    if (M == 1) la_gemv_row(ta, tb, N, K, A, lda, B, ldb, beta, C);
    else la_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

void la_gemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, long M, long N, long K,
             const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc) {
    if (M == 1) {
        /* Decode: bound by streaming the weights, which OpenBLAS's own threads do best. */
        la_blas_pool(1);
        la_gemv_row(ta, tb, N, K, A, lda, B, ldb, beta, C);
        return;
    }
    const int parallel = M * N * K >= la_gemm_parallel_work;
    if (parallel) la_blas_pool(0);
    #pragma omp parallel if (parallel)
    {
        const long parts = omp_get_num_threads(), p = omp_get_thread_num();
        if (M >= N) {
            /* a block of C's rows: A's rows, or its columns when A is read transposed */
            const long lo = M * p / parts, hi = M * (p + 1) / parts;
            if (hi > lo)
                la_sgemm(CblasRowMajor, ta, tb, hi - lo, N, K, 1.0f, A + (ta == CblasTrans ? lo : lo * lda), lda,
                         B, ldb, beta, C + lo * ldc, ldc);
        } else {
            /* a block of C's columns: B's rows when stored [N,K], else its columns */
            const long lo = N * p / parts, hi = N * (p + 1) / parts;
            if (hi > lo)
                la_sgemm(CblasRowMajor, ta, tb, M, hi - lo, K, 1.0f, A, lda,
                         B + (tb == CblasTrans ? lo * ldb : lo), ldb, beta, C + lo, ldc);
        }
    }
}

/* The runtime support the emitted kernels call: hand-written, checked in (Sources/Kernels),
   never generated. The compiled programs themselves are declared in the generated
   la_programs.h. */
#pragma once
#include <stdint.h>
#include <time.h>
#include <math.h>
#include <cblas.h>

/* Matrix products: OpenBLAS's, loaded by la_blas.c with the kernels chosen for this CPU's
   features; the emitted code calls them through these pointers or through la_gemm. */
extern __typeof__(cblas_sgemm) *la_sgemm;
extern __typeof__(cblas_sgemv) *la_sgemv;
/* OpenBLAS's own pool size (openblas_set_num_threads). */
void la_blas_set_threads(int n);

/* C[M,N] = op(A)[M,K] · op(B)[K,N] + beta · C, row major (la_runtime.c). The kernels' OpenMP
   threads split C along its longer side, each calling single-threaded OpenBLAS; products
   under 2^17 multiply-adds stay on the calling thread. One row (M = 1, decode) is a
   matrix-vector product on OpenBLAS's own pool, lent until the next split product. */
void la_gemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, long M, long N, long K,
             const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc);
/* The same product on the calling thread only (one batch element of a batched product, whose
   threads take batch elements); M = 1 is a matrix-vector product. */
void la_gemm_serial(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, long M, long N, long K,
                    const float *A, long lda, const float *B, long ldb, float beta, float *C, long ldc);

/* One compiled program, callable through its argument struct (every field 8 bytes). */
typedef struct {
    const char *name;
    int n_fields;
    int n_kernels;
    const char *const *kernel_names;
    void (*run)(const void *args);
    long (*arena_floats)(const void *args);
    void (*costs)(const void *args, double *flops, double *bytes);
} la_program_info;

/* Threads of the kernels (OpenMP; OpenBLAS runs single-threaded inside them). */
void la_set_num_threads(int n);
int la_num_threads(void);
/* Lends the kernels' threads to OpenBLAS's own pool (1) or takes them back (0); called
   outside parallel regions only. */
void la_blas_pool(int lend);
/* The bf16 products' path (la_amx.c): 1 when they run on AMX-BF16 tiles (the CPU and the OS
   allow it and LLAMA_ALIGN_AMX is not 0), 0 for AVX-512 BF16 (vdpbf16ps). */
int la_bf16_amx(void);
/* 1 when the CPU and the OS allow AMX-BF16 (whatever LLAMA_ALIGN_AMX says). */
int la_bf16_amx_allowed(void);
/* Turns the AMX path on (only where allowed) or off for the whole process; returns the path now
   in use. Between program calls only (tests and benchmarks compare the two paths). */
int la_bf16_set_amx(int on);
/* Why the AMX path is not in use ("" when it is). */
const char *la_bf16_amx_reason(void);
/* From libomp (declared here: the toolchain's clang does not ship omp.h). */
int omp_get_num_threads(void);
int omp_get_thread_num(void);
int omp_get_max_threads(void);
void omp_set_num_threads(int num_threads);

static inline long la_max(long a, long b) { return a > b ? a : b; }

/* expf whose argument below -87 (a masked score's -INFINITY, ...) gives exactly 0 without
   handing the whole SIMD vector to the vector library's slow special-case path (it took
   the masked softmax from 12.5 to 3.8 ms a step); subnormal results flush to 0, NaN stays NaN. */
static inline float la_expf(float x) { return x >= -87.0f ? expf(fmaxf(x, -87.0f)) : (x != x ? x : 0.0f); }
/* The `random` op's counter-based generator (TensorGraph's CounterRandom, the same formula): a
   uniform float in [0, 1) that is a pure function of a 32-bit key and an element's flat index. */
static inline uint32_t la_mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x21f0aaadu; x ^= x >> 15; x *= 0x735a2d97u; x ^= x >> 15;
    return x;
}
static inline float la_uniform(uint32_t key, long i) {
    uint32_t hi = (uint32_t)((uint64_t)i >> 32), lo = (uint32_t)(uint64_t)i;
    uint32_t h = la_mix32(la_mix32(lo ^ la_mix32(key + 0x9e3779b9u * hi)) ^ key);
    return (float)(h >> 8) * 0x1p-24f;
}
/* Rounds a float count up to 64 bytes. */
static inline long la_round16(long n) { return (n + 15) / 16 * 16; }

/* The profiling buffer's layout, in doubles (the runtime's CompiledProgram reads the same
   constants): [LA_PROF_CAPACITY] event capacity, [LA_PROF_RECORDED] events recorded, then per
   kernel k [LA_PROF_KERNELS + 2k] nanoseconds and [LA_PROF_KERNELS + 2k + 1] calls, then events
   of LA_PROF_EVENT_SIZE doubles (kernel, start ns, end ns) from LA_PROF_KERNELS + 2 * n_kernels. */
enum { LA_PROF_CAPACITY = 0, LA_PROF_RECORDED = 1, LA_PROF_KERNELS = 2, LA_PROF_EVENT_SIZE = 3 };

/* Kernel timing, free when profiling is off (prof == NULL). */
static inline long la_tick(const double *prof) {
    if (!prof) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}
/* Runs a kernel call, timing it as kernel k of n when profiling is on. */
#define LA_TIMED(prof, k, n, ...) do { long la_start_ = la_tick(prof); __VA_ARGS__; la_tock(prof, k, n, la_start_); } while (0)
static inline void la_tock(double *prof, int kernel, int n_kernels, long start) {
    if (!prof) return;
    long end = la_tick(prof);
    prof[LA_PROF_KERNELS + 2 * kernel] += (double)(end - start);
    prof[LA_PROF_KERNELS + 2 * kernel + 1] += 1.0;
    if (prof[LA_PROF_RECORDED] < prof[LA_PROF_CAPACITY]) {
        double *e = prof + LA_PROF_KERNELS + 2 * n_kernels + LA_PROF_EVENT_SIZE * (long)prof[LA_PROF_RECORDED];
        e[0] = kernel; e[1] = (double)start; e[2] = (double)end;
        prof[LA_PROF_RECORDED] += 1.0;
    }
}

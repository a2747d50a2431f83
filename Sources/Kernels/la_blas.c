// BLAS glue: choose OpenBLAS's matrix kernels from the CPU's features, then load OpenBLAS.
//
// Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernels from a table of CPU models; on
// a model it does not know it falls back to generic SSE kernels (an Intel Xeon family 6 model
// 207 gets "Prescott": ~60 GFLOP/s instead of ~290). OpenBLAS reads OPENBLAS_CORETYPE once,
// when it is loaded, so the kernels cannot link it: this file reads CPUID, names the best core
// for the features present, and dlopens OpenBLAS with that name set — before main, from a
// constructor, so the CLI, the library API and the tests all get the same path. A user's own
// OPENBLAS_CORETYPE wins. Hand-written runtime support, not a kernel.
#define _GNU_SOURCE
#include "la_blas.h"

#include <cblas.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- CPU features ---------------------------------------------------------------------- */

static const char *const la_feature_names[LA_CPU_FEATURE_COUNT] = {
    "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
};

const char *la_cpu_feature_name(int bit) {
    return bit >= 0 && bit < LA_CPU_FEATURE_COUNT ? la_feature_names[bit] : "";
}

/* XCR0: which register states the OS saves (0 when the CPU has no XGETBV). */
static uint64_t la_xcr0(int osxsave) {
    if (!osxsave) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Vendor, brand, family/model/stepping and LA_CPU_* features of this CPU. */
static void la_cpu_read(la_blas_path *p) {
    unsigned a, b, c, d, max_leaf;
    if (!__get_cpuid(0, &max_leaf, &b, &c, &d)) return;
    memcpy(p->vendor, &b, 4); memcpy(p->vendor + 4, &d, 4); memcpy(p->vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    p->family = (int)(base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family);
    p->model = (int)(base_family == 0x6 || base_family == 0xf ? (((a >> 16) & 0xf) << 4) + base_model : base_model);
    p->stepping = (int)(a & 0xf);
    uint64_t xcr0 = la_xcr0((c >> 27) & 1);
    int ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0, tiles = (xcr0 & 0x60000) == 0x60000;
    uint32_t f = 0;
    if (ymm && (c >> 28 & 1)) f |= LA_CPU_AVX;
    if (ymm && (c >> 12 & 1)) f |= LA_CPU_FMA;
    if (max_leaf >= 7) {
        unsigned a7, b7, c7, d7;
        __cpuid_count(7, 0, a7, b7, c7, d7);
        if (ymm && (b7 >> 5 & 1)) f |= LA_CPU_AVX2;
        if (zmm && (b7 >> 16 & 1)) f |= LA_CPU_AVX512F;
        if (zmm && (b7 >> 17 & 1)) f |= LA_CPU_AVX512DQ;
        if (zmm && (b7 >> 28 & 1)) f |= LA_CPU_AVX512CD;
        if (zmm && (b7 >> 30 & 1)) f |= LA_CPU_AVX512BW;
        if (zmm && (b7 >> 31 & 1)) f |= LA_CPU_AVX512VL;
        if (zmm && (c7 >> 11 & 1)) f |= LA_CPU_AVX512_VNNI;
        if (tiles && (d7 >> 24 & 1)) f |= LA_CPU_AMX_TILE;
        if (tiles && (d7 >> 22 & 1)) f |= LA_CPU_AMX_BF16;
        if (tiles && (d7 >> 25 & 1)) f |= LA_CPU_AMX_INT8;
        if (a7 >= 1) {
            __cpuid_count(7, 1, a7, b7, c7, d7);
            if (zmm && (a7 >> 5 & 1)) f |= LA_CPU_AVX512_BF16;
            if (ymm && (a7 >> 4 & 1)) f |= LA_CPU_AVX_VNNI;
        }
    }
    p->features = f;
    unsigned ext_max;
    __get_cpuid(0x80000000, &ext_max, &b, &c, &d);
    if (ext_max >= 0x80000004) {
        unsigned *w = (unsigned *)p->brand;
        for (unsigned leaf = 0; leaf < 3; leaf++)
            __get_cpuid(0x80000002 + leaf, &w[4 * leaf], &w[4 * leaf + 1], &w[4 * leaf + 2], &w[4 * leaf + 3]);
        p->brand[48] = 0;
    }
}

/* ---- the choice ------------------------------------------------------------------------ */

const char *la_blas_core_for(uint32_t f) {
    const uint32_t skx = LA_CPU_AVX512F | LA_CPU_AVX512DQ | LA_CPU_AVX512CD | LA_CPU_AVX512BW | LA_CPU_AVX512VL;
    /* OpenBLAS 0.3.21 has no Sapphire Rapids core: AMX machines get Cooperlake (AVX-512 + BF16). */
    if ((f & skx) == skx && (f & LA_CPU_AVX512_BF16)) return "Cooperlake";
    if ((f & skx) == skx) return "SkylakeX";
    if ((f & (LA_CPU_AVX2 | LA_CPU_FMA)) == (LA_CPU_AVX2 | LA_CPU_FMA)) return "Haswell";
    if (f & LA_CPU_AVX) return "SandyBridge";
    return NULL;
}

const char *la_blas_core_isa(const char *core) {
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2[] = {"Haswell", "Zen", "Excavator"};
    static const char *const avx[] = {"SandyBridge", "Bulldozer", "Piledriver", "Steamroller"};
    static const char *const sse[] = {"Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2",
        "Penryn", "Dunnington", "Nehalem", "Atom", "Athlon", "Opteron", "Opteron(SSE3)", "Barcelona",
        "Bobcat", "Nano", "Generic"};
    for (unsigned i = 0; i < sizeof avx512 / sizeof *avx512; i++) if (!strcasecmp(core, avx512[i])) return "avx512";
    for (unsigned i = 0; i < sizeof avx2 / sizeof *avx2; i++) if (!strcasecmp(core, avx2[i])) return "avx2";
    for (unsigned i = 0; i < sizeof avx / sizeof *avx; i++) if (!strcasecmp(core, avx[i])) return "avx";
    for (unsigned i = 0; i < sizeof sse / sizeof *sse; i++) if (!strcasecmp(core, sse[i])) return "sse";
    return "unknown";
}

/* ---- loading OpenBLAS ------------------------------------------------------------------ */

static la_blas_path la_path;
static void (*la_openblas_set_threads)(int);

static void la_blas_missing(void) {
    fprintf(stderr, "llama-align: no matrix kernels: %s\n", la_path.error);
    exit(1);
}
static void la_sgemm_missing(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                             const blasint m, const blasint n, const blasint k, const float alpha, const float *a,
                             const blasint lda, const float *b, const blasint ldb, const float beta, float *c, const blasint ldc) {
    (void)o; (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
    la_blas_missing();
}
static void la_sgemv_missing(const enum CBLAS_ORDER o, const enum CBLAS_TRANSPOSE t, const blasint m, const blasint n,
                             const float alpha, const float *a, const blasint lda, const float *x, const blasint incx,
                             const float beta, float *y, const blasint incy) {
    (void)o; (void)t; (void)m; (void)n; (void)alpha; (void)a; (void)lda; (void)x; (void)incx; (void)beta; (void)y; (void)incy;
    la_blas_missing();
}

/* The products the emitted kernels call (declared in the generated la_runtime.h). */
__typeof__(cblas_sgemm) *la_sgemm = la_sgemm_missing;
__typeof__(cblas_sgemv) *la_sgemv = la_sgemv_missing;

static void la_copy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

/* Decides the core, loads OpenBLAS with it, resolves the symbols. Runs once. */
static void la_blas_load(void) {
    la_cpu_read(&la_path);
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *chosen = la_blas_core_for(la_path.features);
    int set_here = 0;
    if (user && *user) {
        la_path.source = LA_CORE_BY_USER;
        la_copy(la_path.requested, sizeof la_path.requested, user);
    } else if (chosen) {
        la_path.source = LA_CORE_BY_FEATURES;
        la_copy(la_path.requested, sizeof la_path.requested, chosen);
        set_here = setenv("OPENBLAS_CORETYPE", chosen, 1) == 0;
    } else {
        la_path.source = LA_CORE_BY_OPENBLAS;
    }
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    /* Child processes see the environment as the user left it. */
    if (set_here) unsetenv("OPENBLAS_CORETYPE");
    if (!h) {
        snprintf(la_path.error, sizeof la_path.error, "could not load OpenBLAS (libopenblas.so.0): %s; install libopenblas0 (bash .ci/install-deps)", dlerror());
        return;
    }
    void *gemm = dlsym(h, "cblas_sgemm"), *gemv = dlsym(h, "cblas_sgemv");
    char *(*corename)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    char *(*config)(void) = (char *(*)(void))dlsym(h, "openblas_get_config");
    la_openblas_set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (!gemm || !gemv) {
        snprintf(la_path.error, sizeof la_path.error, "the OpenBLAS library found has no cblas_sgemm/cblas_sgemv");
        return;
    }
    la_sgemm = (__typeof__(cblas_sgemm) *)gemm;
    la_sgemv = (__typeof__(cblas_sgemv) *)gemv;
    la_copy(la_path.core, sizeof la_path.core, corename ? corename() : "unknown");
    la_copy(la_path.config, sizeof la_path.config, config ? config() : "");
    Dl_info info;
    if (dladdr(gemm, &info) && info.dli_fname) la_copy(la_path.library, sizeof la_path.library, info.dli_fname);
}

static pthread_once_t la_blas_once = PTHREAD_ONCE_INIT;

/* Before main: nothing has loaded OpenBLAS yet, and no other thread reads the environment. */
__attribute__((constructor)) static void la_blas_startup(void) { pthread_once(&la_blas_once, la_blas_load); }

const la_blas_path *la_blas_info(void) {
    pthread_once(&la_blas_once, la_blas_load);
    return &la_path;
}

void la_blas_set_threads(int n) {
    pthread_once(&la_blas_once, la_blas_load);
    if (la_openblas_set_threads) la_openblas_set_threads(n);
}

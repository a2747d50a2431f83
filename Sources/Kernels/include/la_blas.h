// The matrix-kernel path: which CPU this is, which OpenBLAS core runs the products, and why.
// Hand-written runtime support (la_blas.c); the emitted kernels call OpenBLAS through the
// pointers `la_sgemm` / `la_sgemv` declared in the generated la_runtime.h.
#pragma once
#include <stdint.h>

/* CPU features the choice looks at (bits of la_blas_path.features). A feature counts only
   when the CPU has it and the OS saves its registers (XCR0). */
enum {
    LA_CPU_AVX = 1u << 0,
    LA_CPU_FMA = 1u << 1,
    LA_CPU_AVX2 = 1u << 2,
    LA_CPU_AVX512F = 1u << 3,
    LA_CPU_AVX512DQ = 1u << 4,
    LA_CPU_AVX512CD = 1u << 5,
    LA_CPU_AVX512BW = 1u << 6,
    LA_CPU_AVX512VL = 1u << 7,
    LA_CPU_AVX512_VNNI = 1u << 8,
    LA_CPU_AVX512_BF16 = 1u << 9,
    LA_CPU_AMX_TILE = 1u << 10,
    LA_CPU_AMX_BF16 = 1u << 11,
    LA_CPU_AMX_INT8 = 1u << 12,
    LA_CPU_AVX_VNNI = 1u << 13,
};
/* Number of feature bits above, and the name of bit i ("avx2", ...). */
#define LA_CPU_FEATURE_COUNT 14
const char *la_cpu_feature_name(int bit);

/* How the OpenBLAS core was decided. */
enum {
    LA_CORE_BY_FEATURES = 0,   /* this runtime chose it from the CPU's features */
    LA_CORE_BY_USER = 1,       /* OPENBLAS_CORETYPE was set in the environment: it wins */
    LA_CORE_BY_OPENBLAS = 2,   /* no AVX at all: OpenBLAS's own detection */
};

/* Everything a bug report needs about the matrix kernels. Strings are never NULL. */
typedef struct {
    char vendor[16];         /* "GenuineIntel", "AuthenticAMD", ... */
    char brand[64];          /* the CPU's brand string */
    int family, model, stepping;
    uint32_t features;       /* LA_CPU_* bits */
    int source;              /* LA_CORE_* */
    char requested[32];      /* the core asked of OpenBLAS (by features or by the user), "" if none */
    char core[32];           /* what OpenBLAS runs: openblas_get_corename() */
    char config[160];        /* openblas_get_config() */
    char library[256];       /* the shared object loaded */
    char error[256];         /* "" when OpenBLAS is loaded */
} la_blas_path;

/* Loads OpenBLAS once (thread-safe; also done before main by a constructor) and returns the path. */
const la_blas_path *la_blas_info(void);

/* The OpenBLAS core this runtime asks for on a CPU with `features` (LA_CPU_* bits), or NULL
   when OpenBLAS's own detection is left to choose (no AVX). Pure: tests call it directly. */
const char *la_blas_core_for(uint32_t features);

/* The widest vector ISA an OpenBLAS core name's kernels use: "avx512", "avx2", "avx",
   "sse" (a generic fallback on any CPU with AVX2), or "unknown". */
const char *la_blas_core_isa(const char *core);

/* OpenBLAS's own thread pool size (openblas_set_num_threads). */
void la_blas_set_threads(int n);

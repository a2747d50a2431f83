// AMX detection for the bf16 products: whether the emitted AMX-BF16 path may run in this
// process. Hand-written runtime support, not a kernel (the products are emitted by
// GraphCompiler's AMXGemmLowering).
//
// AMX needs three things: the CPU's AMX-TILE and AMX-BF16 bits (CPUID 7.0 EDX 24 and 22), the OS
// saving tile state (XCR0 bits 17 and 18; la_blas.c's feature bits count only when both hold),
// and on Linux the process's permission for the 8 KiB XTILEDATA state, asked once with
// arch_prctl(ARCH_REQ_XCOMP_PERM) — without it the first tile instruction faults. LLAMA_ALIGN_AMX=0
// in the environment keeps the products on AVX-512 BF16 (vdpbf16ps).
#define _GNU_SOURCE
#include "la_runtime.h"
#include "la_blas.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define LA_ARCH_GET_XCOMP_PERM 0x1022
#define LA_ARCH_REQ_XCOMP_PERM 0x1023
#define LA_XFEATURE_XTILEDATA 18

static pthread_once_t la_amx_once = PTHREAD_ONCE_INIT;
static int la_amx_allowed;     /* the CPU and the OS allow AMX-BF16 */
static int la_amx_on;          /* the bf16 products use it (allowed, and not turned off) */
static char la_amx_why[160];

/* Asks Linux for the tile data state (once per process; every thread shares it). */
static int la_amx_permission(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    unsigned long granted = 0;
    if (syscall(SYS_arch_prctl, LA_ARCH_GET_XCOMP_PERM, &granted) == 0 && (granted >> LA_XFEATURE_XTILEDATA & 1)) return 1;
    if (syscall(SYS_arch_prctl, LA_ARCH_REQ_XCOMP_PERM, LA_XFEATURE_XTILEDATA) != 0) return 0;
    return syscall(SYS_arch_prctl, LA_ARCH_GET_XCOMP_PERM, &granted) == 0 && (granted >> LA_XFEATURE_XTILEDATA & 1);
#else
    return 0;
#endif
}

static void la_amx_init(void) {
    const uint32_t f = la_blas_info()->features, need = LA_CPU_AMX_TILE | LA_CPU_AMX_BF16 | LA_CPU_AVX512_BF16;
    if ((f & need) != need) {
        snprintf(la_amx_why, sizeof la_amx_why, "%s", "this CPU (or its OS) has no AMX-BF16");
    } else if (!la_amx_permission()) {
        snprintf(la_amx_why, sizeof la_amx_why, "%s", "the OS refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)");
    } else {
        la_amx_allowed = 1;
    }
    const char *env = getenv("LLAMA_ALIGN_AMX");
    const int off = env && (!strcmp(env, "0") || !strcasecmp(env, "off") || !strcasecmp(env, "false") || !strcasecmp(env, "no"));
    la_amx_on = la_amx_allowed && !off;
    if (la_amx_allowed && off) snprintf(la_amx_why, sizeof la_amx_why, "%s", "turned off by LLAMA_ALIGN_AMX");
}

int la_bf16_amx_allowed(void) {
    pthread_once(&la_amx_once, la_amx_init);
    return la_amx_allowed;
}

int la_bf16_amx(void) {
    pthread_once(&la_amx_once, la_amx_init);
    return __atomic_load_n(&la_amx_on, __ATOMIC_RELAXED);
}

int la_bf16_set_amx(int on) {
    pthread_once(&la_amx_once, la_amx_init);
    __atomic_store_n(&la_amx_on, on && la_amx_allowed, __ATOMIC_RELAXED);
    return la_amx_on;
}

const char *la_bf16_amx_reason(void) {
    pthread_once(&la_amx_once, la_amx_init);
    return la_amx_on ? "" : la_amx_why[0] ? la_amx_why : "turned off";
}

// Open MPI glue: loads libmpi at run time so the package builds and runs without it, and joins
// the job only when `mpirun` started this process. Hand-written runtime support, not a kernel.
//
// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the addresses
// of exported globals (`ompi_mpi_comm_world`, ...); MPI_IN_PLACE is ((void *) 1). Both are
// part of Open MPI's ABI for the soname libmpi.so.40 (Open MPI 3.x to 5.x).
#define _GNU_SOURCE
#include "la_mpi.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void *la_mpi_handle;

static struct {
    int started, rank, size;
    int (*init)(int *, char ***);
    int (*finalize)(void);
    int (*comm_rank)(la_mpi_handle, int *);
    int (*comm_size)(la_mpi_handle, int *);
    int (*allreduce)(const void *, void *, int, la_mpi_handle, la_mpi_handle, la_mpi_handle);
    int (*barrier)(la_mpi_handle);
    int (*abort_)(la_mpi_handle, int);
    la_mpi_handle world, f32, f64, sum;
    double reduce_seconds;   /* wall time spent in MPI_Allreduce so far */
} la_mpi = {.rank = 0, .size = 1};

#define LA_MPI_IN_PLACE ((void *)1)

static int la_env_int(const char *name, int fallback) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : fallback;
}

/* Looks up one symbol; on failure writes the message and returns NULL. */
static void *la_mpi_symbol(void *lib, const char *name, char *err, size_t errlen) {
    void *p = dlsym(lib, name);
    if (!p) snprintf(err, errlen, "Open MPI's libmpi.so.40 lacks %s", name);
    return p;
}

int la_mpi_start(char *err, size_t errlen) {
    if (la_mpi.started) return la_mpi.size;
    if (!getenv("OMPI_COMM_WORLD_SIZE")) {
        if (la_env_int("PMI_SIZE", 1) > 1 || la_env_int("MPI_LOCALNRANKS", 1) > 1) {
            snprintf(err, errlen, "started by an MPI launcher other than Open MPI's mpirun (PMI_SIZE is set); "
                                  "llama-align's data parallelism runs on Open MPI only");
            return -1;
        }
        la_mpi.started = 1;
        return 1;
    }
    /* RTLD_GLOBAL: Open MPI's own plugins resolve libmpi's symbols when they load. */
    void *lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(err, errlen, "mpirun started this process but Open MPI cannot be loaded (%s); "
                              "install it with `apt-get install openmpi-bin libopenmpi-dev` (or .ci/install-deps)", dlerror());
        return -1;
    }
    int ok = (la_mpi.init = la_mpi_symbol(lib, "MPI_Init", err, errlen)) &&
             (la_mpi.finalize = la_mpi_symbol(lib, "MPI_Finalize", err, errlen)) &&
             (la_mpi.comm_rank = la_mpi_symbol(lib, "MPI_Comm_rank", err, errlen)) &&
             (la_mpi.comm_size = la_mpi_symbol(lib, "MPI_Comm_size", err, errlen)) &&
             (la_mpi.allreduce = la_mpi_symbol(lib, "MPI_Allreduce", err, errlen)) &&
             (la_mpi.barrier = la_mpi_symbol(lib, "MPI_Barrier", err, errlen)) &&
             (la_mpi.abort_ = la_mpi_symbol(lib, "MPI_Abort", err, errlen)) &&
             (la_mpi.world = la_mpi_symbol(lib, "ompi_mpi_comm_world", err, errlen)) &&
             (la_mpi.f32 = la_mpi_symbol(lib, "ompi_mpi_float", err, errlen)) &&
             (la_mpi.f64 = la_mpi_symbol(lib, "ompi_mpi_double", err, errlen)) &&
             (la_mpi.sum = la_mpi_symbol(lib, "ompi_mpi_op_sum", err, errlen));
    if (!ok) return -1;
    int rc = la_mpi.init(NULL, NULL);
    if (rc != 0) { snprintf(err, errlen, "MPI_Init failed (error %d)", rc); return -1; }
    la_mpi.comm_rank(la_mpi.world, &la_mpi.rank);
    la_mpi.comm_size(la_mpi.world, &la_mpi.size);
    la_mpi.started = 2;
    return la_mpi.size;
}

int la_mpi_rank(void) { return la_mpi.rank; }
int la_mpi_size(void) { return la_mpi.size; }
int la_mpi_local_size(void) { return la_env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1); }

/* buf[i] = Σ over ranks, in pieces of at most INT_MAX elements. */
static double la_mpi_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int la_mpi_allreduce_sum(void *buf, size_t count, size_t width, la_mpi_handle type) {
    if (la_mpi.started != 2) return 0;
    double t0 = la_mpi_now();
    char *p = buf;
    while (count > 0) {
        int n = count > INT_MAX ? INT_MAX : (int)count;
        int rc = la_mpi.allreduce(LA_MPI_IN_PLACE, p, n, type, la_mpi.sum, la_mpi.world);
        if (rc != 0) return rc;
        p += (size_t)n * width;
        count -= (size_t)n;
    }
    la_mpi.reduce_seconds += la_mpi_now() - t0;
    return 0;
}

double la_mpi_allreduce_seconds(void) { return la_mpi.reduce_seconds; }

int la_mpi_allreduce_sum_f32(float *buf, size_t count) { return la_mpi_allreduce_sum(buf, count, sizeof(float), la_mpi.f32); }
int la_mpi_allreduce_sum_f64(double *buf, size_t count) { return la_mpi_allreduce_sum(buf, count, sizeof(double), la_mpi.f64); }

int la_mpi_barrier(void) { return la_mpi.started == 2 ? la_mpi.barrier(la_mpi.world) : 0; }

void la_mpi_abort(int code) {
    if (la_mpi.started == 2) la_mpi.abort_(la_mpi.world, code);
    exit(code);
}

void la_mpi_finish(void) {
    if (la_mpi.started == 2) la_mpi.finalize();
    la_mpi.started = 1;
    la_mpi.rank = 0;
    la_mpi.size = 1;
}

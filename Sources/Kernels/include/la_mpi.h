// Data parallelism over Open MPI, loaded at run time (la_mpi.c): hand-written runtime support.
//
// Under `mpirun` (Open MPI sets OMPI_COMM_WORLD_SIZE), la_mpi_start dlopens libmpi.so.40 and
// calls MPI_Init; without it nothing is loaded and the world is one rank. Nothing here needs
// Open MPI at build time. Every call is made from the process's main thread only.
#pragma once
#include <stddef.h>

/* Joins the job: returns the number of ranks (1 when not launched by Open MPI's mpirun), or -1
   with a message in `err` when Open MPI cannot be loaded or started. Idempotent. */
int la_mpi_start(char *err, size_t errlen);

/* This process's rank (0 ..< size) and the number of ranks; 0 and 1 before la_mpi_start. */
int la_mpi_rank(void);
int la_mpi_size(void);

/* Ranks started on this machine (OMPI_COMM_WORLD_LOCAL_SIZE; 1 without mpirun). */
int la_mpi_local_size(void);

/* In-place sums over all ranks: buf[i] = Σ_rank buf[i]. Returns 0, or MPI's error code. Counts
   above INT_MAX go in pieces. */
int la_mpi_allreduce_sum_f32(float *buf, size_t count);
int la_mpi_allreduce_sum_f64(double *buf, size_t count);

/* Wall-clock seconds spent in the all-reduces so far. */
double la_mpi_allreduce_seconds(void);

/* Waits for every rank. */
int la_mpi_barrier(void);

/* Ends the whole job now with `code` (MPI_Abort): mpirun stops every other rank. */
void la_mpi_abort(int code);

/* Leaves the job cleanly (MPI_Finalize) when it was joined. */
void la_mpi_finish(void);

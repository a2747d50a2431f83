import Kernels

/// Threads the compiled kernels use: OpenMP's team (fused loops) and OpenBLAS's pool (sgemm),
/// set together at run time. Environment variables alone come too late for OpenBLAS, which
/// sizes its pool when the library loads.
public enum KernelThreads {
    /// Uses `n` threads for both (n ≥ 1).
    public static func set(_ n: Int) {
        la_set_num_threads(Int32(max(1, n)))
    }

    /// OpenMP's current team size.
    public static var current: Int { Int(la_num_threads()) }
}

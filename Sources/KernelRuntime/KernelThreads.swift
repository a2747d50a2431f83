import Foundation
import Kernels

/// Threads the compiled kernels use: OpenMP's team (fused loops) and OpenBLAS's pool (sgemm),
/// set together at run time. Environment variables alone come too late for OpenBLAS, which
/// sizes its pool when the library loads.
public enum KernelThreads {
    /// Uses `n` threads for both (n ≥ 1).
    public static func set(_ n: Int) {
        la_set_num_threads(Int32(max(1, n)))
    }

    /// The most threads a run may ask for: 256, or 4 per core on larger machines. (libomp fails
    /// to start absurd teams, `--threads 100000`, and its error leaves the process hanging.)
    public static var maximum: Int { max(256, 4 * ProcessInfo.processInfo.activeProcessorCount) }

    /// Why `n` is not a thread count (nil when it is one).
    public static func problem(with n: Int) -> String? {
        n >= 1 && n <= maximum ? nil : "must be between 1 and \(maximum), got \(n)"
    }

    /// OpenMP's current team size.
    public static var current: Int { Int(la_num_threads()) }
}

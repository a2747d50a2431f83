import Foundation

/// The kernels' thread count is process-wide, and reductions split over a different number of
/// threads round differently. Tests that change it, and tests that compare two in-process runs
/// bit for bit, hold this lock so the suites running in parallel cannot mix the two.
enum KernelThreadsLock {
    private static let lock = NSLock()

    static func held<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}

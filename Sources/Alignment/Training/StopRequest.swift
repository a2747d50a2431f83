import Foundation
import Synchronization

/// SIGINT/SIGTERM during training: the first asks the run to finish its current step, write a
/// checkpoint and stop with a message; a second exits at once (status 130).
enum StopRequest {
    private static let signalled = Atomic<Int32>(0)

    /// The signal received (SIGINT or SIGTERM), or nil.
    static var signal: Int32? {
        let s = signalled.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// Installs the handlers (idempotent; they stay for the process).
    static func install() {
        // A parent may have started us with these blocked (Foundation's Process does): unblock
        // them on this thread, which runs the loop.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        for s in [SIGINT, SIGTERM] {
            _ = Foundation.signal(s) { received in
                // Only async-signal-safe work here: one atomic exchange, or _exit.
                if StopRequest.signalled.exchange(received, ordering: .relaxed) != 0 { _exit(130) }
            }
        }
    }

    /// The signal's name for messages.
    static func name(_ s: Int32) -> String { s == SIGTERM ? "SIGTERM" : "SIGINT" }
}

/// The run stopped on a signal after writing a checkpoint.
public struct Interrupted: Error, CustomStringConvertible {
    var signal: Int32
    var step: Int
    var outputDir: String

    public var description: String {
        "\(StopRequest.name(signal)) received: finished step \(step), wrote \(outputDir)/checkpoint-\(step); run the same command again to continue"
    }
}

import Foundation

/// Progress of a long job: one self-redrawing line on a terminal, plain lines otherwise.
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let label: String
    let output: FileHandle
    let isTerminal: Bool
    let started = Date()
    var lastDraw = Date.distantPast
    /// Plain mode prints every `every`-th update (and the last).
    public var every: Int
    /// Draws nothing (the ranks of a data-parallel job other than rank 0).
    let silent: Bool

    public init(total: Int, label: String, output: FileHandle = .standardError, every: Int = 1, forceTerminal: Bool? = nil, silent: Bool = false) {
        self.silent = silent
        self.total = max(total, 1)
        self.label = label
        self.output = output
        self.every = max(every, 1)
        isTerminal = forceTerminal ?? (isatty(output.fileDescriptor) != 0)
    }

    /// The text of one update (also used in plain mode).
    public func line(step: Int, fields: [(String, String)]) -> String {
        let elapsed = Date().timeIntervalSince(started)
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        // A run of max_steps = 2^63 - 1 has an ETA no Int holds: past 100 hours it is shown as such.
        let clock = eta < 360_000 ? String(format: "%02d:%02d", Int(eta) / 60, Int(eta) % 60) : ">100h"
        let stats = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
        if isTerminal {
            let width = 24, done = width * min(step, total) / total
            let bar = String(repeating: "█", count: done) + String(repeating: "░", count: width - done)
            return "\(label) \(bar) \(step)/\(total)  \(stats)  ETA \(clock)"
        }
        return "\(label) step \(step)/\(total)  \(stats)  ETA \(clock)"
    }

    public func update(step: Int, fields: [(String, String)]) {
        if silent { return }
        if isTerminal {
            guard Date().timeIntervalSince(lastDraw) > 0.1 || step >= total else { return }
            lastDraw = Date()
            output.write(Data(("\r\u{1B}[K" + line(step: step, fields: fields)).utf8))
        } else if step % every == 0 || step >= total {
            output.write(Data((line(step: step, fields: fields) + "\n").utf8))
        }
    }

    public func finish() {
        if isTerminal, !silent { output.write(Data("\n".utf8)) }
    }
}

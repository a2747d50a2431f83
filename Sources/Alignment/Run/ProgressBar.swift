import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long job: one line redrawn in place (`\r`) on a terminal, cut to the terminal's
/// width so it never wraps; plain lines when the output is not a terminal. `message` prints a
/// line (an evaluation, a save) above the progress line and redraws it.
public final class ProgressBar: @unchecked Sendable {
    public let total: Int
    public let label: String
    let output: FileHandle
    let isTerminal: Bool
    let started = Date()
    var lastDraw = Date.distantPast
    /// The latest update (redrawn after a message, even when its own draw was skipped).
    var latest: (step: Int, fields: [(String, String)])?
    /// Plain mode prints every `every`-th update (and the last).
    public var every: Int
    /// Draws nothing (the ranks of a data-parallel job other than rank 0).
    let silent: Bool
    /// The terminal's width in columns (nil: ask the terminal, then `COLUMNS`, else 80).
    public var width: Int?

    public init(total: Int, label: String, output: FileHandle = .standardError, every: Int = 1, forceTerminal: Bool? = nil, silent: Bool = false) {
        self.silent = silent
        self.total = max(total, 1)
        self.label = label
        self.output = output
        self.every = max(every, 1)
        isTerminal = forceTerminal ?? (isatty(output.fileDescriptor) != 0)
    }

    /// Columns of the terminal the line is drawn on.
    var columns: Int {
        if let width { return width }
        #if canImport(Glibc)
        var size = winsize()
        if ioctl(output.fileDescriptor, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        #endif
        if let c = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), c > 0 { return c }
        return 80
    }

    /// The text of one update (also used in plain mode). On a terminal it fits in `columns - 1`
    /// characters: fields are dropped from the end first, then the bar narrows, then the line is cut.
    public func line(step: Int, fields: [(String, String)]) -> String {
        let elapsed = Date().timeIntervalSince(started)
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        // A run of max_steps = 2^63 - 1 has an ETA no Int holds: past 100 hours it is shown as such.
        let clock = eta < 360_000 ? String(format: "%02d:%02d", Int(eta) / 60, Int(eta) % 60) : ">100h"
        guard isTerminal else {
            let stats = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
            return "\(label) step \(step)/\(total)  \(stats)  ETA \(clock)"
        }
        let room = max(columns - 1, 8)
        func render(_ kept: ArraySlice<(String, String)>, bar width: Int) -> String {
            let done = width * min(step, total) / total
            let bar = width > 0 ? String(repeating: "█", count: done) + String(repeating: "░", count: width - done) + " " : ""
            let stats = kept.map { "  \($0.0) \($0.1)" }.joined()
            return "\(label) \(bar)\(step)/\(total)\(stats)  ETA \(clock)"
        }
        // As many fields as fit beside a bar of 24, 16 or 8 cells; then no bar; then cut.
        for kept in stride(from: fields.count, through: 0, by: -1) {
            for width in [24, 16, 8] {
                let s = render(fields.prefix(kept), bar: width)
                if s.count <= room { return s }
            }
        }
        return String(render([], bar: 0).prefix(room))
    }

    public func update(step: Int, fields: [(String, String)]) {
        if silent { return }
        if isTerminal {
            latest = (step, fields)
            guard Date().timeIntervalSince(lastDraw) > 0.1 || step >= total else { return }
            lastDraw = Date()
            output.write(Data(("\r\u{1B}[K" + line(step: step, fields: fields)).utf8))
        } else if step % every == 0 || step >= total {
            output.write(Data((line(step: step, fields: fields) + "\n").utf8))
        }
    }

    /// Prints `text` on its own line above the progress line (which is redrawn on a terminal).
    public func message(_ text: String) {
        if silent { return }
        if isTerminal {
            output.write(Data(("\r\u{1B}[K" + text + "\n" + (latest.map { line(step: $0.step, fields: $0.fields) } ?? "")).utf8))
        } else {
            output.write(Data((text + "\n").utf8))
        }
    }

    public func finish() {
        if isTerminal, !silent, latest != nil { output.write(Data("\n".utf8)) }
        latest = nil
    }
}

import Foundation
import KernelRuntime

/// `output_dir/metrics.jsonl`: one JSON object per logged step, keys sorted. In a data-parallel
/// job only rank 0 writes it.
public final class MetricsLogger: @unchecked Sendable {
    public let path: String
    /// With `report_to: tensorboard`, every line is also an Event there.
    public var tensorboard: TensorBoardWriter?

    public init(outputDir: String) throws {
        path = (outputDir as NSString).appendingPathComponent("metrics.jsonl")
    }

    /// Appends one line (flushed at once).
    public func log(_ values: [String: Double]) throws {
        guard World.isMain else { return }
        let parts = values.keys.sorted().map { k -> String in
            let v = values[k] ?? 0
            let num = v.isFinite ? (v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)") : "null"
            return "\"\(k)\": \(num)"
        }
        let line = "{" + parts.joined(separator: ", ") + "}\n"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw RuntimeIOError("\(path): cannot be opened for writing") }
        defer { try? h.close() }
        h.seekToEndOfFile()
        h.write(Data(line.utf8))
        tensorboard?.add(metrics: values)
    }

    /// Keeps only the lines of steps ≤ `step`, so a resumed run's file matches an uninterrupted one.
    public func resume(truncatingAfter step: Int) throws {
        guard World.isMain else { return }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = (obj["step"] as? NSNumber)?.intValue else { return false }
            return s <= step
        }
        try (kept.map { $0 + "\n" }.joined()).write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// An I/O failure with the path in its one-line message.
public struct RuntimeIOError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// `report_to`: "tensorboard" (or "all") writes TensorBoard event files under `logging_dir`
/// (default `output_dir/runs/`) beside `metrics.jsonl`; "none" and an empty list write only
/// `metrics.jsonl`; any other integration (wandb, visualdl, …) gets a one-line note.
public enum CurveReporting {
    public static let supported: Set<String> = ["tensorboard", "all", "none"]

    /// The TensorBoard writer the arguments ask for (nil when none), and notes for the values not supported.
    public static func tensorboard(_ args: TrainingArguments) throws -> (writer: TensorBoardWriter?, notes: [String]) {
        let notes = args.reportTo.filter { !supported.contains($0) }.map {
            "note: report_to '\($0)' is not supported here (only tensorboard); curves are in metrics.jsonl (llama-align plot OUTPUT_DIR)"
        }
        // In a data-parallel job rank 0 alone writes curves, as it alone writes metrics.jsonl.
        guard args.reportTo.contains("tensorboard") || args.reportTo.contains("all"), World.isMain else { return (nil, notes) }
        let dir = args.loggingDir ?? (args.outputDir as NSString).appendingPathComponent("runs")
        return (try TensorBoardWriter(logDir: dir), notes)
    }
}

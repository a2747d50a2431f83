import Foundation

/// Per-kernel timings of one or more compiled programs, and the files made from them:
/// a table, a Chrome trace (chrome://tracing, Perfetto) and an SVG bar chart.
public struct ProfileReport: Sendable {
    public struct Row: Sendable {
        public var program: String
        public var kernel: String
        public var calls: Int
        public var ms: Double
        public var flops: Double
        public var bytes: Double
        public var scopes: [String]
        /// The manifest's kernel kind (`sgemm` is a matrix product).
        public var kind = ProgramManifest.Kernel.Kind.fusedLoop

        /// A row measured outside the compiled programs (the all-reduce of a data-parallel step).
        public init(program: String, kernel: String, calls: Int, ms: Double, flops: Double, bytes: Double, scopes: [String],
                    kind: ProgramManifest.Kernel.Kind = .fusedLoop) {
            self.program = program; self.kernel = kernel; self.calls = calls; self.ms = ms
            self.flops = flops; self.bytes = bytes; self.scopes = scopes; self.kind = kind
        }
    }

    public var rows: [Row] = []
    /// Chrome trace events: (name, program, start µs, duration µs, scopes).
    public var events: [(name: String, program: String, start: Double, duration: Double, scopes: [String])] = []

    public init() {}

    /// Adds what `program` recorded; `flopsPerCall`/`bytesPerCall` come from `costs(sizes:)`.
    public mutating func add(_ program: CompiledProgram, flops: [Double], bytes: [Double]) {
        guard let counters = program.counters else { return }
        for k in program.manifest.kernels {
            let calls = Int(counters[k.index].calls)
            guard calls > 0 else { continue }
            rows.append(Row(program: program.manifest.name, kernel: k.name, calls: calls, ms: counters[k.index].nanoseconds / 1e6,
                            flops: flops[k.index], bytes: bytes[k.index], scopes: k.scopes, kind: k.kind))
        }
        for e in program.events {
            let k = program.manifest.kernels[e.kernel]
            events.append((k.name, program.manifest.name, e.start / 1e3, (e.end - e.start) / 1e3, k.scopes))
        }
    }

    public var totalMs: Double { rows.reduce(0) { $0 + $1.ms } }

    /// Time and rate of the matrix-product kernels of one kind: `sgemm` (they call
    /// sgemm/sgemv, the default) or `bf16Gemm` (a bf16 program's mixed-precision products).
    public func products(_ kind: ProgramManifest.Kernel.Kind = .sgemm) -> (ms: Double, gflops: Double) {
        let m = rows.filter { $0.kind == kind }
        let ms = m.reduce(0) { $0 + $1.ms }
        return (ms, ms > 0 ? m.reduce(0) { $0 + $1.flops } / (ms * 1e6) : 0)
    }

    /// One line: the products' share of the step and their rate against `ceiling` GFLOP/s.
    public func productsLine(ceiling: Double) -> String {
        let p = products()
        return String(format: "matrix products: %.1f ms (%.0f%% of kernel time) at %.1f GFLOP/s = %.0f%% of sgemm alone (%.1f)",
                      p.ms, 100 * p.ms / max(totalMs, 1e-9), p.gflops, 100 * p.gflops / max(ceiling, 1e-9), ceiling)
    }

    /// The same line for the bf16 products against `ceiling`, a bf16 product alone (`bench.sgemm_bf16`).
    public func bf16ProductsLine(ceiling: Double) -> String {
        let p = products(.bf16Gemm)
        return String(format: "bf16 matrix products: %.1f ms (%.0f%% of kernel time) at %.1f GFLOP/s = %.0f%% of the bf16 product alone (%.1f)",
                      p.ms, 100 * p.ms / max(totalMs, 1e-9), p.gflops, 100 * p.gflops / max(ceiling, 1e-9), ceiling)
    }

    /// The table, slowest kernels first.
    public func table(top: Int = 30) -> String {
        var out = String(format: "%-44@ %6@ %10@ %7@ %9@ %8@  %@\n", "kernel" as NSString, "calls" as NSString, "total ms" as NSString,
                         "%" as NSString, "GFLOP/s" as NSString, "GB/s" as NSString, "DSL scopes" as NSString)
        let total = max(totalMs, 1e-9)
        for r in rows.sorted(by: { $0.ms > $1.ms }).prefix(top) {
            let s = r.ms / 1e3
            out += String(format: "%-44@ %6d %10.2f %6.1f%% %9.1f %8.1f  %@\n", r.kernel as NSString, r.calls, r.ms, 100 * r.ms / total,
                          s > 0 ? r.flops / s / 1e9 : 0, s > 0 ? r.bytes / s / 1e9 : 0, r.scopes.joined(separator: "; ") as NSString)
        }
        out += String(format: "%d kernels, %.1f ms in all\n", rows.count, totalMs)
        return out
    }

    /// Chrome trace JSON: one complete ("X") event per kernel call.
    public func chromeTrace() throws -> Data {
        let t0 = events.map(\.start).min() ?? 0
        let list: [[String: Any]] = events.map { e in
            ["name": e.name, "cat": e.program, "ph": "X", "ts": e.start - t0, "dur": e.duration, "pid": 1, "tid": 1,
             "args": ["scopes": e.scopes.joined(separator: "; ")]]
        }
        return try JSONSerialization.data(withJSONObject: ["traceEvents": list, "displayTimeUnit": "ms"], options: [.sortedKeys])
    }

    /// A horizontal bar chart of the slowest kernels.
    public func svg(top: Int = 15) -> String {
        let rows = self.rows.sorted { $0.ms > $1.ms }.prefix(top)
        let maxMs = rows.first?.ms ?? 1, barWidth = 420.0, rowHeight = 22
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"\(rowHeight * rows.count + 40)\" font-family=\"monospace\" font-size=\"12\">\n"
        s += "<text x=\"10\" y=\"18\">slowest fused kernels (total ms)</text>\n"
        for (i, r) in rows.enumerated() {
            let y = 30 + i * rowHeight, w = barWidth * r.ms / max(maxMs, 1e-9)
            let name = r.kernel.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            s += "<text x=\"10\" y=\"\(y + 14)\">\(name)</text>\n"
            s += "<rect x=\"380\" y=\"\(y + 2)\" width=\"\(String(format: "%.1f", w))\" height=\"16\" fill=\"#4a7fb5\"/>\n"
            s += "<text x=\"\(String(format: "%.1f", 385 + w))\" y=\"\(y + 14)\">\(String(format: "%.2f", r.ms))</text>\n"
        }
        return s + "</svg>\n"
    }
}

import Foundation

/// Training curves from `metrics.jsonl` as one SVG (and an HTML page holding it): a panel per
/// quantity against the step — loss, learning rate, gradient norm and, for DPO, the chosen and
/// rejected rewards, the margin and the accuracy — train lines solid, eval (`eval_…`) dashed with dots.
public enum CurvePlot {
    /// A panel: its title and the metric keys drawn in it (train and eval names).
    struct Panel { var title: String; var keys: [String] }

    static let panels = [
        Panel(title: "loss", keys: ["loss", "eval_loss"]),
        Panel(title: "learning rate", keys: ["learning_rate"]),
        Panel(title: "gradient norm", keys: ["grad_norm"]),
        Panel(title: "rewards (DPO)", keys: ["rewards/chosen", "rewards/rejected", "eval_rewards/chosen", "eval_rewards/rejected"]),
        Panel(title: "reward margin (DPO)", keys: ["rewards/margins", "eval_rewards/margins"]),
        Panel(title: "reward accuracy (DPO)", keys: ["rewards/accuracies", "eval_rewards/accuracies"]),
    ]
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]

    /// The lines of a `metrics.jsonl` (null values left out).
    public static func read(_ path: String) throws -> [[String: Double]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw RuntimeIOError("\(path): cannot be read") }
        return try text.split(separator: "\n").enumerated().map { i, line in
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw RuntimeIOError("\(path):\(i + 1): not a JSON object")
            }
            return o.compactMapValues { ($0 as? NSNumber)?.doubleValue }.filter { $0.value.isFinite }
        }
    }

    /// The SVG for `rows`; nil when no panel has a point.
    public static func svg(_ rows: [[String: Double]], title: String) -> String? {
        let series = { (key: String) -> [(Double, Double)] in rows.compactMap { r in r["step"].flatMap { s in r[key].map { (s, $0) } } } }
        let shown = panels.compactMap { p -> (Panel, [(String, [(Double, Double)])])? in
            let lines = p.keys.map { ($0, series($0)) }.filter { !$0.1.isEmpty }
            return lines.isEmpty ? nil : (p, lines)
        }
        guard !shown.isEmpty else { return nil }
        let (w, h, cols) = (460.0, 280.0, 2)
        let rowsCount = (shown.count + cols - 1) / cols
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w) * cols)" height="\(Int(h) * rowsCount + 40)" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="12" y="24" font-size="15" font-weight="bold">\(escape(title))</text>\n
        """
        for (i, (panel, lines)) in shown.enumerated() {
            out += drawPanel(panel, lines, x0: Double(i % cols) * w, y0: 40 + Double(i / cols) * h, w: w, h: h)
        }
        return out + "</svg>\n"
    }

    /// One panel: frame, ticks, the lines and a legend.
    static func drawPanel(_ panel: Panel, _ lines: [(String, [(Double, Double)])], x0: Double, y0: Double, w: Double, h: Double) -> String {
        let (left, right, top, bottom) = (x0 + 64, x0 + w - 14, y0 + 24, y0 + h - 36)
        let xs = lines.flatMap { $0.1.map(\.0) }, ys = lines.flatMap { $0.1.map(\.1) }
        var (xmin, xmax) = (xs.min() ?? 0, xs.max() ?? 1), (ymin, ymax) = (ys.min() ?? 0, ys.max() ?? 1)
        if xmax == xmin { xmin -= 1; xmax += 1 }
        if ymax == ymin { let d = max(abs(ymin) * 0.1, 1e-3); ymin -= d; ymax += d }
        let pad = (ymax - ymin) * 0.05
        (ymin, ymax) = (ymin - pad, ymax + pad)
        func px(_ x: Double) -> Double { left + (x - xmin) / (xmax - xmin) * (right - left) }
        func py(_ y: Double) -> Double { bottom - (y - ymin) / (ymax - ymin) * (bottom - top) }
        var s = "<g>\n<text x=\"\(f(x0 + 14))\" y=\"\(f(y0 + 16))\" font-size=\"13\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#888\"/>\n"
        for t in ticks(ymin, ymax) {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(right))\" y1=\"\(f(py(t)))\" y2=\"\(f(py(t)))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(f(left - 4))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        for t in ticks(xmin, xmax) {
            s += "<text x=\"\(f(px(t)))\" y=\"\(f(bottom + 14))\" text-anchor=\"middle\">\(label(t))</text>\n"
        }
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 28))\" text-anchor=\"middle\" fill=\"#555\">step</text>\n"
        // Legend: top right inside the frame, on a white box sized to the longest name.
        let legendWidth = 34 + 6.4 * Double(lines.map(\.0.count).max() ?? 0)
        var legend = "<rect x=\"\(f(right - legendWidth - 4))\" y=\"\(f(top + 2))\" width=\"\(f(legendWidth))\" "
        legend += "height=\"\(f(Double(lines.count) * 14 + 4))\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n"
        for (i, (key, points)) in lines.enumerated() {
            let color = colors[i % colors.count], eval = key.hasPrefix("eval_")
            let path = points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"\(eval ? " stroke-dasharray=\"5 3\"" : "") points=\"\(path)\"/>\n"
            if eval || points.count == 1 {
                for p in points { s += "<circle cx=\"\(f(px(p.0)))\" cy=\"\(f(py(p.1)))\" r=\"2.5\" fill=\"\(color)\"/>" }
            }
            let ly = top + 14 + Double(i) * 14, lx = right - legendWidth
            legend += "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 20))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(eval ? " stroke-dasharray=\"5 3\"" : "")/>"
            legend += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly))\">\(escape(key))</text>\n"
        }
        return s + legend + "</g>\n"
    }

    /// About five round tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        var t = (lo / step).rounded(.up) * step, out: [Double] = []
        while t <= hi + step * 1e-9, out.count < 12 { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        let a = abs(v)
        if a == 0 { return "0" }
        if a >= 1e4 || a < 1e-2 { return String(format: "%.1e", v) }
        return String(format: a >= 100 ? "%.0f" : (a >= 1 ? "%.2g" : "%.3g"), v)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Writes `curves.svg` and `curves.html` into `outputDir` from its `metrics.jsonl`; returns their paths.
    public static func write(outputDir: String) throws -> (svg: String, html: String) {
        let rows = try read((outputDir as NSString).appendingPathComponent("metrics.jsonl"))
        guard let svg = svg(rows, title: "llama-align — \(outputDir)") else {
            throw RuntimeIOError("\(outputDir)/metrics.jsonl: no step with loss, learning rate or rewards to plot")
        }
        let svgPath = (outputDir as NSString).appendingPathComponent("curves.svg")
        let htmlPath = (outputDir as NSString).appendingPathComponent("curves.html")
        try BinaryIO.writeAtomically(Data(svg.utf8), to: svgPath)
        let html = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>\(escape(outputDir))</title></head>\n<body>\n\(svg)</body></html>\n"
        try BinaryIO.writeAtomically(Data(html.utf8), to: htmlPath)
        return (svgPath, htmlPath)
    }
}

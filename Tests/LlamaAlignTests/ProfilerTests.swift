import Foundation
import Testing
@testable import Alignment

@Suite struct ProfilerTests {
    @Test func profileWritesAValidChromeTraceWithOneEventPerKernelCall() throws {
        let dir = SharedFixtures.tempDir("prof")
        let args = dir.appendingPathComponent("args.json")
        let obj: [String: Any] = ["model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
                                  "output_dir": dir.appendingPathComponent("out").path, "per_device_train_batch_size": 4, "max_seq_len": 64]
        try JSONSerialization.data(withJSONObject: obj).write(to: args)
        let trace = dir.appendingPathComponent("trace.json").path, svg = dir.appendingPathComponent("top.svg").path
        guard let r = try CLI.run(["profile", args.path, "--steps", "2", "--trace", trace, "--svg", svg]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
        let events = try #require(json["traceEvents"] as? [[String: Any]])
        // The table's calls add up to the number of trace events; every event is a complete span.
        let tableCalls = r.stdout.split(separator: "\n").filter { $0.contains("_k") }.compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }.reduce(0, +)
        #expect(events.count == tableCalls && tableCalls > 0, "\(events.count) events, \(tableCalls) calls in the table")
        #expect(events.allSatisfy { ($0["ph"] as? String) == "X" && (($0["dur"] as? Double) ?? -1) >= 0 && $0["name"] is String })
        // Every lm_step kernel of a layer appears once per layer and step (3 layers × 2 steps).
        let perKernel = Dictionary(grouping: events.compactMap { $0["name"] as? String }, by: { $0 }).mapValues(\.count)
        #expect(perKernel.filter { $0.key.contains("rmsnorm") && $0.key.hasPrefix("lm_step") }.values.contains(6))
        let chart = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(chart.hasPrefix("<svg") && chart.contains("<rect"))
    }
}

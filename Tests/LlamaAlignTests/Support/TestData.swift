import Foundation
@testable import Alignment

/// Writes JSONL lines into a temporary file and returns its path.
func jsonlFile(_ lines: [String], name: String = "data.jsonl") throws -> String {
    let url = SharedFixtures.tempDir("data").appendingPathComponent(name)
    try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    return url.path
}

/// A deterministic micro-batch for a vocabulary of `v` tokens.
func syntheticBatch(batch: Int, seq: Int, v: Int, seed: Int, maskEvery: Int = 4) -> TokenBatch {
    let n = batch * seq
    let ids = (0..<n).map { Int32(($0 * 7 + seed * 13 + 3) % v) }
    let targets = (0..<n).map { Int32(($0 * 5 + seed * 11 + 1) % v) }
    let mask = (0..<n).map { $0 % maskEvery == 0 ? Float(0) : 1 }
    return TokenBatch(batch: batch, seq: seq, ids: ids, targets: targets, mask: mask)
}

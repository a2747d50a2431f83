import Foundation
import Testing
@testable import Alignment

/// `generate --prefix`, `eval --prefix` and `sft` with `prefix_tuning` on the PEFT prefix
/// fixture, through the executable, against PEFT's numbers.
@Suite struct PrefixCLITests {
    @Test func generateAndEvalWithAPEFTPrefixGivePEFTsNumbers() throws {
        let base = PEFTPrefixTests.path("model"), prefix = PEFTPrefixTests.path("adapter")
        let g = try PEFTPrefixTests.golden()
        // generate --prefix: PEFT's greedy continuation.
        let gen = ["generate", "--model", base, "--prompt-ids", g.prompt.map(String.init).joined(separator: " "),
                   "--max-new-tokens", "\(g.greedy.count)", "--temperature", "0", "--print-ids"]
        guard let a = try CLI.run(gen + ["--prefix", prefix]) else { return }
        #expect(a.status == 0, "\(a.stderr)")
        #expect(a.stdout.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } == g.greedy, "\(a.stdout)")
        // eval --prefix: the mean NLL of PEFT's logits.
        let data = try jsonlFile(g.ids.map { "{\"input_ids\": \($0)}" }, name: "ids.jsonl")
        let r = try #require(try CLI.run(["eval", "--data", data, "--json", "--model", base, "--prefix", prefix]))
        #expect(r.status == 0, "\(r.stderr)")
        let loss = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["loss"] as? Double)
        let seq = g.ids[0].count
        let want = -(0 ..< g.ids.count).reduce(0.0) { $0 + PEFTPrefixTests.logProb(g.logits, row: $1, seq: seq, vocab: 40, ids: g.ids[$1], range: 0 ..< seq - 1) }
            / Double(g.ids.count * (seq - 1))
        #expect(abs(loss - want) <= 1e-5 * want, "eval --prefix \(loss) vs PEFT's \(want)")
        let both = try #require(try CLI.run(["eval", "--data", data, "--model", base, "--prefix", prefix, "--lora", prefix]))
        #expect(both.status != 0 && both.stderr.contains("--lora and --prefix together"), "\(both.stderr)")
    }

    /// Preference data: `eval --prefix` scores base + prefix against the base (prefix off):
    /// log-probs and rewards from PEFT's logits with and without the prefix.
    @Test func preferenceEvalWithAPrefixUsesTheBaseAsReference() throws {
        let base = PEFTPrefixTests.path("model"), prefix = PEFTPrefixTests.path("adapter")
        let g = try PEFTPrefixTests.golden()
        let ids = g.ids[0], seq = ids.count
        let row = "{\"prompt_ids\": \(Array(ids.prefix(3))), \"chosen_ids\": \(Array(ids.dropFirst(3))), \"rejected_ids\": [9, 2]}"
        let pairs = try jsonlFile([row], name: "pairs.jsonl")
        guard let r = try CLI.run(["eval", "--data", pairs, "--json", "--model", base, "--prefix", prefix, "--beta", "0.5"]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let m = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let policy = PEFTPrefixTests.logProb(g.logits, row: 0, seq: seq, vocab: 40, ids: ids, range: 2 ..< seq - 1)
        let reference = PEFTPrefixTests.logProb(g.base_logits, row: 0, seq: seq, vocab: 40, ids: ids, range: 2 ..< seq - 1)
        let logps = try #require(m["logps/chosen"] as? Double), reward = try #require(m["rewards/chosen"] as? Double)
        #expect(abs(logps - policy) <= 1e-4 * abs(policy), "logps/chosen \(logps) vs PEFT's \(policy)")
        #expect(abs(reward - 0.5 * (policy - reference)) <= 1e-4 * max(1, abs(reward)), "rewards/chosen \(reward)")
        #expect(abs(reward) > 1e-3)
    }
}

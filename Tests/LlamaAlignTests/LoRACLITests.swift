import Foundation
import Testing
@testable import Alignment

/// `merge`, `eval --lora` and `generate --lora` on the PEFT fixture, through the executable.
@Suite struct LoRACLITests {
    @Test func mergedEqualsUnmergedAndPEFT() throws {
        let base = PEFTLoRATests.path("model"), adapter = PEFTLoRATests.path("adapter")
        let out = SharedFixtures.tempDir("merged").path
        guard let m = try CLI.run(["merge", "--model", base, "--lora", adapter, "--out", out]) else { return }
        #expect(m.status == 0, "\(m.stderr)")
        let g = try PEFTLoRATests.golden()
        let logits = try LlamaModel(weights: loadModel(path: out)).forward(ids: g.ids.flatMap { $0 }, batch: g.ids.count)
        #expect(PEFTLoRATests.logitError(logits, g.logits) <= 1e-4)
        // eval --lora (the adapter in the graph) gives the merged model's loss.
        let data = try jsonlFile(g.ids.map { "{\"input_ids\": \($0)}" }, name: "ids.jsonl")
        func loss(_ args: [String]) throws -> Double? {
            guard let r = try CLI.run(["eval", "--data", data, "--json"] + args) else { return nil }
            #expect(r.status == 0, "\(r.stderr)")
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["loss"] as? Double
        }
        let unmerged = try #require(try loss(["--model", base, "--lora", adapter]))
        let merged = try #require(try loss(["--model", out]))
        let plain = try #require(try loss(["--model", base]))
        #expect(abs(unmerged - merged) <= 1e-5 * merged, "eval --lora \(unmerged) vs merged \(merged)")
        #expect(abs(plain - merged) > 1e-3, "the adapter changes the loss")
        // generate --lora folds the adapter in: the same greedy ids as the merged model.
        let gen = ["generate", "--prompt-ids", "1 7 22", "--max-new-tokens", "6", "--temperature", "0", "--print-ids"]
        let a = try #require(try CLI.run(gen + ["--model", base, "--lora", adapter])), b = try #require(try CLI.run(gen + ["--model", out]))
        #expect(a.status == 0 && a.stdout == b.stdout && !a.stdout.isEmpty, "\(a.stderr)")
    }

    /// Preference data: `eval --lora` scores base + adapter against the base (adapters off),
    /// exactly what `eval` on the merged model with the base as `--reference` gives.
    @Test func preferenceEvalWithAnAdapterUsesTheBaseAsReference() throws {
        let base = PEFTLoRATests.path("model"), adapter = PEFTLoRATests.path("adapter")
        let merged = SharedFixtures.tempDir("merged-pref").path
        guard let m = try CLI.run(["merge", "--model", base, "--lora", adapter, "--out", merged]) else { return }
        #expect(m.status == 0, "\(m.stderr)")
        let ids = try PEFTLoRATests.golden().ids[0]
        let row = "{\"prompt_ids\": \(Array(ids.prefix(3))), \"chosen_ids\": \(Array(ids.dropFirst(3).prefix(3))), \"rejected_ids\": \(Array(ids.suffix(3)))}"
        let pairs = try jsonlFile([row], name: "pairs.jsonl")
        func metrics(_ args: [String]) throws -> [String: Any] {
            let r = try #require(try CLI.run(["eval", "--data", pairs, "--json"] + args))
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        }
        let withAdapter = try metrics(["--model", base, "--lora", adapter])
        let explicit = try metrics(["--model", merged, "--reference", base])
        for key in ["loss", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"] {
            let a = try #require(withAdapter[key] as? Double), b = try #require(explicit[key] as? Double)
            #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "\(key): \(a) vs \(b)")
        }
        #expect(abs(try #require(withAdapter["rewards/chosen"] as? Double)) > 1e-6, "the adapter moves the rewards")
    }
}

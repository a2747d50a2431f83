import Foundation
import Testing
@testable import Alignment

/// `--json` reports are JSON even when a number is not finite (NaN, ±∞ → "nan", "inf", "-inf").
@Suite struct JSONOutputTests {
    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    @Test func nonFiniteNumbersAreStrings() throws {
        let text = try JSONOutput.string(["nan": Double.nan, "inf": .infinity, "neg": -.infinity, "one": 1.5, "a/b": 2])
        let o = try object(text)
        #expect(o["nan"] as? String == "nan" && o["inf"] as? String == "inf" && o["neg"] as? String == "-inf")
        #expect((o["one"] as? NSNumber)?.doubleValue == 1.5)
        #expect(text == #"{"a/b":2,"inf":"inf","nan":"nan","neg":"-inf","one":1.5}"#)
    }

    /// A model with finite weights whose logits overflow to ±∞ (a NaN loss; NaN weights are
    /// refused outright): `eval --json` on token rows and on preference pairs.
    @Test func evalJSONParsesWhenTheLossIsNaN() throws {
        let dir = SharedFixtures.tempDir("nan-eval")
        let config = LlamaConfig(dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 11, maxSeqLen: 8)
        var w = LlamaWeights.random(config: config, seed: 5)
        w.tensors["final_norm"] = w.tensors["final_norm"]?.map { _ in Float(3e38) }
        for name in ["embed", "lm_head"] { w.tensors[name] = w.tensors[name]?.enumerated().map { i, _ in i % 2 == 0 ? 10 : -10 } }
        let model = dir.appendingPathComponent("nan.bin").path
        try Llama2cCheckpoint.write(w, to: model)
        let rows = try jsonlFile([#"{"input_ids": [1, 4, 5, 6]}"#, #"{"input_ids": [1, 7, 8]}"#], name: "ids.jsonl")
        guard let lm = try CLI.run(["eval", "--model", model, "--data", rows, "--json"]) else { return }
        #expect(lm.status == 0, "\(lm.stderr)")
        let a = try object(lm.stdout)
        #expect(a["loss"] as? String == "nan" && a["perplexity"] as? String == "nan", "\(lm.stdout)")
        #expect((a["tokens"] as? NSNumber)?.intValue == 5 && (a["rows"] as? NSNumber)?.intValue == 2)
        let pairs = try jsonlFile([#"{"prompt_ids": [1, 4], "chosen_ids": [5, 2], "rejected_ids": [6, 2]}"#], name: "pairs.jsonl")
        guard let pref = try CLI.run(["eval", "--model", model, "--data", pairs, "--json"]) else { return }
        #expect(pref.status == 0, "\(pref.stderr)")
        let b = try object(pref.stdout)
        #expect(b["loss"] as? String == "nan", "\(pref.stdout)")
        #expect(b.keys.sorted() == ["logps/chosen", "logps/rejected", "loss", "rewards/accuracies", "rewards/chosen",
                                    "rewards/margins", "rewards/rejected"])
    }
}

import Foundation
import Testing
@testable import Alignment

/// `tokenizer.json` (Hugging Face's BPE with byte fallback) is read exactly, and
/// `generation_config.json` gives `generate` its defaults.
@Suite struct HFTokenizerTests {
    struct Case: Decodable { var text: String; var ids: [Int32]; var decoded: String }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model", "golden/llama2_tokenizer_cases.jsonl"), "needs ../shared"))
    func tokenizerJSONAloneIsExactOnTheGoldenCases() throws {
        // The LLaMA-2 tokenizer written as tokenizer.json at test time (never committed), in a folder of its own.
        let sp = try SentencePieceTokenizer(path: try SharedFixtures.require("tokenizers/llama2/tokenizer.model"))
        let dir = SharedFixtures.tempDir("tokjson").path
        try #require(try HFTokenizerFiles.tokenizerJSON(sp)).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
        let tok = try loadTokenizer(path: dir)
        #expect(tok is HFTokenizer && tok.vocabSize == 32000 && tok.bosId == 1 && tok.eosId == 2)
        let cases = try String(contentsOfFile: try SharedFixtures.require("golden/llama2_tokenizer_cases.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Case.self, from: Data($0.utf8)) }
        #expect(cases.count >= 20)
        for c in cases {
            #expect(tok.encode(c.text) == c.ids, "\(c.text)")
            #expect(tok.decode(c.ids) == c.decoded, "\(c.text)")
        }
        // The merge list follows the piece scores: 61,249 merges for LLaMA-2, the first ones its best pieces.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer.json"))) as? [String: Any])
        let merges = try #require((json["model"] as? [String: Any])?["merges"] as? [[String]])
        #expect(merges.count == 61249 && merges.first == ["▁", "t"])
    }

    @Test func tokenizerJSONFieldsOutsideLLaMAsKindAreErrorsNamingThem() throws {
        let base: [String: Any] = ["model": ["type": "BPE", "vocab": ["<unk>": 0, "<s>": 1, "</s>": 2, "a": 3], "merges": [[String]](), "byte_fallback": true]]
        func load(_ patch: (inout [String: Any]) -> Void) throws -> HFTokenizer {
            var o = base
            patch(&o)
            return try HFTokenizer(data: JSONSerialization.data(withJSONObject: o), path: "t.json")
        }
        #expect(try load { _ in }.encode("aa") == [3, 3])
        for (patch, words) in [
            ({ (o: inout [String: Any]) in o["pre_tokenizer"] = ["type": "ByteLevel"] }, "pre_tokenizer ByteLevel"),
            ({ (o: inout [String: Any]) in o["model"] = ["type": "WordPiece", "vocab": [String: Int]()] }, "model.type is 'WordPiece'"),
            ({ (o: inout [String: Any]) in o["model"] = ["type": "BPE", "vocab": ["a": 0, "b": 2], "merges": [[String]]()] }, "without gaps"),
            ({ (o: inout [String: Any]) in o["model"] = ["type": "BPE", "vocab": ["<s>": 0, "</s>": 1], "merges": [["x"]]] }, "merges[0]"),
            ({ (o: inout [String: Any]) in o["model"] = ["type": "BPE", "vocab": ["a": 0, "</s>": 1], "merges": [[String]]()] }, "bos_token '<s>'"),
        ] as [((inout [String: Any]) -> Void, String)] {
            #expect { _ = try load(patch) } throws: { "\($0)".contains(words) }
        }
    }

    @Test func generationConfigIsReadWithTransformersDefaults() throws {
        let g = try GenerationConfig.parse(Data(#"{"do_sample": false, "temperature": 0.6, "eos_token_id": [2, 7], "max_new_tokens": 9}"#.utf8), path: "g.json")
        #expect(g.sampler(seed: 1).temperature == 0 && g.eosIds == [2, 7] && g.maxNewTokens == 9)
        let s = try GenerationConfig.parse(Data(#"{"do_sample": true, "temperature": 0.6}"#.utf8), path: "g.json").sampler(seed: 1)
        #expect(s.temperature == 0.6 && s.topK == 50 && s.topP == 1)   // transformers' top_k default
        #expect(try GenerationConfig.parse(Data("{}".utf8), path: "g.json").sampler(seed: 1).temperature == 0)   // do_sample absent: greedy
        #expect { _ = try GenerationConfig.parse(Data(#"{"temperature": "hot"}"#.utf8), path: "g.json") } throws: { "\($0)".contains("g.json: temperature") }
        #expect { _ = try GenerationConfig.parse(Data(#"{"do_sample": 1}"#.utf8), path: "g.json") } throws: { "\($0)".contains("do_sample") }
    }

    @Test func generateTakesItsDefaultsFromGenerationConfig() throws {
        let args = try Demo.args(.pretrain, ["max_steps": 2])
        try TrainingRun(args: args, task: .pretrain).run()
        let dir = args.outputDir, genPath = dir + "/generation_config.json"
        func generate(_ extra: [String]) throws -> [String]? {
            guard let r = try CLI.run(["generate", "--model", dir, "--prompt-ids", "1 59 70", "--print-ids"] + extra) else { return nil }
            #expect(r.status == 0, "\(r.stderr)")
            return r.stdout.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        // The saved folder says what `generate` does without options: sampling at 0.8 / 0.9.
        let saved = try GenerationConfig.parse(Data(contentsOf: URL(fileURLWithPath: genPath)), path: genPath)
        #expect(saved == GenerationConfig(doSample: true, temperature: 0.8, topP: 0.9, topK: 0, eosIds: [2]))
        // do_sample false: greedy whatever the seed, the same as --temperature 0; max_new_tokens bounds the length.
        try #"{"do_sample": false, "max_new_tokens": 5, "eos_token_id": 2}"#.write(toFile: genPath, atomically: true, encoding: .utf8)
        guard let a = try generate(["--seed", "1"]), let b = try generate(["--seed", "2"]),
              let greedy = try generate(["--temperature", "0", "--max-new-tokens", "5"]) else { return }
        #expect(a == b && a == greedy && a.count <= 5 && !a.isEmpty, "\(a) \(b) \(greedy)")
        // do_sample true at temperature 1.5: seeds differ (sampling really is on); options still win.
        try #"{"do_sample": true, "temperature": 1.5, "top_k": 0, "max_new_tokens": 12}"#.write(toFile: genPath, atomically: true, encoding: .utf8)
        guard let s1 = try generate(["--seed", "1"]), let s2 = try generate(["--seed", "2"]), let g2 = try generate(["--temperature", "0"]) else { return }
        #expect(s1 != s2 && s1.count == 12, "\(s1) \(s2)")
        #expect(g2.count == 12 && g2.prefix(5) == greedy.prefix(5)[...])
        // A bad value in the file is an error naming it.
        try #"{"do_sample": true, "top_p": 3}"#.write(toFile: genPath, atomically: true, encoding: .utf8)
        if let r = try CLI.run(["generate", "--model", dir, "--prompt-ids", "1 59", "--print-ids"]) {
            #expect(r.status != 0 && r.stderr.contains("generation_config.json: top_p"), "\(r.stderr)")
        }
    }
}

/// TRL's SFT metrics come out of `lm_step` itself (graph outputs `entropy`, `accuracy`).
@Suite struct TokenStatsTests {
    @Test func entropyAndAccuracyEqualTheInferenceLogits() throws {
        let c = LlamaConfig(dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 37, maxSeqLen: 32)
        let w = LlamaWeights.random(config: c, seed: 5, scale: 0.5)
        let (batch, seq) = (2, 8)
        var micro = [syntheticBatch(batch: batch, seq: seq, v: 37, seed: 1), syntheticBatch(batch: batch, seq: seq, v: 37, seed: 2)]
        // Logits of the inference program (llama.forward), an independent path to the same numbers.
        let logits = try micro.map { try LlamaModel(weights: w).forward(ids: $0.ids, batch: batch) }
        let v = c.vocabSize
        func argmax(_ m: Int, _ i: Int) -> Int32 { Int32((0..<v).max { logits[m][i * v + $0] < logits[m][i * v + $1] } ?? 0) }
        // Half the targets are the arg max, so the accuracy is neither 0 nor 1.
        for m in micro.indices { for i in micro[m].targets.indices where i % 2 == 0 { micro[m].targets[i] = argmax(m, i) } }
        var entropy = 0.0, correct = 0.0, tokens = 0.0
        for (m, b) in micro.enumerated() {
            for i in b.scored {
                let row = (0..<v).map { Double(logits[m][i * v + $0]) }
                let mx = row.max() ?? 0, z = row.reduce(0) { $0 + exp($1 - mx) }
                entropy -= row.reduce(0) { let lp = $1 - mx - log(z); return $0 + exp(lp) * lp }
                correct += argmax(m, i) == b.targets[i] ? 1 : 0
                tokens += 1
            }
        }
        let r = try LMTrainer(parameters: ParameterStore(weights: w)).trainStep(micro, lr: 0)
        #expect(abs(r.entropy - entropy / tokens) <= 1e-5 * entropy / tokens, "\(r.entropy) vs \(entropy / tokens)")
        #expect(abs(r.accuracy - correct / tokens) <= 1e-6, "\(r.accuracy) vs \(correct / tokens)")
        #expect(correct > 0 && correct < tokens)
    }
}

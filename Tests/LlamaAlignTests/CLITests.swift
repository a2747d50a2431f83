import Foundation
import Testing
@testable import Alignment

@Suite struct CLITests {
    /// As the environment has it, and with OPENBLAS_CORETYPE removed (the kernels the program
    /// chooses from the CPU's features: AVX-512 ones where the CPU has them).
    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin", "golden/stories260K_greedy.json"), "needs ../shared"),
          arguments: [false, true])
    func generateGreedyIdsMatchGolden(ownCoreChoice: Bool) throws {
        let model = try SharedFixtures.require("models/stories260K.bin")
        let goldenPath = try SharedFixtures.require("golden/stories260K_greedy.json")
        struct Golden: Decodable { var greedy_ids: [Int32] }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: goldenPath)))
        guard let r = try CLI.run(["generate", "--model", model, "--prompt-ids", "1", "--max-new-tokens", "64",
                                   "--temperature", "0", "--print-ids"],
                                  environment: ownCoreChoice ? ["OPENBLAS_CORETYPE": nil] : [:]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let ids = r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
        #expect(ids == golden.greedy_ids)
        #expect(r.stdout.split(separator: "\n").count == 1)
    }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model", "golden/llama2_tokenizer_cases.jsonl"), "needs ../shared"))
    func tokenizeMatchesSentencePiece() throws {
        let tok = try SharedFixtures.require("tokenizers/llama2/tokenizer.model")
        let cases = try SharedFixtures.require("golden/llama2_tokenizer_cases.jsonl")
        struct Case: Decodable { var text: String; var ids: [Int32] }
        let lines = try String(contentsOfFile: cases, encoding: .utf8).split(separator: "\n")
        for line in lines.prefix(6) {
            let c = try JSONDecoder().decode(Case.self, from: Data(line.utf8))
            guard let r = try CLI.run(["tokenize", "--tokenizer", tok, "--ids-only", c.text]) else { return }
            #expect(r.status == 0)
            #expect(r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) } == c.ids, "\(c.text)")
        }
    }

    /// Each bad input: exit ≠ 0, one line on stderr naming the file and the problem, no crash.
    @Test func badModelFilesGiveOneClearLine() throws {
        let dir = SharedFixtures.tempDir("cli")
        let config = LlamaConfig(dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 11, maxSeqLen: 8)
        let good = dir.appendingPathComponent("good.bin").path
        try Llama2cCheckpoint.write(LlamaWeights.random(config: config, seed: 3), to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = dir.appendingPathComponent("truncated.bin").path
        try bytes.prefix(20).write(to: URL(fileURLWithPath: truncated))
        let shortBody = dir.appendingPathComponent("short.bin").path
        try bytes.prefix(bytes.count - 8).write(to: URL(fileURLWithPath: shortBody))
        // A safetensors header whose offsets run past the data.
        let hf = dir.appendingPathComponent("hf")
        try HFCheckpoint.save(LlamaWeights.random(config: config, seed: 4), to: hf.path)
        let st = hf.appendingPathComponent("model.safetensors")
        var raw = try Data(contentsOf: st)
        raw = raw.prefix(raw.count - 16)
        try raw.write(to: st)
        let cases: [(String, String)] = [
            (dir.appendingPathComponent("missing.bin").path, "missing.bin"),
            (truncated, "truncated.bin"),
            (shortBody, "short.bin"),
            (hf.path, "model.safetensors"),
        ]
        for (path, name) in cases {
            guard let r = try CLI.run(["generate", "--model", path, "--prompt-ids", "1", "--max-new-tokens", "2"]) else { return }
            #expect(r.status != 0 && r.status < 128, "\(name): status \(r.status)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(name): \(r.stderr)")
            #expect(r.stderr.contains(name), "\(name): \(r.stderr)")
        }
    }
}

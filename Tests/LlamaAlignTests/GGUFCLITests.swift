import Foundation
import Testing
@testable import Alignment

/// `llama-align export --gguf` and the commands that read `.gguf` models (`generate`, `eval`).
@Suite struct GGUFCLITests {
    struct Golden: Decodable { var greedy_ids: [Int32] }

    static func ids(_ text: String) -> [Int32] { text.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) } }

    /// stories260K exported as F32 GGUF generates llama2.c's greedy ids; F16 and the quantized
    /// files load and generate (how many of their tokens match is reported, not fixed here).
    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin", "golden/stories260K_greedy.json"), "needs ../shared"))
    func stories260KFromGGUFGeneratesTheGoldenIds() throws {
        let model = try SharedFixtures.require("models/stories260K.bin")
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: try SharedFixtures.require("golden/stories260K_greedy.json"))))
        let dir = SharedFixtures.tempDir("gguf")
        for type in ["f32", "q4_0"] {
            let out = dir.appendingPathComponent("s-\(type).gguf").path
            guard let e = try CLI.run(["export", "--gguf", "--type", type, "--model", model, "--out", out]) else { return }
            #expect(e.status == 0, "\(e.stderr)")
            #expect(e.stdout.contains("placeholder pieces"))
            if type == "q4_0" { #expect(e.stdout.contains("5 matrices have rows that are not a multiple of 32 and were written as F16")) }
            guard let r = try CLI.run(["generate", "--model", out, "--prompt-ids", "1", "--max-new-tokens", "64", "--temperature", "0", "--print-ids"]) else { return }
            #expect(r.status == 0, "\(r.stderr)")
            if type == "f32" { #expect(Self.ids(r.stdout) == golden.greedy_ids) } else { #expect(Self.ids(r.stdout).count == 64) }
        }
        // eval reads the GGUF too: the same loss as the .bin on pre-tokenized rows.
        let data = try jsonlFile([#"{"input_ids": [1, 461, 461, 401, 401, 401, 461, 378, 455]}"#, #"{"input_ids": [1, 300, 20, 7]}"#])
        let a = try CLI.run(["eval", "--model", model, "--data", data, "--json"]), b = try CLI.run(["eval", "--model", dir.appendingPathComponent("s-f32.gguf").path, "--data", data, "--json"])
        #expect(a?.status == 0 && a?.stdout == b?.stdout, "\(a?.stdout ?? "") vs \(b?.stdout ?? "") \(b?.stderr ?? "")")
    }

    /// A model folder with the byte-level tokenizer, exported to GGUF, generates from a text
    /// prompt with no tokenizer beside the file: the same ids and text as the folder.
    @Test func ggufCarriesItsTokenizer() throws {
        let dir = SharedFixtures.tempDir("gguf")
        let hf = dir.appendingPathComponent("model").path
        let config = LlamaConfig(dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 259, maxSeqLen: 64)
        try HFCheckpoint.save(LlamaWeights.random(config: config, seed: 9, scale: 0.2), to: hf)
        try Data().write(to: URL(fileURLWithPath: hf + "/tokenizer.byte"))
        let out = dir.appendingPathComponent("alone/m.gguf").path
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("alone").path, withIntermediateDirectories: true)
        guard let e = try CLI.run(["export", "--gguf", "--model", hf, "--out", out]) else { return }
        #expect(e.status == 0 && e.stdout.contains("byte-level vocabulary"), "\(e.stdout) \(e.stderr)")
        let args = ["--prompt", "Hello there", "--max-new-tokens", "12", "--temperature", "0"]
        let fromFolder = try CLI.run(["generate", "--model", hf] + args), fromGGUF = try CLI.run(["generate", "--model", out] + args)
        #expect(fromGGUF?.status == 0, "\(fromGGUF?.stderr ?? "")")
        #expect(fromFolder?.stdout == fromGGUF?.stdout && fromGGUF?.stdout.hasPrefix("Hello there") == true)
    }

    /// Export's options are checked before anything is read.
    @Test func exportRefusesBadOptions() throws {
        let cases: [([String], String)] = [
            (["export", "--model", "small", "--out", "x.gguf"], "--gguf"),
            (["export", "--gguf", "--model", "small", "--out", "x.bin"], "--out must name a .gguf file"),
            (["export", "--gguf", "--type", "q5_k", "--model", "small", "--out", "x.gguf"], "q5_k"),
            (["export", "--gguf", "--model", "/nonexistent/m.bin", "--out", "x.gguf"], "/nonexistent/m.bin"),
        ]
        for (args, expected) in cases {
            guard let r = try CLI.run(args) else { return }
            #expect(r.status != 0 && r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
    }
}

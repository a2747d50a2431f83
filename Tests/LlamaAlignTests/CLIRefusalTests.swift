import Foundation
import Testing
@testable import Alignment
import KernelRuntime

/// What a careless user gets told instead of a hang, a lost model or a quietly wrong number
/// (found by probing the CLI as a hostile user): each case exits 1 (64 for a bad option) saying what
/// is wrong, and the source files are left as they were.
@Suite struct CLIRefusalTests {
    static let config = LlamaConfig(dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 40, maxSeqLen: 16)

    /// A tiny Hugging Face model directory (with a generation_config.json) in a fresh folder.
    static func tinyModel() throws -> (dir: URL, model: String) {
        let dir = SharedFixtures.tempDir("refuse")
        let model = dir.appendingPathComponent("hf").path
        try HFCheckpoint.save(LlamaWeights.random(config: config, seed: 5, scale: 0.3), to: model)
        try Data(#"{"eos_token_id": 2, "temperature": 0.0, "max_new_tokens": 3}"#.utf8)
            .write(to: URL(fileURLWithPath: model).appendingPathComponent("generation_config.json"))
        return (dir, model)
    }

    static func expectRefused(_ args: [String], _ expected: String) throws {
        guard let r = try CLI.run(args) else { return }
        // 1 for an error found while running, 64 (EX_USAGE) for one `validate()` finds
        #expect(r.status == 1 || r.status == 64, "\(args): status \(r.status), \(r.stderr)")
        #expect(r.stderr.contains(expected), "\(args): \(r.stderr)")
    }

    /// Thread counts libomp cannot start (it printed an error and hung) and zero-length benchmarks.
    @Test func threadAndBenchmarkBounds() throws {
        for n in ["0", "100000"] {
            try Self.expectRefused(["bench", "generate", "--threads", n, "--runs", "1", "--tokens", "1", "--prompt", "1"],
                                   "--threads must be between 1 and")
        }
        try Self.expectRefused(["bench", "generate", "--runs", "0"], "--runs must be at least 1, got 0")
        try Self.expectRefused(["bench", "generate", "--prompt", "0"], "--prompt must be at least 1 token, got 0")
        try Self.expectRefused(["bench", "generate", "--tokens", "0"], "--tokens must be at least 1, got 0")
        #expect(KernelThreads.problem(with: 1) == nil && KernelThreads.problem(with: 0) != nil)
    }

    /// `quantize` never writes over its source or another model; it keeps generation_config.json.
    @Test func quantizeKeepsItsSourceAndGenerationConfig() throws {
        let (dir, model) = try Self.tinyModel()
        let before = try Data(contentsOf: URL(fileURLWithPath: model).appendingPathComponent("model.safetensors"))
        try Self.expectRefused(["quantize", "--model", model, "--type", "q8_0", "--out", model], "is where the source model")
        try Self.expectRefused(["quantize", "--model", model, "--type", "q8_0", "--out", model + "/../hf"], "is where the source model")
        #expect(try Data(contentsOf: URL(fileURLWithPath: model).appendingPathComponent("model.safetensors")) == before)
        let out = dir.appendingPathComponent("q8").path
        guard let r = try CLI.run(["quantize", "--model", model, "--type", "q8_0", "--out", out]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: out + "/generation_config.json"))
        try Self.expectRefused(["quantize", "--model", model, "--type", "q4_0", "--out", out], "already holds a model (config.json)")
        try Self.expectRefused(["merge", "--model", model, "--lora", model, "--out", out], "already holds a model (config.json)")
        // The saved checkpoint generates as --quant on load does, greedy and stopping at EOS as configured.
        let a = try #require(try CLI.run(["generate", "--model", out, "--prompt-ids", "1", "--print-ids"]))
        let b = try #require(try CLI.run(["generate", "--model", model, "--quant", "q8_0", "--prompt-ids", "1", "--print-ids"]))
        #expect(a.status == 0 && a.stdout == b.stdout, "\(a.stdout) vs \(b.stdout) \(a.stderr)")
        try Self.expectRefused(["generate", "--model", out, "--group-size", "64", "--prompt-ids", "1"], "--group-size 64 needs --quant")
        try Self.expectRefused(["generate", "--model", model, "--group-size", "64", "--prompt-ids", "1"], "--group-size 64 needs --quant")
    }

    /// A GGUF file of Q8_0 tensors is not quantized again (`--quant`, `quantize`, `export` to
    /// another quantized type) and is never overwritten by its own export.
    @Test func quantizedGGUFIsNotQuantizedAgain() throws {
        let (dir, model) = try Self.tinyModel()
        let gguf = dir.appendingPathComponent("m8.gguf").path
        guard let e = try CLI.run(["export", "--gguf", "--type", "q8_0", "--model", model, "--out", gguf]) else { return }
        #expect(e.status == 0, "\(e.stderr)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: gguf))
        try Self.expectRefused(["generate", "--model", gguf, "--quant", "q4_0", "--prompt-ids", "1"], "is already quantized (Q8_0 tensors)")
        try Self.expectRefused(["quantize", "--model", gguf, "--type", "q4_0", "--out", dir.appendingPathComponent("x").path],
                               "is already quantized (Q8_0 tensors)")
        try Self.expectRefused(["export", "--gguf", "--type", "q4_0", "--model", gguf, "--out", dir.appendingPathComponent("m4.gguf").path],
                               "writing Q4_0 would quantize its values again")
        try Self.expectRefused(["export", "--gguf", "--type", "q8_0", "--model", gguf, "--out", gguf], "is the source model itself")
        #expect(try Data(contentsOf: URL(fileURLWithPath: gguf)) == bytes)
        // Its own type again is exact, and allowed.
        let again = dir.appendingPathComponent("again.gguf").path
        let r = try #require(try CLI.run(["export", "--gguf", "--type", "q8_0", "--model", gguf, "--out", again]))
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// `eval` on language-model rows: nothing to score is an error (it printed loss 0, perplexity
    /// 1), rows past the model's context are cut with a note, and DPO-only options are refused.
    @Test func evalSaysWhatItScored() throws {
        let (dir, model) = try Self.tinyModel()
        let empty = dir.appendingPathComponent("empty.jsonl").path
        try Data().write(to: URL(fileURLWithPath: empty))
        try Self.expectRefused(["eval", "--model", model, "--data", empty], "no tokens to score")
        let long = dir.appendingPathComponent("long.jsonl").path
        try Data(("{\"input_ids\": [" + (0..<40).map { String(($0 * 7) % 40) }.joined(separator: ", ") + "]}\n").utf8)
            .write(to: URL(fileURLWithPath: long))
        guard let r = try CLI.run(["eval", "--model", model, "--data", long, "--json"]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("1 rows cut to 16 tokens (the model's context)"), "\(r.stderr)")
        #expect(r.stdout.contains("\"tokens\":15"), "\(r.stdout)")
        try Self.expectRefused(["eval", "--model", model, "--data", long, "--beta", "0.5"], "--beta is for preference data")
        try Self.expectRefused(["eval", "--model", model, "--data", long, "--beta", "nan"], "--beta must be a finite number > 0")
    }

    /// Adapter and tokenizer paths that are not what they should be say so.
    @Test func adapterAndTokenizerPaths() throws {
        let (dir, model) = try Self.tinyModel()
        try Self.expectRefused(["generate", "--model", model, "--lora", dir.appendingPathComponent("none").path, "--prompt-ids", "1"],
                               "no such file or directory (expected a PEFT adapter directory)")
        try Self.expectRefused(["generate", "--model", model, "--lora", model, "--prompt-ids", "1"], "holds no adapter_config.json")
        try Self.expectRefused(["generate", "--model", model, "--prefix", model + "/config.json", "--prompt-ids", "1"], "is a file; pass the PEFT adapter's directory")
        // The byte-level tokenizer (259 pieces) does not fit a 40-word model: refused before any output.
        guard let r = try CLI.run(["generate", "--model", model, "--tokenizer", "byte", "--prompt", "hello"]) else { return }
        #expect(r.status == 1 && r.stdout.isEmpty, "\(r.status) \(r.stdout)")
        #expect(r.stderr.contains("byte has 259 pieces but the model"), "\(r.stderr)")
        let marker = dir.appendingPathComponent("tokenizer.byte").path
        try Data().write(to: URL(fileURLWithPath: marker))
        #expect(try loadTokenizer(path: marker).vocabSize == 259)
    }

    /// A DPO reference of another shape would run the policy's programs over the wrong buffers.
    @Test func referenceOfAnotherShapeIsRefused() throws {
        let policy = try LMTrainer(parameters: ParameterStore(weights: LlamaWeights.random(config: Self.config, seed: 1)))
        var other = Self.config
        other.vocabSize = 48
        let reference = try ParameterStore(weights: LlamaWeights.random(config: other, seed: 2))
        let e = #expect(throws: RuntimeError.self) { try DPOTrainer(policy: policy, reference: reference, settings: DPOSettings()) }
        #expect(e?.description.contains("the reference model's shape differs from the policy's") == true)
    }
}

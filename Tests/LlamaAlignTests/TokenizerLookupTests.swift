import Foundation
import Testing
@testable import Alignment

/// How a run finds its tokenizer beside the model, and what it says when that fails.
@Suite struct TokenizerLookupTests {
    static let config = LlamaConfig(dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 300, maxSeqLen: 24)

    @Test func aLlama2cModelWithNoTokenizerBesideItSaysWhatToSet() throws {
        let dir = SharedFixtures.tempDir("bin-alone").path
        let model = dir + "/model.bin"
        try Llama2cCheckpoint.write(LlamaWeights.random(config: Self.config, seed: 2), to: model)
        let obj: [String: Any] = ["model_name_or_path": model, "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
                                  "output_dir": dir + "/out", "max_steps": 1]
        let args = dir + "/args.json"
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: args))
        guard let r = try CLI.run(["sft", args]) else { return }
        #expect(r.status != 0)
        #expect(r.stderr.contains("no tokenizer beside this model file") && r.stderr.contains("tokenizer_name_or_path"), "\(r.stderr)")
        // With a tokenizer beside it, it is found.
        try Data().write(to: URL(fileURLWithPath: dir + "/tokenizer.byte"))
        #expect(try tokenizerPath(explicit: nil, model: model) == dir)
    }

    @Test func aCorruptTokenizerBesideTheModelIsReportedAsCorrupt() throws {
        let dir = SharedFixtures.tempDir("bad-tok").path
        try HFCheckpoint.save(LlamaWeights.random(config: Self.config, seed: 2), to: dir)
        try Data([0x0a, 0xff, 0x01, 0x02]).write(to: URL(fileURLWithPath: dir + "/tokenizer.model"))
        guard let r = try CLI.run(["generate", "--model", dir, "--prompt", "hi", "--max-new-tokens", "2"]) else { return }
        #expect(r.status != 0)
        #expect(r.stderr.contains("tokenizer.model") && !r.stderr.contains("no tokenizer found"), "\(r.stderr)")
    }
}

import Foundation
import Testing
@testable import Alignment

/// A GGUF file whose projections are Q8_0 or Q4_0 runs on the quantized kernels as it is: the
/// blocks become the programs' quantized matrices unchanged, so it gives exactly the logits of
/// the same f32 model quantized on load (both quantize as ggml does), and `generate` on the file
/// gives `generate --quant` on the f32 folder's greedy ids.
struct GGUFQuantizedTests {
    static let config = LlamaConfig(dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 96, maxSeqLen: 64)

    /// Writes the f32 model as a Hugging Face folder and as a GGUF of `type` (vocabulary
    /// matrices kept f32, as `--quant` keeps the embedding), returning both paths.
    func files(_ type: GGUFLlama.FileType) throws -> (hf: String, gguf: String, weights: LlamaWeights) {
        let dir = SharedFixtures.tempDir("ggufq")
        let w = LlamaWeights.random(config: Self.config, seed: 21, scale: 0.3)
        let hf = dir.appendingPathComponent("model").path
        try HFCheckpoint.save(w, to: hf)
        let gguf = dir.appendingPathComponent("m-\(type.rawValue).gguf").path
        try GGUFLlama.export(w, vocabulary: GGUFVocabulary.from(nil, vocabSize: Self.config.vocabSize, source: "test"), type: type,
                              vocabularyType: .f32, name: "test", to: gguf)
        return (hf, gguf, w)
    }

    @Test(arguments: [GGUFLlama.FileType.q8_0, .q4_0])
    func quantizedGGUFRunsOnTheQuantizedKernels(_ type: GGUFLlama.FileType) throws {
        let (_, gguf, w) = try files(type)
        let fromFile = try loadInferenceModel(path: gguf)
        #expect(fromFile.programs.contains { $0.manifest.name.hasSuffix(type == .q8_0 ? "_q8" : "_q4") })
        let quant: QuantType = type == .q8_0 ? .q8_0 : .q4_0
        let onLoad = try LlamaModel(quantized: QuantizedWeights(quantizing: w, type: quant, groupSize: 32))
        let ids: [Int32] = [1, 5, 17, 33, 60, 2, 9, 90]
        let a = try fromFile.forward(ids: ids, batch: 1), b = try onLoad.forward(ids: ids, batch: 1)
        #expect(a.count == b.count && a == b)
    }

    @Test func generateOnAQuantizedGGUFEqualsQuantOnLoad() throws {
        let (hf, gguf, _) = try files(.q8_0)
        let common = ["--prompt-ids", "1 7 3", "--max-new-tokens", "24", "--temperature", "0", "--print-ids"]
        guard let a = try CLI.run(["generate", "--model", gguf] + common),
              let b = try CLI.run(["generate", "--model", hf, "--quant", "q8_0"] + common) else { return }
        #expect(a.status == 0 && b.status == 0, "\(a.stderr) \(b.stderr)")
        #expect(!a.stdout.isEmpty && a.stdout == b.stdout)
        #expect(!a.stderr.contains("dequantized"), "\(a.stderr)")
    }
}

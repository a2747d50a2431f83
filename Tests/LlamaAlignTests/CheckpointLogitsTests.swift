import Foundation
import Testing
@testable import Alignment

@Suite struct CheckpointLogitsTests {
    /// The same weights through llama2.c `.bin` and through a Hugging Face directory (q/k rows
    /// permuted for rotate-half RoPE on save, back on load) give the same logits.
    @Test(arguments: [true, false])
    func hfAndLlama2cGiveSameLogits(tied: Bool) throws {
        let config = LlamaConfig(dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 29, maxSeqLen: 16,
                                 tiedEmbeddings: tied)
        let w = LlamaWeights.random(config: config, seed: tied ? 5 : 6, scale: 0.2)
        let dir = SharedFixtures.tempDir("hfbin")
        let bin = dir.appendingPathComponent("m.bin").path, hf = dir.appendingPathComponent("hf").path
        try Llama2cCheckpoint.write(w, to: bin)
        try HFCheckpoint.save(w, to: hf)
        let ids: [Int32] = [1, 7, 3, 28, 11, 0, 5, 9]
        let a = try LlamaModel(weights: try loadModel(path: bin)).forward(ids: ids, batch: 2)
        let b = try LlamaModel(weights: try loadModel(path: hf)).forward(ids: ids, batch: 2)
        #expect(a == b)
        // The HF file really stores rotate-half rows: head 0's row 1 is internal row 2.
        let st = try Safetensors.read(path: hf + "/model.safetensors")
        let q = try #require(st["model.layers.0.self_attn.q_proj.weight"])
        let wq = try #require(w.tensors["wq"])
        #expect(Array(q.values[32..<64]) == Array(wq[64..<96]))
    }
}

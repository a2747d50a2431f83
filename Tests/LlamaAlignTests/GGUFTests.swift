import Foundation
import Testing
@testable import Alignment

/// GGUF in and out: ggml's Q8_0/Q4_0 blocks against the `gguf` Python package, a file written
/// by that package's GGUFWriter against transformers' logits, and write → read round trips.
/// Fixtures: `Fixtures/gguf` (made by `Fixtures/make_gguf_fixtures.py`).
@Suite struct GGUFTests {
    static let fixtures: URL = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.appendingPathComponent("Fixtures/gguf")
    }()

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    struct QuantCase: Decodable { var x: [Double]; var blocks: String }
    struct QuantCases: Decodable { var q8_0: [QuantCase]; var q4_0: [QuantCase] }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Every block our encoder makes equals the one `gguf.quants.quantize` made from the same floats
    /// (ties in |x|, roundf halves, zero blocks, fp16 underflow and overflow of the scale).
    @Test(arguments: [GGMLType.q8_0, .q4_0])
    func blocksEqualTheGGUFPackage(type: GGMLType) throws {
        let all = try JSONDecoder().decode(QuantCases.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixture("quant_blocks.json"))))
        let cases = type == .q8_0 ? all.q8_0 : all.q4_0
        #expect(cases.count == 11)
        for (i, c) in cases.enumerated() {
            let x = c.x.map { Float($0) }
            #expect(Self.hex(GGUFWriter.encode(x, as: type)) == c.blocks, "case \(i)")
        }
    }

    /// Unpacked blocks hold what the file's bytes say: low nibbles are elements 0…15, high 16…31.
    @Test func unpackedQ4_0AndQ8_0Layout() {
        var block: [UInt8] = [0x00, 0x3C]  // d = 1.0 in fp16
        block += (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let q4 = block.withUnsafeBytes { GGUFBlocks.unpack(.q4_0, $0) }
        let low: [Int8] = (0..<16).map { Int8($0) - 8 }, high: [Int8] = (0..<16).map { 7 - Int8($0) }
        #expect(q4.scales == [1])
        #expect(q4.values == low + high)
        let q8values: [Int8] = (0..<32).map { (i: Int) -> Int8 in Int8(i * 8 - 128) }
        let q8bytes: [UInt8] = [0x00, 0xC0] + q8values.map { UInt8(bitPattern: $0) }  // d = −2
        let q8 = q8bytes.withUnsafeBytes { GGUFBlocks.unpack(.q8_0, $0) }
        #expect(q8.scales == [-2])
        #expect(q8.values == q8values)
        let want: [Float] = q8values.map { Float($0) * -2 }
        #expect(GGUFBlocks.dequantize(scales: q8.scales, values: q8.values) == want)
    }

    struct TinyGolden: Decodable { var ids: [[Int32]]; var logits: [Double]; var vocab_size: Int; var texts: [String]; var text_ids: [[Int32]] }

    /// A GGUF written by the `gguf` package's GGUFWriter (F32, F16, BF16, Q8_0 and Q4_0 tensors,
    /// q/k permuted as llama.cpp's converter does) loads as a model whose logits are transformers'
    /// on the dequantized weights, and its vocabulary encodes as SentencePiece does.
    @Test func pythonWrittenFileGivesTransformersLogits() throws {
        let g = try JSONDecoder().decode(TinyGolden.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixture("tiny_golden.json"))))
        let path = Self.fixture("tiny_mixed.gguf")
        let w = try loadModel(path: path)
        #expect(w.config == LlamaConfig(dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: g.vocab_size,
                                        maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false))
        let logits = try LlamaModel(weights: w).forward(ids: g.ids.flatMap { $0 }, batch: 1)
        let err = relativeError(logits, g.logits.map { Float($0) })
        #expect(err <= 1e-5, "logits differ from transformers' by \(err)")
        let file = try GGUFFile.read(path: path)
        #expect(Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0.type) })["output.weight"] == .bf16)
        let tok = try loadTokenizer(path: path)
        #expect(tok.vocabSize == g.vocab_size && tok.bosId == 1 && tok.eosId == 2)
        for (text, ids) in zip(g.texts, g.text_ids) { #expect(tok.encode(text) == ids, "\(text)") }
        #expect(try tokenizerPath(explicit: nil, model: path) == path)
    }

    /// The unpacked view of a quantized tensor: shapes, ranges, and the same values `floats` gives.
    @Test func quantizedTensorsUnpack() throws {
        let file = try GGUFFile.read(path: Self.fixture("tiny_mixed.gguf"))
        let q4 = try file.quantized("blk.0.attn_q.weight"), q8 = try file.quantized("token_embd.weight")
        #expect(q4.type == .q4_0 && q4.rows == 32 && q4.cols == 32 && q4.scales.count == 32 && q4.values.count == 1024)
        #expect(q4.values.allSatisfy { (-8...7).contains($0) } && Set(q4.values).count > 8)
        #expect(q8.type == .q8_0 && q8.rows == 281 && q8.cols == 32 && q8.scales.count == 281)
        #expect(q8.values.contains(127) || q8.values.contains(-127))
        #expect(q4.dequantized() == (try file.floats("blk.0.attn_q.weight")))
        #expect(q8.dequantized() == (try file.floats("token_embd.weight")))
        #expect(throws: CheckpointError.self) { try file.quantized("blk.0.attn_v.weight") }  // F16
    }

    /// A GQA model with rows that fit Q8_0/Q4_0 (and, in `w2`, rows that do not).
    static func tinyWeights(hidden: Int = 64, tied: Bool = false) -> LlamaWeights {
        let c = LlamaConfig(dim: 32, hiddenDim: hidden, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 40, maxSeqLen: 16,
                            normEps: 1e-6, ropeTheta: 5000, tiedEmbeddings: tied)
        return LlamaWeights.random(config: c, seed: 3, scale: 0.3)
    }

    /// Write → read is bit-exact per type: the stored bytes are our encoding of the weights, and
    /// the values read are F32 as written, F16 rounded, Q8_0/Q4_0 ggml's dequantization of them;
    /// the configuration and the vocabulary come back.
    @Test(arguments: GGUFLlama.FileType.allCases)
    func writeReadRoundTripIsBitExact(type: GGUFLlama.FileType) throws {
        let w = Self.tinyWeights(hidden: 48)
        let path = SharedFixtures.tempDir("gguf").appendingPathComponent("m.gguf").path
        let vocab = try GGUFVocabulary.from(nil, vocabSize: 40, source: "none")
        let summary = try GGUFLlama.export(w, vocabulary: vocab, type: type, name: "tiny", to: path)
        let file = try GGUFFile.read(path: path)
        #expect(file.version == 3 && file.dataOffset % 32 == 0 && file.tensors.allSatisfy { $0.offset % 32 == 0 })
        #expect(try GGUFVocabulary.read(from: file) == vocab)
        let back = try GGUFLlama.weights(file)
        #expect(back.config == w.config)
        #expect(summary.fallbacks == (type.tensorType.blockSize > 1 ? ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"] : []))
        for (name, shape) in w.config.parameterShapes {
            let stacked = GGUFLlama.layerTensors.contains { $0.param == name }
            let rowsPerLayer = (stacked ? Array(shape.dropFirst()) : shape).reduce(1, *)
            for layer in 0..<(stacked ? w.config.nLayers : 1) {
                let g = try #require(GGUFLlama.tensorName(name, layer: stacked ? layer : nil))
                let t = try #require(file.tensor(g))
                let original = Array(w.tensors[name]![(layer * rowsPerLayer)..<((layer + 1) * rowsPerLayer)])
                #expect([UInt8](try file.rawBytes(g)) == GGUFWriter.encode(original, as: t.type), "\(g)")
                let expected: [Float]
                switch t.type {
                case .f32: expected = original
                case .f16: expected = original.map { HalfFloat.floatFromF16(HalfFloat.f16FromFloat($0)) }
                default: expected = try file.quantized(g).dequantized()
                }
                let read = Array(back.tensors[name]![(layer * rowsPerLayer)..<((layer + 1) * rowsPerLayer)])
                #expect(read.map(\.bitPattern) == expected.map(\.bitPattern), "\(g)")
                if name.hasSuffix("norm") { #expect(t.type == .f32) }
                if !name.hasSuffix("norm") && !g.contains("ffn_down") { #expect(t.type == type.tensorType, "\(g)") }
            }
        }
    }

    /// The tokenizers a model folder may hold come back from the GGUF file: SentencePiece pieces,
    /// scores and types (padded to the model's vocabulary), and the byte-level tokenizer.
    @Test func vocabulariesRoundTrip() throws {
        let dir = SharedFixtures.tempDir("gguf")
        let g = try JSONDecoder().decode(TinyGolden.self, from: Data(contentsOf: URL(fileURLWithPath: Self.fixture("tiny_golden.json"))))
        let source = try loadTokenizer(path: Self.fixture("tiny_mixed.gguf"))
        var w = Self.tinyWeights(tied: true)
        w.config.vocabSize = 300
        w = LlamaWeights.random(config: w.config, seed: 4)
        let path = dir.appendingPathComponent("spm.gguf").path
        try GGUFLlama.export(w, vocabulary: try GGUFVocabulary.from(source, vocabSize: 300, source: "t"), type: .f16, name: "t", to: path)
        let vocab = try #require(try GGUFVocabulary.read(from: GGUFFile.read(path: path)))
        #expect(vocab.pieces.count == 300 && vocab.pieces[281] == "[PAD281]" && vocab.types[299] == 5)
        let tok = try loadTokenizer(path: path)
        for (text, ids) in zip(g.texts, g.text_ids) { #expect(tok.encode(text) == ids, "\(text)") }
        #expect(try GGUFLlama.load(path: path).config.tiedEmbeddings)

        w.config.vocabSize = 259
        w = LlamaWeights.random(config: w.config, seed: 5)
        let bytePath = dir.appendingPathComponent("byte.gguf").path
        try GGUFLlama.export(w, vocabulary: try GGUFVocabulary.from(ByteTokenizer(), vocabSize: 259, source: "byte"), type: .q8_0, name: "b", to: bytePath)
        #expect(try loadTokenizer(path: bytePath) is ByteTokenizer)
        #expect(throws: CheckpointError.self) { try GGUFVocabulary.from(ByteTokenizer(), vocabSize: 100, source: "byte") }
    }
}

import Foundation
import Testing
@testable import Alignment

/// Bad GGUF files give one-line errors naming the file (and the tensor or key), never a trap:
/// unsupported tensor types, truncation at every length, and headers that lie about counts,
/// string lengths, offsets and sizes.
@Suite struct GGUFBadInputTests {
    /// A small valid file: the tiny model in `type` with a placeholder vocabulary.
    static func validFile(_ type: GGUFLlama.FileType = .q8_0) -> Data {
        let w = GGUFTests.tinyWeights()
        let (writer, _) = GGUFLlama.writer(w, vocabulary: GGUFVocabulary.placeholder(vocabSize: 40), type: type, name: "t")
        return writer.encoded()
    }

    /// Parses and loads `data` as the model `bad.gguf`; returns the error's text, nil when accepted.
    static func loadError(_ data: Data) -> String? {
        do {
            _ = try GGUFLlama.weights(GGUFFile.parse(data, path: "bad.gguf"))
            return nil
        } catch let e as CheckpointError {
            #expect(e.path == "bad.gguf" && !e.description.contains("\n"), "\(e)")
            return e.description
        } catch {
            Issue.record("not a CheckpointError: \(error)")
            return "\(error)"
        }
    }

    /// Byte position of the field after tensor `name`'s type in the tensor table (its offset).
    static func offsetField(_ data: Data, tensor name: String, dims: Int) throws -> Int {
        var key = Data()
        withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian) { key.append(contentsOf: $0) }
        key.append(contentsOf: Array(name.utf8))
        let r = try #require(data.range(of: key))
        return r.upperBound + 4 + 8 * dims + 4
    }

    static func patch(_ data: Data, at position: Int, _ value: UInt64) -> Data {
        var d = data
        withUnsafeBytes(of: value.littleEndian) { d.replaceSubrange(position..<(position + 8), with: $0) }
        return d
    }

    static func patch32(_ data: Data, at position: Int, _ value: UInt32) -> Data {
        var d = data
        withUnsafeBytes(of: value.littleEndian) { d.replaceSubrange(position..<(position + 4), with: $0) }
        return d
    }

    /// A tensor in a type this reader does not decode is an error naming the tensor and the type,
    /// through the library and through `generate`.
    @Test func unsupportedTensorTypeNamesTensorAndType() throws {
        let w = GGUFTests.tinyWeights()
        var (writer, _) = GGUFLlama.writer(w, vocabulary: GGUFVocabulary.placeholder(vocabSize: 40), type: .f32, name: "t")
        var replaced = GGUFWriter()
        for (k, v) in writer.metadata { replaced.add(k, v) }
        for t in writer.tensors {
            if t.name == "blk.1.attn_k.weight" {
                replaced.addTensor(t.name, dims: t.dims, type: GGMLType(rawValue: 12), bytes: Array(repeating: 0, count: 144 * 2))
            } else {
                replaced.addTensor(t.name, dims: t.dims, type: t.type, bytes: t.bytes)
            }
        }
        writer = replaced
        let message = try #require(Self.loadError(writer.encoded()))
        #expect(message.contains("tensor 'blk.1.attn_k.weight' has type Q4_K (ggml type 12), which is not supported"), "\(message)")
        let path = SharedFixtures.tempDir("gguf").appendingPathComponent("q4k.gguf").path
        try writer.write(to: path)
        guard let r = try CLI.run(["generate", "--model", path, "--prompt-ids", "1", "--max-new-tokens", "2"]) else { return }
        #expect(r.status != 0 && r.stderr.contains("\(path): tensor 'blk.1.attn_k.weight' has type Q4_K"), "\(r.stderr)")
    }

    /// Every prefix of a file that cuts into its header or data is refused with an error (the
    /// header region byte by byte, the data in steps).
    @Test func truncatedFilesAreErrors() throws {
        let data = Self.validFile(.q4_0)
        let file = try GGUFFile.parse(data, path: "ok.gguf")
        #expect(throws: Never.self) { try GGUFLlama.weights(file) }
        // The data ends with the last tensor; only the alignment padding after it may go.
        let end = file.tensors.map { $0.offset + ($0.byteCount ?? 0) }.max() ?? 0
        let lengths = Array(0..<file.dataOffset) + Array(stride(from: file.dataOffset, to: end, by: 37))
        for n in lengths { #expect(Self.loadError(data.prefix(n)) != nil, "prefix of \(n) bytes accepted") }
        #expect(Self.loadError(data.prefix(end - 1))?.contains("ends past the end of the file") == true)
        #expect(Self.loadError(data.prefix(end)) == nil)
    }

    /// Counts, lengths, dimensions and offsets that lie are errors that say what is wrong.
    @Test func lyingHeadersAreErrors() throws {
        let data = Self.validFile()
        let file = try GGUFFile.parse(data, path: "ok.gguf")
        let norm = try Self.offsetField(data, tensor: "output_norm.weight", dims: 1)
        let q = try Self.offsetField(data, tensor: "blk.0.attn_q.weight", dims: 2)
        let tokens = try #require(data.range(of: Data("tokenizer.ggml.tokens".utf8))).upperBound
        let firstKeyLength = 24
        let cases: [(String, Data, String)] = [
            ("tensor count", Self.patch(data, at: 8, UInt64.max), "the tensor count is 18446744073709551615"),
            ("metadata count", Self.patch(data, at: 16, 1 << 40), "the metadata count is 1099511627776"),
            ("key length", Self.patch(data, at: firstKeyLength, 1 << 50), "the length of metadata key 0 is 1125899906842624"),
            ("array count", Self.patch(data, at: tokens + 8, 1 << 33), "the element count of 'tokenizer.ggml.tokens' is 8589934592"),
            ("value type", Self.patch32(data, at: tokens, 77), "unknown value type 77"),
            ("offset past the end", Self.patch(data, at: norm, 1 << 20), "'output_norm.weight'"),
            ("huge offset", Self.patch(data, at: norm, UInt64.max), "tensor 'output_norm.weight' has offset 18446744073709551615"),
            ("unaligned offset", Self.patch(data, at: norm, UInt64(file.tensor("output_norm.weight")!.offset - file.dataOffset + 4)),
             "not a multiple of the alignment 32"),
            ("overlap", Self.patch(data, at: q, UInt64(file.tensor("blk.0.attn_k.weight")!.offset - file.dataOffset)), "overlap"),
            ("dimensions", Self.patch32(data, at: norm - 4 - 8 - 4, 9), "has 9 dimensions"),
            ("size", Self.patch(data, at: norm - 4 - 8, 1 << 62), "which is too large"),
            ("odd row", Self.patch(data, at: q - 4 - 16, 31), "not a multiple of its block of 32"),
            ("version", Self.patch32(data, at: 4, 1), "GGUF version 1 is not supported"),
            ("magic", Data("GGML".utf8) + data.dropFirst(4), "not a GGUF file"),
        ]
        for (what, bad, expected) in cases {
            let message = Self.loadError(bad)
            #expect(message?.contains(expected) == true, "\(what): \(message ?? "accepted")")
        }
    }

    /// Files that parse but do not describe a model this program runs say which key or tensor is wrong.
    @Test func unusableModelsNameTheKeyOrTensor() throws {
        let w = GGUFTests.tinyWeights()
        let (writer, _) = GGUFLlama.writer(w, vocabulary: GGUFVocabulary.placeholder(vocabSize: 40), type: .f32, name: "t")
        func edited(metadata edit: (String, GGUFValue) -> GGUFValue?, tensors keep: (String) -> Bool = { _ in true }) -> Data {
            var out = GGUFWriter()
            for (k, v) in writer.metadata { if let nv = edit(k, v) { out.add(k, nv) } }
            for t in writer.tensors where keep(t.name) { out.addTensor(t.name, dims: t.dims, type: t.type, bytes: t.bytes) }
            return out.encoded()
        }
        let cases: [(Data, String)] = [
            (edited(metadata: { k, v in k == "general.architecture" ? .string("qwen2") : v }), "general.architecture is 'qwen2'"),
            (edited(metadata: { k, v in k == "llama.block_count" ? nil : v }), "llama.block_count is missing"),
            (edited(metadata: { k, v in k == "llama.block_count" ? .string("2") : v }), "llama.block_count is string, expected an integer"),
            (edited(metadata: { k, v in k == "llama.rope.dimension_count" ? .uint32(4) : v }), "llama.rope.dimension_count is 4"),
            (edited(metadata: { k, v in k == "llama.attention.head_count_kv" ? .uint32(3) : v }), "not a multiple of n_kv_heads 3"),
            (edited(metadata: { _, v in v }, tensors: { $0 != "blk.1.ffn_up.weight" }), "no tensor 'blk.1.ffn_up.weight'"),
            (edited(metadata: { k, v in k == "llama.feed_forward_length" ? .uint32(32) : v }), "tensor 'blk.0.ffn_gate.weight' has sizes [32, 64], expected [32, 32]"),
            (edited(metadata: { k, v in k == "llama.block_count" ? .uint32(1) : v }), "unexpected tensor 'blk.1.attn_norm.weight'"),
            (edited(metadata: { k, v in k == "general.architecture" ? .uint32(7) : v }), "general.architecture is uint32, expected a string"),
        ]
        for (bad, expected) in cases {
            let message = Self.loadError(bad)
            #expect(message?.contains(expected) == true, "\(expected): \(message ?? "accepted")")
        }
        // Scaled RoPE, however it is said (llama.cpp applies a factor without a type as linear
        // scaling), is refused rather than run unscaled; a factor of 1 (or 0, "unset") is not scaling.
        for (key, value, expected) in [("llama.rope.scaling.factor", GGUFValue.float32(4), "llama.rope.scaling.factor is 4.0; scaled RoPE is not supported"),
                                       ("llama.rope.scale_linear", .float32(2), "llama.rope.scale_linear is 2.0; scaled RoPE"),
                                       ("llama.rope.scaling.type", .uint32(1), "llama.rope.scaling.type is uint32, expected a string"),
                                       ("llama.rope.scaling.type", .string("yarn"), "llama.rope.scaling.type is 'yarn'"),
                                       ("llama.rope.scaling.factor", .float32(1), ""), ("llama.rope.scaling.factor", .float32(0), "")] {
            var scaled = writer
            scaled.add(key, value)
            let message = Self.loadError(scaled.encoded())
            if expected.isEmpty { #expect(message == nil, "\(key) \(value): \(message ?? "")") } else {
                #expect(message?.contains(expected) == true, "\(expected): \(message ?? "accepted")")
            }
        }
        // A vocabulary whose pieces do not match the embedding's rows (llama.cpp refuses it too).
        for count in [30, 50] {
            let pieces = GGUFVocabulary.placeholder(vocabSize: count)
            let other = edited(metadata: { k, v in
                switch k {
                case "tokenizer.ggml.tokens": .array(typeCode: 8, pieces.pieces.map { .string($0) })
                case "tokenizer.ggml.scores": .array(typeCode: 6, pieces.scores.map { .float32($0) })
                case "tokenizer.ggml.token_type": .array(typeCode: 5, pieces.types.map { .int32($0) })
                default: v
                }
            })
            let e = #expect(throws: CheckpointError.self) { try GGUFVocabulary.read(from: GGUFFile.parse(other, path: "v.gguf")) }
            #expect(e?.description == "v.gguf: tokenizer.ggml.tokens has \(count) pieces but token_embd.weight has 40 rows (the vocabulary); they must be equal")
        }
        var misaligned = GGUFWriter()
        misaligned.add("general.alignment", .uint32(48))
        #expect(Self.loadError(misaligned.encoded())?.contains("general.alignment is 48 (uint32), expected a uint32 power of two") == true)
        var twice = writer
        twice.add("tokenizer.ggml.bos_token_id", .uint32(1))
        #expect(Self.loadError(twice.encoded())?.contains("metadata key 'tokenizer.ggml.bos_token_id' appears twice") == true)
        let bos = edited(metadata: { k, v in k == "tokenizer.ggml.bos_token_id" ? .uint32(99) : v })
        let vocabError = #expect(throws: CheckpointError.self) { try GGUFVocabulary.read(from: GGUFFile.parse(bos, path: "v.gguf")) }
        #expect(vocabError?.description == "v.gguf: tokenizer.ggml.bos_token_id is 99 (uint32), outside the vocabulary of 40 pieces")
    }
}

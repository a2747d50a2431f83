import Alignment
import Foundation

/// Seed inputs made by the project's own writers (the checkpoints the test suite writes) or
/// encoded here (tokenizer files), small enough to mutate quickly. `run.sh` adds the bundled
/// examples and, when `LLAMA_ALIGN_SHARED` names a folder, trimmed copies of its files.
public enum Seeds {
    /// A tiny GQA model: 2 heads of size 2, 1 key/value head, 1 layer, 8 tokens.
    public static func tinyWeights(tied: Bool) -> LlamaWeights {
        let config = LlamaConfig(dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 8, maxSeqLen: 4,
                                 tiedEmbeddings: tied)
        return LlamaWeights.random(config: config, seed: 7)
    }

    /// A folder that is removed when `body` returns.
    static func withTemporaryFolder<T>(_ body: (URL) throws -> T) throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-align-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        return try body(dir)
    }

    /// `model.safetensors` and `config.json` of the tiny model as `HFCheckpoint.save` writes
    /// them (tied and untied), plus F16 and BF16 files and one with metadata and a scalar.
    public static func huggingFace() throws -> (safetensors: [(String, Data)], configs: [(String, Data)]) {
        try withTemporaryFolder { dir in
            var files: [(String, Data)] = [], configs: [(String, Data)] = []
            for tied in [true, false] {
                let sub = dir.appendingPathComponent(tied ? "tied" : "untied").path
                try HFCheckpoint.save(tinyWeights(tied: tied), to: sub)
                files.append(("\(tied ? "tied" : "untied").safetensors", try Data(contentsOf: URL(fileURLWithPath: sub + "/model.safetensors"))))
                configs.append(("\(tied ? "tied" : "untied")-config.json", try Data(contentsOf: URL(fileURLWithPath: sub + "/config.json"))))
            }
            let small: [String: Safetensors.Tensor] = ["a": .init(shape: [2, 3], values: [1, -2, 0.5, 65504, -0, 3e-8]),
                                                       "s": .init(shape: [], values: [4]), "z": .init(shape: [0, 5], values: [])]
            for dtype in Safetensors.DType.allCases {
                let path = dir.appendingPathComponent("small-\(dtype.rawValue).safetensors").path
                try Safetensors.write(small, to: path, dtype: dtype, metadata: ["format": "pt", "note": "fuzz \"seed\""])
                files.append(("small-\(dtype.rawValue).safetensors", try Data(contentsOf: URL(fileURLWithPath: path))))
            }
            configs.append(("transformers5-config.json", Data(#"""
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32,
                 "max_position_embeddings": 64, "rms_norm_eps": 1e-06, "head_dim": 2, "tie_word_embeddings": false,
                 "attention_bias": false, "mlp_bias": false, "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}}
                """#.utf8)))
            return (files, configs)
        }
    }

    /// The tiny model as `Llama2cCheckpoint.write` writes it (tied and untied).
    public static func llama2cCheckpoints() throws -> [(String, Data)] {
        try withTemporaryFolder { dir in
            try [true, false].map { tied in
                let path = dir.appendingPathComponent("m.bin").path
                try Llama2cCheckpoint.write(tinyWeights(tied: tied), to: path)
                return ("\(tied ? "tied" : "untied").bin", try Data(contentsOf: URL(fileURLWithPath: path)))
            }
        }
    }

    /// A small BPE vocabulary in SentencePiece's spelling: `<unk>`, `<s>`, `</s>`, byte pieces,
    /// then merges with falling scores. `allBytes` adds all 256 byte pieces, else a few.
    public static func vocabulary(allBytes: Bool) -> [(piece: String, score: Float, kind: Int)] {
        var v: [(String, Float, Int)] = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3)]
        let bytes: [UInt8] = allBytes ? Array(0...255) : [0x00, 0x0A, 0x20, 0x41, 0xC3, 0xA9, 0xE6, 0xF0, 0xFF]
        for b in bytes { v.append((String(format: "<0x%02X>", Int(b)), 0, 6)) }
        let merges = ["▁t", "he", "▁the", "▁a", "at", "▁c", "▁cat", "▁s", "▁sat", "▁o", "n", "▁on", "▁m", "▁mat", "ll", "o",
                      "▁he", "▁hello", "▁w", "or", "ld", "▁world", "▁", "e", "t", "a", "h", "c", "s", "m", "l", "w", "r", "d", "é", "日本"]
        for (i, m) in merges.enumerated() { v.append((m, -Float(i), 1)) }
        return v
    }

    /// A SentencePiece `tokenizer.model` (protobuf ModelProto) for `vocab`: the pieces, a
    /// TrainerSpec with model_type BPE and unk/bos/eos ids 0/1/2, and a NormalizerSpec with
    /// add_dummy_prefix.
    public static func sentencePieceModel(_ vocab: [(piece: String, score: Float, kind: Int)]) -> Data {
        var out = Protobuf()
        for p in vocab {
            var piece = Protobuf()
            piece.bytes(1, Array(p.piece.utf8))
            piece.fixed32(2, p.score.bitPattern)
            piece.varint(3, UInt64(p.kind))
            out.bytes(1, piece.out)
        }
        var trainer = Protobuf()
        trainer.varint(3, 2)
        trainer.varint(40, 0); trainer.varint(41, 1); trainer.varint(42, 2)
        trainer.varint(43, UInt64(bitPattern: -1))
        out.bytes(2, trainer.out)
        var normalizer = Protobuf()
        normalizer.bytes(1, Array("identity".utf8))
        normalizer.varint(3, 1)
        out.bytes(3, normalizer.out)
        return Data(out.out)
    }

    /// llama2.c's `tokenizer.bin` for `vocab`: int32 longest piece, then per piece a float32
    /// score, an int32 length and the bytes, `▁` written as a space as llama2.c's exporter does.
    public static func llama2cTokenizer(_ vocab: [(piece: String, score: Float, kind: Int)]) -> Data {
        var out = Data()
        func int32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let pieces = vocab.map { Array($0.piece.replacingOccurrences(of: "▁", with: " ").utf8) }
        int32(Int32(pieces.map(\.count).max() ?? 0))
        for (p, v) in zip(pieces, vocab) {
            int32(Int32(bitPattern: v.score.bitPattern))
            int32(Int32(p.count))
            out.append(contentsOf: p)
        }
        return out
    }

    /// The shared fixtures folder (`LLAMA_ALIGN_SHARED`), if it exists.
    public static var sharedFolder: String? {
        guard let dir = ProcessInfo.processInfo.environment["LLAMA_ALIGN_SHARED"], !dir.isEmpty,
              FileManager.default.fileExists(atPath: dir) else { return nil }
        return dir
    }

    /// The first `pieces` pieces of the shared LLaMA-2 `tokenizer.model` with its trainer and
    /// normalizer specs (the whole file is 500 KB: too big to mutate quickly), or nil without it.
    public static func trimmedSharedSentencePiece(pieces: Int) -> Data? {
        guard let dir = sharedFolder,
              let data = FileManager.default.contents(atPath: dir + "/tokenizers/llama2/tokenizer.model") else { return nil }
        let b = [UInt8](data)
        var at = 0, kept = 0
        var out: [UInt8] = []
        // Walk the top-level fields; every one of the ModelProto is length-delimited (wire type 2).
        while at < b.count {
            let start = at
            guard let key = Protobuf.readVarint(b, &at), key & 7 == 2, let n = Protobuf.readVarint(b, &at),
                  n <= UInt64(b.count - at) else { return nil }
            at += Int(n)
            if key >> 3 == 1 { kept += 1; if kept > pieces { continue } }
            out += b[start..<at]
        }
        return Data(out)
    }

    /// The header and first `pieces` pieces of the shared llama2.c `tokenizer.bin`, or nil.
    public static func trimmedSharedLlama2cTokenizer(pieces: Int) -> Data? {
        guard let dir = sharedFolder,
              let data = FileManager.default.contents(atPath: dir + "/tokenizers/llama2/tokenizer.bin") else { return nil }
        let b = [UInt8](data)
        var at = 4
        for _ in 0..<pieces {
            guard at + 8 <= b.count else { break }
            let n = Int(UInt32(b[at + 4]) | UInt32(b[at + 5]) << 8 | UInt32(b[at + 6]) << 16 | UInt32(b[at + 7]) << 24)
            guard n <= b.count - at - 8 else { return nil }
            at += 8 + n
        }
        return Data(b[0..<at])
    }

    /// The 28-byte header of the shared stories260K `.bin` (it then fails the length check).
    public static func sharedLlama2cHeader() -> Data? {
        guard let dir = sharedFolder,
              let handle = FileHandle(forReadingAtPath: dir + "/models/stories260K.bin") else { return nil }
        defer { try? handle.close() }
        return try? handle.read(upToCount: 28)
    }
}

/// Protobuf wire-format encoding, enough for a SentencePiece ModelProto.
struct Protobuf {
    var out: [UInt8] = []

    mutating func rawVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        out.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ v: UInt64) { rawVarint(UInt64(field) << 3); rawVarint(v) }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        rawVarint(UInt64(field) << 3 | 5)
        for k in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        rawVarint(UInt64(field) << 3 | 2)
        rawVarint(UInt64(b.count))
        out += b
    }

    /// A varint at `at` (advanced past it), or nil when truncated or longer than 10 bytes.
    static func readVarint(_ b: [UInt8], _ at: inout Int) -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while at < b.count, shift < 64 {
            let x = b[at]; at += 1
            v |= UInt64(x & 0x7F) << shift
            if x & 0x80 == 0 { return v }
            shift += 7
        }
        return nil
    }
}

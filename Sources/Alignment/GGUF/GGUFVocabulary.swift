import Foundation

/// The tokenizer part of a GGUF file, in llama.cpp's keys: `tokenizer.ggml.model = "llama"`
/// (SentencePiece BPE), `tokenizer.ggml.tokens` (pieces), `.scores` (float32 merge scores),
/// `.token_type` (int32, SentencePiece's piece types: 1 normal, 2 unknown, 3 control,
/// 4 user-defined, 5 unused, 6 byte), the `bos`/`eos`/`unknown` token ids and
/// `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix).
///
/// Two kinds LlamaAlign adds, marked by `llama_align.tokenizer`: `byte` (the bundled demos'
/// byte-level tokenizer, written as `<pad>`, `<s>`, `</s>` and the 256 byte pieces; llama.cpp
/// decodes it, but its encoder turns spaces into `▁`, so feed it ids) and `placeholder` (a model
/// that came without a tokenizer: `<unk>`, `<s>`, `</s>`, byte pieces and `<unused_N>`, there
/// only because llama.cpp needs a vocabulary as large as the model's; it is never used for text).
public struct GGUFVocabulary: Sendable, Equatable {
    public enum Kind: String, Sendable { case sentencePiece, byte, placeholder }
    public var kind: Kind
    public var pieces: [String]
    public var scores: [Float]
    /// SentencePiece piece types (`PieceKind` raw values).
    public var types: [Int32]
    public var bosId: Int32, eosId: Int32, unkId: Int32
    public var addSpacePrefix: Bool

    /// The vocabulary of `tokenizer` padded to `vocabSize` pieces (`[PAD{i}]`, unused, as
    /// llama.cpp's converter pads), or a placeholder when `tokenizer` is nil. A tokenizer with
    /// more pieces than the model, or one of no known kind, is an error naming `source`.
    public static func from(_ tokenizer: (any Tokenizer)?, vocabSize: Int, source: String) throws -> GGUFVocabulary {
        var v: GGUFVocabulary
        switch tokenizer {
        case let t as SentencePieceTokenizer: v = .init(t.vocab)
        case let t as Llama2cTokenizer: v = .init(t.vocab)
        case is ByteTokenizer:
            let pieces = (0..<259).map { ByteTokenizer().piece(Int32($0)) }
            v = .init(kind: .byte, pieces: pieces, scores: Array(repeating: 0, count: 259),
                      types: [3, 3, 3] + Array(repeating: 6, count: 256), bosId: 1, eosId: 2, unkId: 0, addSpacePrefix: false)
        case nil:
            return placeholder(vocabSize: vocabSize)
        default:
            throw CheckpointError(source, "this tokenizer cannot be written to GGUF (SentencePiece, llama2.c or byte-level only)")
        }
        guard v.pieces.count <= vocabSize else {
            throw CheckpointError(source, "the tokenizer has \(v.pieces.count) pieces, more than the model's vocabulary of \(vocabSize)")
        }
        for i in v.pieces.count..<vocabSize {
            v.pieces.append("[PAD\(i)]"); v.scores.append(0); v.types.append(Int32(PieceKind.unused.rawValue))
        }
        return v
    }

    init(kind: Kind, pieces: [String], scores: [Float], types: [Int32], bosId: Int32, eosId: Int32, unkId: Int32, addSpacePrefix: Bool) {
        self.kind = kind; self.pieces = pieces; self.scores = scores; self.types = types
        self.bosId = bosId; self.eosId = eosId; self.unkId = unkId; self.addSpacePrefix = addSpacePrefix
    }

    init(_ vocab: BPEVocabulary) {
        self.init(kind: .sentencePiece, pieces: vocab.pieces, scores: vocab.scores, types: vocab.kinds.map { Int32($0.rawValue) },
                  bosId: vocab.bosId, eosId: vocab.eosId, unkId: vocab.unkId, addSpacePrefix: vocab.addDummyPrefix)
    }

    /// `<unk>`, `<s>`, `</s>`, the byte pieces when they fit, then `<unused_N>`.
    static func placeholder(vocabSize: Int) -> GGUFVocabulary {
        var pieces = ["<unk>", "<s>", "</s>"], types: [Int32] = [2, 3, 3]
        if vocabSize >= 259 {
            pieces += (0..<256).map { String(format: "<0x%02X>", $0) }
            types += Array(repeating: 6, count: 256)
        }
        for i in pieces.count..<max(vocabSize, pieces.count) { pieces.append("<unused_\(i)>"); types.append(5) }
        pieces = Array(pieces.prefix(vocabSize)); types = Array(types.prefix(vocabSize))
        return .init(kind: .placeholder, pieces: pieces, scores: Array(repeating: 0, count: pieces.count), types: types,
                     bosId: 1, eosId: 2, unkId: 0, addSpacePrefix: true)
    }

    /// Adds the tokenizer keys to `w`.
    func write(to w: inout GGUFWriter) {
        w.add("tokenizer.ggml.model", .string("llama"))
        w.add("tokenizer.ggml.tokens", .array(typeCode: 8, pieces.map { .string($0) }))
        w.add("tokenizer.ggml.scores", .array(typeCode: 6, scores.map { .float32($0) }))
        w.add("tokenizer.ggml.token_type", .array(typeCode: 5, types.map { .int32($0) }))
        w.add("tokenizer.ggml.bos_token_id", .uint32(UInt32(bosId)))
        w.add("tokenizer.ggml.eos_token_id", .uint32(UInt32(eosId)))
        w.add("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unkId)))
        if kind == .byte { w.add("tokenizer.ggml.padding_token_id", .uint32(0)) }
        w.add("tokenizer.ggml.add_bos_token", .bool(true))
        w.add("tokenizer.ggml.add_eos_token", .bool(false))
        w.add("tokenizer.ggml.add_space_prefix", .bool(addSpacePrefix))
        if kind != .sentencePiece { w.add("llama_align.tokenizer", .string(kind.rawValue)) }
    }

    /// The vocabulary of `file`, nil when it has none (no `tokenizer.ggml.model`, `no_vocab`).
    /// Another tokenizer model (`gpt2`, …) or a malformed key is an error naming the file and key.
    public static func read(from file: GGUFFile) throws -> GGUFVocabulary? {
        let m = file.metadata
        func fail(_ s: String) -> CheckpointError { CheckpointError(file.path, s) }
        guard let modelValue = m["tokenizer.ggml.model"] else { return nil }
        guard let model = modelValue.string else { throw fail("tokenizer.ggml.model is \(modelValue.typeDescription), expected a string") }
        if model == "no_vocab" || model == "none" { return nil }
        guard model == "llama" else {
            throw fail("tokenizer.ggml.model '\(model)' is not supported; only SentencePiece ('llama') vocabularies are")
        }
        guard let tokens = m["tokenizer.ggml.tokens"]?.array, case .array(8, _)? = m["tokenizer.ggml.tokens"], !tokens.isEmpty else {
            throw fail("tokenizer.ggml.tokens is missing or not a non-empty array of strings")
        }
        let pieces = tokens.map { $0.string ?? "" }
        // One piece per row of the embedding, as llama.cpp requires (ids past the pieces would
        // decode to nothing; pieces past the rows would encode to ids the model does not have).
        if let embd = file.tensor("token_embd.weight"), embd.dims.count == 2, embd.dims[1] != pieces.count {
            throw fail("tokenizer.ggml.tokens has \(pieces.count) pieces but token_embd.weight has \(embd.dims[1]) rows (the vocabulary); they must be equal")
        }
        let scores = try floats(m["tokenizer.ggml.scores"], count: pieces.count, key: "tokenizer.ggml.scores", fail: fail) ?? Array(repeating: 0, count: pieces.count)
        var types = Array(repeating: Int32(1), count: pieces.count)
        if let t = m["tokenizer.ggml.token_type"] {
            guard let items = t.array, items.count == pieces.count, items.allSatisfy({ $0.int != nil }) else {
                throw fail("tokenizer.ggml.token_type is \(t.typeDescription) of \(t.array?.count ?? 0), expected \(pieces.count) integers")
            }
            types = items.map { Int32(clamping: $0.int ?? 1) }
        }
        func id(_ key: String, _ fallback: Int32) throws -> Int32 {
            guard let v = m["tokenizer.ggml.\(key)"] else { return fallback }
            guard let i = v.int, i >= 0, i < pieces.count else {
                throw fail("tokenizer.ggml.\(key) is \(v), outside the vocabulary of \(pieces.count) pieces")
            }
            return Int32(i)
        }
        let kind = Kind(rawValue: m["llama_align.tokenizer"]?.string ?? "") ?? .sentencePiece
        return GGUFVocabulary(kind: kind, pieces: pieces, scores: scores, types: types,
                              bosId: try id("bos_token_id", 1), eosId: try id("eos_token_id", 2), unkId: try id("unknown_token_id", 0),
                              addSpacePrefix: m["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
    }

    static func floats(_ v: GGUFValue?, count: Int, key: String, fail: (String) -> CheckpointError) throws -> [Float]? {
        guard let v else { return nil }
        guard let items = v.array, items.count == count, items.allSatisfy({ $0.float != nil }) else {
            throw fail("\(key) is \(v.typeDescription) of \(v.array?.count ?? 0), expected \(count) floats")
        }
        return items.map { $0.float ?? 0 }
    }

    /// The tokenizer this vocabulary describes: SentencePiece's encoder over the pieces and
    /// scores, the byte-level tokenizer, or nil for a placeholder vocabulary.
    public func tokenizer() -> (any Tokenizer)? {
        switch kind {
        case .placeholder: return nil
        case .byte where pieces.count >= 259: return ByteTokenizer()
        case .byte, .sentencePiece:
            let kinds = types.map { PieceKind(rawValue: Int($0)) ?? .normal }
            return SentencePieceTokenizer(vocab: BPEVocabulary(pieces: pieces, scores: scores, kinds: kinds, unk: unkId, bos: bosId,
                                                               eos: eosId, addDummyPrefix: addSpacePrefix))
        }
    }
}

extension SentencePieceTokenizer {
    /// A tokenizer over a vocabulary read from elsewhere (a GGUF file).
    init(vocab: BPEVocabulary) { self.vocab = vocab }
}

extension GGUFVocabulary {
    /// The tokenizer held by the GGUF file at `path`; nil when it holds none or a placeholder.
    public static func tokenizer(path: String) throws -> (any Tokenizer)? {
        try read(from: GGUFFile.read(path: path))?.tokenizer()
    }
}

/// True when `path` names a GGUF file (by its extension).
func isGGUF(_ path: String) -> Bool { path.lowercased().hasSuffix(".gguf") }

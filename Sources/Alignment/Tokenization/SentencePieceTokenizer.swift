import Foundation

/// LLaMA's SentencePiece BPE tokenizer, read from `tokenizer.model` (the protobuf is parsed here).
public struct SentencePieceTokenizer: Tokenizer {
    let vocab: BPEVocabulary

    /// Reads the `tokenizer.model` at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        try self.init(data: data, path: path)
    }

    /// Parses a `tokenizer.model`'s contents `data`; `path` names it in errors.
    public init(data: Data, path: String) throws {
        let bytes = [UInt8](data)
        var pieces: [String] = [], scores: [Float] = [], kinds: [PieceKind] = []
        var unk: Int32 = 0, bos: Int32 = 1, eos: Int32 = 2
        var addDummyPrefix = true
        var modelType: UInt64 = 1
        var top = ProtobufReader(bytes[...], path: path)
        while let (number, value) = try top.field() {
            guard case .bytes(let body) = value else { continue }
            var r = ProtobufReader(body, path: path)
            switch number {
            case 1:   // SentencePiece { piece, score, type }
                var piece = "", score: Float = 0, kind = PieceKind.normal
                while let (n, v) = try r.field() {
                    switch (n, v) {
                    case (1, .bytes(let s)): piece = String(decoding: s, as: UTF8.self)
                    case (2, .fixed32(let f)): score = Float(bitPattern: f)
                    case (3, .varint(let t)): kind = Int(exactly: t).flatMap(PieceKind.init(rawValue:)) ?? .normal
                    default: break
                    }
                }
                pieces.append(piece); scores.append(score); kinds.append(kind)
            case 2:   // TrainerSpec
                while let (n, v) = try r.field() {
                    guard case .varint(let x) = v else { continue }
                    switch n {
                    case 3: modelType = x
                    case 40: unk = Int32(truncatingIfNeeded: Int64(bitPattern: x))
                    case 41: bos = Int32(truncatingIfNeeded: Int64(bitPattern: x))
                    case 42: eos = Int32(truncatingIfNeeded: Int64(bitPattern: x))
                    default: break
                    }
                }
            case 3:   // NormalizerSpec
                while let (n, v) = try r.field() {
                    if n == 3, case .varint(let x) = v { addDummyPrefix = x != 0 }
                }
            default: break
            }
        }
        guard !pieces.isEmpty else { throw TokenizerError(path, "no vocabulary pieces (not a SentencePiece model?)") }
        guard modelType == 2 else { throw TokenizerError(path, "model type \(modelType) is not BPE (2); only LLaMA-style BPE models are supported") }
        // Every row starts with BOS and every answer ends with EOS; UNK spells unknown bytes.
        for (name, id) in [("unk_id", unk), ("bos_id", bos), ("eos_id", eos)] where id < 0 || Int(id) >= pieces.count {
            throw TokenizerError(path, "\(name) \(id) is outside the vocabulary (\(pieces.count) pieces); LLaMA models need unk, BOS and EOS pieces")
        }
        vocab = BPEVocabulary(pieces: pieces, scores: scores, kinds: kinds, unk: unk, bos: bos, eos: eos, addDummyPrefix: addDummyPrefix)
    }

    public var vocabSize: Int { vocab.pieces.count }
    public var bosId: Int32 { vocab.bosId }
    public var eosId: Int32 { vocab.eosId }
    public func encode(_ text: String) -> [Int32] { vocab.encode(text) }
    public func piece(_ id: Int32) -> String { id >= 0 && Int(id) < vocab.pieces.count ? vocab.pieces[Int(id)] : "" }
    public func bytes(of id: Int32, first: Bool) -> [UInt8] { vocab.bytes(of: id, first: first) }
}

/// llama2.c's `tokenizer.bin`: int32 max piece length, then per piece a float32 score, an
/// int32 byte length and the bytes. Ids 0/1/2 are `<unk>`, `<s>`, `</s>`; `<0xNN>` are bytes.
public struct Llama2cTokenizer: Tokenizer {
    let vocab: BPEVocabulary

    /// Reads the `tokenizer.bin` at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        try self.init(data: data, path: path)
    }

    /// Parses a `tokenizer.bin`'s contents `data`; `path` names it in errors.
    public init(data: Data, path: String) throws {
        let b = [UInt8](data)
        func int32(_ at: Int) -> Int32 { Int32(bitPattern: UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24) }
        guard b.count >= 4 else { throw TokenizerError(path, "truncated: \(b.count) bytes, no header") }
        var at = 4
        var pieces: [String] = [], scores: [Float] = [], kinds: [PieceKind] = []
        while at < b.count {
            guard at + 8 <= b.count else { throw TokenizerError(path, "truncated at byte \(at): piece \(pieces.count) has no score/length") }
            let score = Float(bitPattern: UInt32(bitPattern: int32(at)))
            let n = Int(int32(at + 4))
            at += 8
            guard n >= 0, at + n <= b.count else { throw TokenizerError(path, "truncated at byte \(at): piece \(pieces.count) claims \(n) bytes") }
            // llama2.c's exporter wrote SentencePiece's "▁" as a plain space.
            let piece = String(decoding: b[at..<(at + n)], as: UTF8.self).replacingOccurrences(of: " ", with: "▁")
            at += n
            let id = pieces.count
            let kind: PieceKind = id == 0 ? .unknown : (id <= 2 ? .control : (piece.count == 6 && piece.hasPrefix("<0x") && piece.hasSuffix(">") ? .byte : .normal))
            pieces.append(piece); scores.append(score); kinds.append(kind)
        }
        guard pieces.count > 3 else { throw TokenizerError(path, "only \(pieces.count) pieces (not a llama2.c tokenizer?)") }
        vocab = BPEVocabulary(pieces: pieces, scores: scores, kinds: kinds, unk: 0, bos: 1, eos: 2, addDummyPrefix: true)
    }

    public var vocabSize: Int { vocab.pieces.count }
    public var bosId: Int32 { 1 }
    public var eosId: Int32 { 2 }
    public func encode(_ text: String) -> [Int32] { vocab.encode(text) }
    public func piece(_ id: Int32) -> String { id >= 0 && Int(id) < vocab.pieces.count ? vocab.pieces[Int(id)] : "" }
    public func bytes(of id: Int32, first: Bool) -> [UInt8] { vocab.bytes(of: id, first: first) }
}

/// The byte-level tokenizer of the bundled demos: 0 pad, 1 BOS, 2 EOS, 3 + byte for each byte.
public struct ByteTokenizer: Tokenizer {
    public init() {}
    public var vocabSize: Int { 259 }
    public var bosId: Int32 { 1 }
    public var eosId: Int32 { 2 }
    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) + 3 } }
    public func piece(_ id: Int32) -> String {
        switch id {
        case 0: "<pad>"
        case 1: "<s>"
        case 2: "</s>"
        case 3..<259: String(format: "<0x%02X>", Int(id - 3))
        default: ""
        }
    }
    public func bytes(of id: Int32, first: Bool) -> [UInt8] { id >= 3 && id < 259 ? [UInt8(id - 3)] : [] }
}

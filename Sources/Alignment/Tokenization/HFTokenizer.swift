import Foundation

/// A Hugging Face `tokenizer.json` of LLaMA's kind (what transformers 5 writes for LLaMA-2):
/// a BPE model with byte fallback, its merge list, `▁` for spaces through a `Metaspace`
/// pre-tokenizer or a `Prepend`/`Replace` normalizer (or no space handling at all, the byte
/// vocabulary of the demos). Merges apply lowest rank first, leftmost on ties, over the whole
/// text (Metaspace with `split: false`). BOS/EOS are the `tokenizer_config.json` beside it
/// (`bos_token`, `eos_token`) when there is one, else `<s>` and `</s>`.
///
/// Not supported, each an error naming the field: other models (WordPiece, Unigram), byte-level
/// pre-tokenizers (GPT-2, LLaMA-3), `split: true`, other normalizers. As with `tokenizer.model`,
/// special tokens written in the text are encoded as text (SentencePiece's rule).
public struct HFTokenizer: Tokenizer {
    let vocab: BPEVocabulary

    /// Reads the `tokenizer.json` at `path` (and `tokenizer_config.json` beside it, if any).
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        try self.init(data: data, path: path, config: FileManager.default.contents(atPath: configPath))
    }

    /// Parses a `tokenizer.json`'s contents `data` (`config`: a `tokenizer_config.json`'s); `path` names it in errors.
    public init(data: Data, path: String, config: Data? = nil) throws {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TokenizerError(path, "not a JSON object (expected a Hugging Face tokenizer.json)")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError(path, "no 'model' object") }
        guard (model["type"] as? String) == "BPE" else {
            throw TokenizerError(path, "model.type is '\(model["type"] ?? "missing")'; only BPE tokenizers (LLaMA-2 style) are supported")
        }
        // The vocabulary with every key kept (see `OrderedJSON`).
        guard case .object(let vocabPairs)? = try OrderedJSON.parse([UInt8](data), path: path)["model"]?["vocab"] else {
            throw TokenizerError(path, "model.vocab is not an object of piece → id")
        }
        let byteFallback = model["byte_fallback"] as? Bool ?? false
        if model["ignore_merges"] as? Bool ?? false {
            throw TokenizerError(path, "model.ignore_merges is true (a LLaMA-3 style tokenizer); only LLaMA-2 style BPE is supported")
        }
        // Pieces by id: the vocabulary, then added tokens (which may extend it).
        var byId: [Int: String] = [:]
        for (piece, v) in vocabPairs {
            guard case .number(let d) = v, d == d.rounded(), d >= 0, d < Double(1 << 24) else {
                throw TokenizerError(path, "model.vocab['\(piece)'] is not an id in 0..<2^24")
            }
            guard byId[Int(d)] == nil else { throw TokenizerError(path, "model.vocab gives id \(Int(d)) to two pieces") }
            byId[Int(d)] = piece
        }
        var special: Set<Int> = []
        for case let t as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            guard let id = (t["id"] as? NSNumber)?.intValue, id >= 0, id < 1 << 24, let content = t["content"] as? String else {
                throw TokenizerError(path, "added_tokens: an entry without an integer 'id' and a 'content' string")
            }
            if byId[id] == nil { byId[id] = content }
            if t["special"] as? Bool ?? false { special.insert(id) }
        }
        let count = (byId.keys.max() ?? -1) + 1
        guard count > 0 else { throw TokenizerError(path, "model.vocab is empty") }
        guard byId.count == count else { throw TokenizerError(path, "token ids are not 0..<\(count) without gaps (\(byId.count) distinct ids)") }
        let pieces = (0..<count).map { byId[$0] ?? "" }
        let unkName = model["unk_token"] as? String
        let kinds: [PieceKind] = pieces.enumerated().map { id, p in
            if p == unkName { return .unknown }
            if special.contains(id) { return p == "<unk>" ? .unknown : .control }
            if byteFallback, p.count == 6, p.hasPrefix("<0x"), p.hasSuffix(">"), UInt8(p.dropFirst(3).prefix(2), radix: 16) != nil { return .byte }
            return .normal
        }
        let ranks = try Self.mergeRanks(model["merges"], path: path)
        let (prefix, escape) = try Self.spaceHandling(root, path: path)
        let names = try Self.specialNames(config, root: root, path: path)
        func id(_ name: String, _ field: String) throws -> Int32 {
            guard let i = pieces.firstIndex(of: name) else { throw TokenizerError(path, "\(field) '\(name)' is not in the vocabulary") }
            return Int32(i)
        }
        let unk = kinds.firstIndex(of: .unknown).map { Int32($0) } ?? 0
        vocab = BPEVocabulary(pieces: pieces, scores: [Float](repeating: 0, count: count), kinds: kinds, unk: unk,
                              bos: try id(names.bos, "bos_token"), eos: try id(names.eos, "eos_token"),
                              addDummyPrefix: prefix, escapeSpaces: escape, mergeRanks: ranks)
    }

    /// `model.merges`: `["a b", …]` (tokenizers < 0.20) or `[["a", "b"], …]`; rank = position.
    static func mergeRanks(_ value: Any?, path: String) throws -> [[UInt8]: Int] {
        guard let list = value as? [Any] else { throw TokenizerError(path, "model.merges is not a list") }
        var ranks: [[UInt8]: Int] = [:]
        ranks.reserveCapacity(list.count)
        for (rank, m) in list.enumerated() {
            let pair: [String]
            if let s = m as? String {
                pair = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else {
                pair = (m as? [Any] ?? []).compactMap { $0 as? String }
            }
            guard pair.count == 2 else { throw TokenizerError(path, "model.merges[\(rank)] is not a pair of pieces") }
            let key = Array(pair[0].utf8) + [0] + Array(pair[1].utf8)
            if ranks[key] == nil { ranks[key] = rank }
        }
        return ranks
    }

    /// (dummy prefix, spaces as `▁`) from the normalizer and pre-tokenizer.
    static func spaceHandling(_ root: [String: Any], path: String) throws -> (Bool, Bool) {
        var prefix = false, escape = false
        func normalizer(_ n: [String: Any]) throws {
            switch n["type"] as? String {
            case "Sequence": for case let m as [String: Any] in n["normalizers"] as? [Any] ?? [] { try normalizer(m) }
            case "Prepend" where n["prepend"] as? String == "▁": prefix = true
            case "Replace" where (n["pattern"] as? [String: Any])?["String"] as? String == " " && n["content"] as? String == "▁": escape = true
            default: throw TokenizerError(path, "normalizer \(n["type"] ?? "?") is not supported (LLaMA's Prepend(▁) and Replace(' ', ▁) are)")
            }
        }
        if let n = root["normalizer"] as? [String: Any] { try normalizer(n) }
        if let p = root["pre_tokenizer"] as? [String: Any] {
            guard p["type"] as? String == "Metaspace", (p["replacement"] as? String ?? "▁") == "▁" else {
                throw TokenizerError(path, "pre_tokenizer \(p["type"] ?? "?") is not supported (only Metaspace with replacement ▁: byte-level BPE is not)")
            }
            guard !(p["split"] as? Bool ?? true) else { throw TokenizerError(path, "pre_tokenizer Metaspace with split: true is not supported (LLaMA's has split: false)") }
            escape = true
            let scheme = p["prepend_scheme"] as? String ?? ((p["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
            prefix = scheme != "never"
        }
        return (prefix, escape)
    }

    /// BOS/EOS names: `tokenizer_config.json`'s `bos_token`/`eos_token` (a string or `{"content": …}`),
    /// else the first special token of the post-processor for BOS, else `<s>` / `</s>`.
    static func specialNames(_ config: Data?, root: [String: Any], path: String) throws -> (bos: String, eos: String) {
        func name(_ v: Any?) -> String? { (v as? String) ?? ((v as? [String: Any])?["content"] as? String) }
        let c = config.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] } ?? [:]
        var bos = name(c["bos_token"])
        if bos == nil, let single = (root["post_processor"] as? [String: Any])?["single"] as? [Any],
           let first = (single.first as? [String: Any])?["SpecialToken"] as? [String: Any] {
            bos = first["id"] as? String
        }
        return (bos ?? "<s>", name(c["eos_token"]) ?? "</s>")
    }

    public var vocabSize: Int { vocab.pieces.count }
    public var bosId: Int32 { vocab.bosId }
    public var eosId: Int32 { vocab.eosId }
    public func encode(_ text: String) -> [Int32] { vocab.encode(text) }
    public func piece(_ id: Int32) -> String { id >= 0 && Int(id) < vocab.pieces.count ? vocab.pieces[Int(id)] : "" }
    public func bytes(of id: Int32, first: Bool) -> [UInt8] { vocab.bytes(of: id, first: first) }
}

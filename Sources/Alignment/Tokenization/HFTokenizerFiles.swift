import Foundation

/// A tokenizer whose ids come from a `BPEVocabulary` (every tokenizer of this project).
protocol VocabularyBacked {
    var vocab: BPEVocabulary { get }
}

extension SentencePieceTokenizer: VocabularyBacked {}
extension Llama2cTokenizer: VocabularyBacked {}
extension HFTokenizer: VocabularyBacked {}
extension ByteTokenizer: VocabularyBacked {
    /// `<pad>`, `<s>`, `</s>`, then the 256 byte pieces; no merges, spaces kept as bytes.
    var vocab: BPEVocabulary {
        let pieces = (0..<259).map { piece(Int32($0)) }
        let kinds: [PieceKind] = [.control, .control, .control] + [PieceKind](repeating: .byte, count: 256)
        return BPEVocabulary(pieces: pieces, scores: [Float](repeating: 0, count: 259), kinds: kinds, unk: 0, bos: 1, eos: 2,
                             addDummyPrefix: false, escapeSpaces: false, mergeRanks: [:])
    }
}

/// The Hugging Face tokenizer files a saved model folder gets, so that transformers'
/// `AutoTokenizer.from_pretrained(folder)` encodes as this project does: `tokenizer.json`
/// (BPE with byte fallback; merges from the piece scores as transformers' SentencePiece
/// converter derives them), `tokenizer_config.json` (BOS added, EOS not) and `special_tokens_map.json`.
public enum HFTokenizerFiles {
    /// The pad token written for `tok`: the byte tokenizer's `<pad>`, else EOS (what training pads with).
    public static func padId(_ tok: any Tokenizer) -> Int32 { tok is ByteTokenizer ? 0 : tok.eosId }

    /// `tokenizer.json` for `tok`; nil for a tokenizer this project cannot describe that way.
    public static func tokenizerJSON(_ tok: any Tokenizer) throws -> Data? {
        guard let v = (tok as? VocabularyBacked)?.vocab else { return nil }
        // The vocabulary is spliced in as text: a [String: Int] would merge canonically equivalent pieces.
        let vocab = "{" + v.pieces.enumerated().map { "\($1.jsonLiteral):\($0)" }.joined(separator: ",") + "}"
        let added: [[String: Any]] = v.kinds.indices.filter { v.kinds[$0] == .control || v.kinds[$0] == .unknown }.map {
            ["id": $0, "content": v.pieces[$0], "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
        }
        let bos = v.pieces[Int(v.bosId)]
        var decoders: [[String: Any]] = [["type": "ByteFallback"], ["type": "Fuse"]]
        if v.escapeSpaces { decoders.insert(["type": "Replace", "pattern": ["String": "▁"], "content": " "], at: 0) }
        if v.addDummyPrefix { decoders.append(["type": "Strip", "content": " ", "start": 1, "stop": 0]) }
        let root: [String: Any] = [
            // SentencePiece's normalization (a `▁` always in front, spaces as `▁`) as a normalizer:
            // transformers' Metaspace adds no `▁` before text that starts with a space.
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": normalizer(v),
            "pre_tokenizer": NSNull(),
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                         ["SpecialToken": ["id": bos, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [bos: ["id": bos, "ids": [Int(v.bosId)], "tokens": [bos]]],
            ] as [String: Any],
            "decoder": ["type": "Sequence", "decoders": decoders] as [String: Any],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": v.kinds.contains(.unknown) ? v.pieces[Int(v.unkId)] : NSNull(),
                      "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": true,
                      "byte_fallback": true, "ignore_merges": false, "vocab": "@VOCAB@", "merges": merges(v)] as [String: Any],
        ]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        guard let at = text.range(of: "\"@VOCAB@\"") else { return nil }
        return Data(text.replacingCharacters(in: at, with: vocab).utf8)
    }

    /// `Prepend(▁)` and `Replace(' ', ▁)` as the vocabulary asks; null for the byte vocabulary.
    static func normalizer(_ v: BPEVocabulary) -> Any {
        var steps: [[String: Any]] = []
        if v.addDummyPrefix { steps.append(["type": "Prepend", "prepend": "▁"]) }
        if v.escapeSpaces { steps.append(["type": "Replace", "pattern": ["String": " "], "content": "▁"]) }
        return steps.isEmpty ? NSNull() : ["type": "Sequence", "normalizers": steps] as [String: Any]
    }

    /// The merge list: a `tokenizer.json`'s own ranks, or — for a scored vocabulary — every split
    /// of a piece into two pieces of the vocabulary, higher piece score first (SentencePiece's
    /// order; transformers 5's converter orders by piece id, which differs from SentencePiece on
    /// runs of spaces), then by piece id, then the shorter left half.
    static func merges(_ v: BPEVocabulary) -> [[String]] {
        if let ranks = v.mergeRanks {
            return ranks.sorted { $0.value < $1.value }.map { key, _ in
                let cut = key.firstIndex(of: 0) ?? key.count
                return [String(decoding: key[..<cut], as: UTF8.self), String(decoding: key[(cut + 1)...], as: UTF8.self)]
            }
        }
        var id: [[UInt8]: Int] = [:]
        for (i, p) in v.pieces.enumerated() where id[Array(p.utf8)] == nil { id[Array(p.utf8)] = i }
        var out: [(score: Float, piece: Int, cut: Int, left: Int, right: Int)] = []
        for (i, p) in v.pieces.enumerated() {
            let chars = Array(p.unicodeScalars)
            guard chars.count > 1 else { continue }
            for cut in 1..<chars.count {
                var l = String.UnicodeScalarView(), r = String.UnicodeScalarView()
                l.append(contentsOf: chars[..<cut]); r.append(contentsOf: chars[cut...])
                if let a = id[Array(String(l).utf8)], let b = id[Array(String(r).utf8)] { out.append((v.scores[i], i, cut, a, b)) }
            }
        }
        out.sort { ($0.score, -$0.piece, -$0.cut) > ($1.score, -$1.piece, -$1.cut) }
        return out.map { [v.pieces[$0.left], v.pieces[$0.right]] }
    }

    /// `special_tokens_map.json`'s object.
    public static func specialTokens(_ tok: any Tokenizer) -> [String: String] {
        var m = ["bos_token": tok.piece(tok.bosId), "eos_token": tok.piece(tok.eosId), "pad_token": tok.piece(padId(tok))]
        if let v = (tok as? VocabularyBacked)?.vocab, v.kinds.contains(.unknown) { m["unk_token"] = v.pieces[Int(v.unkId)] }
        return m
    }

    /// `tokenizer_config.json`'s object. The class is the generic fast tokenizer, which reads
    /// `tokenizer.json` as written: transformers 5's `LlamaTokenizer` would replace its
    /// normalizer by Metaspace and give other ids than SentencePiece for text starting with a space.
    public static func tokenizerConfig(_ tok: any Tokenizer, maxLength: Int?) -> [String: Any] {
        var c: [String: Any] = specialTokens(tok)
        c["tokenizer_class"] = "PreTrainedTokenizerFast"
        c["add_bos_token"] = true
        c["add_eos_token"] = false
        c["clean_up_tokenization_spaces"] = false
        if let maxLength { c["model_max_length"] = maxLength }
        return c
    }
}

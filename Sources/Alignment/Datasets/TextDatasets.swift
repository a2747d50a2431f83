import Foundation

/// One training row in Hugging Face's convention: `labels[i] == inputIds[i]` when token i is a
/// supervised target, `-100` when it is not (position t predicts token t+1).
public struct TokenizedExample: Sendable, Equatable, Codable {
    public var inputIds: [Int32]
    public var labels: [Int32]
    public init(inputIds: [Int32], labels: [Int32]) { self.inputIds = inputIds; self.labels = labels }
    public static let ignore: Int32 = -100
}

/// What reading a dataset did, for the run's summary (nothing is dropped silently).
public struct DatasetSummary: Sendable, Equatable {
    public var rows = 0
    public var examples = 0
    public var truncated = 0
    public var dropped = 0
    public var droppedReasons: [String: Int] = [:]
    public var tokens = 0
    public var supervisedTokens = 0

    mutating func count(_ e: TokenizedExample) {
        examples += 1
        tokens += e.inputIds.count
        supervisedTokens += e.labels.filter { $0 != TokenizedExample.ignore }.count
    }
}

/// Pre-tokenized rows `{"input_ids": [...], "labels"?: [...]}`, used exactly as given.
func pretokenized(_ row: JSONRow, vocab: Int) throws -> TokenizedExample {
    let ids = try row.ids("input_ids", vocab: vocab)
    guard !ids.isEmpty else { throw row.fail("input_ids", "is empty") }
    guard row.has("labels") else { return TokenizedExample(inputIds: ids, labels: ids) }
    let labels = try row.ids("labels", vocab: vocab, allow: TokenizedExample.ignore)
    guard labels.count == ids.count else {
        throw row.fail("labels", "has \(labels.count) entries for \(ids.count) input_ids (expected the same length)")
    }
    return TokenizedExample(inputIds: ids, labels: labels)
}

/// Pretraining text: `{"text": str}` JSONL (or pre-tokenized rows), or a `.txt` file whose
/// documents are separated by blank lines. Each document is `[BOS] ids [EOS]`; documents are
/// packed back to back into rows of `maxSeqLen` tokens (the last row may be shorter), every
/// position supervised.
public enum PretrainDataset {
    public static func load(path: String, tokenizer: any Tokenizer, maxSeqLen: Int) throws -> ([TokenizedExample], DatasetSummary) {
        guard let data = FileManager.default.contents(atPath: path) else {
            if path.hasSuffix(".txt") { throw DataError(path, "cannot be read as UTF-8 text") }
            throw DataError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return try load(data: data, file: path, tokenizer: tokenizer, maxSeqLen: maxSeqLen)
    }

    /// The rows of a pretraining file's contents `data`; `file` names it in errors, and a name
    /// ending in `.txt` reads `data` as plain text (documents separated by blank lines).
    public static func load(data: Data, file path: String, tokenizer: any Tokenizer, maxSeqLen: Int) throws -> ([TokenizedExample], DatasetSummary) {
        var summary = DatasetSummary()
        var stream: [Int32] = []
        var rows: [TokenizedExample] = []
        if path.hasSuffix(".txt") {
            guard let text = String(data: data, encoding: .utf8) else { throw DataError(path, "cannot be read as UTF-8 text") }
            for doc in text.components(separatedBy: "\n\n") {
                let d = doc.trimmingCharacters(in: .whitespacesAndNewlines)
                if d.isEmpty { continue }
                summary.rows += 1
                stream += [tokenizer.bosId] + tokenizer.encode(d) + [tokenizer.eosId]
            }
        } else {
            for row in try JSONLines.parse(data, file: path) {
                summary.rows += 1
                if row.has("input_ids") {
                    let e = try pretokenized(row, vocab: tokenizer.vocabSize)
                    rows.append(e)
                    summary.count(e)
                    continue
                }
                let text = try row.string("text")
                if text.isEmpty { summary.dropped += 1; summary.droppedReasons["empty text", default: 0] += 1; continue }
                stream += [tokenizer.bosId] + tokenizer.encode(text) + [tokenizer.eosId]
            }
        }
        var start = 0
        while start < stream.count {
            let chunk = Array(stream[start..<min(start + maxSeqLen, stream.count)])
            if chunk.count >= 2 {
                let e = TokenizedExample(inputIds: chunk, labels: chunk)
                rows.append(e)
                summary.count(e)
            }
            start += maxSeqLen
        }
        return (rows, summary)
    }
}

/// How SFT turns are rendered.
public enum ChatTemplate: Sendable, Equatable {
    /// `[BOS] enc(src) enc(tgt) [EOS]` per turn.
    case none
    /// `[BOS] enc("[INST] " + src + " [/INST]") enc(" " + tgt) [EOS]` per turn.
    case llama2
    /// PaddleNLP's chat_template.json: `{{user}}` / `{{bot}}` slots; the system text
    /// is put in front of the first turn's rendered user string.
    case custom(system: String, user: String, bot: String)
    /// A Hugging Face Jinja template recognized and rendered natively (`HFChatTemplate`): whole
    /// conversations, BOS/EOS only where the template writes them.
    case hf(HFChatTemplate)

    /// `nil`; `"llama2"` (PaddleNLP's per-turn `[INST]` rendering); `"chatml"`, `"zephyr"`,
    /// `"llama3"` (Hugging Face's templates); a chat_template.json (PaddleNLP); a
    /// tokenizer_config.json whose `chat_template` is one of the four; or a folder with either.
    public static func named(_ value: String?) throws -> ChatTemplate {
        guard let value, !value.isEmpty else { return .none }
        if value == "llama2" { return .llama2 }
        if let t = HFChatTemplate(rawValue: value) { return .hf(t) }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: value, isDirectory: &isDir), isDir.boolValue {
            for name in ["chat_template.json", "tokenizer_config.json"] {
                let p = (value as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: p) { return try named(p) }
            }
            throw DataError(value, "chat_template: the folder has no chat_template.json or tokenizer_config.json")
        }
        guard let data = FileManager.default.contents(atPath: value) else {
            throw DataError(value, "chat_template is neither a template name (llama2, chatml, zephyr, llama3) nor a readable chat_template.json / tokenizer_config.json")
        }
        if (value as NSString).lastPathComponent == "tokenizer_config.json" { return try fromTokenizerConfig(data, file: value) }
        return try parse(data, file: value)
    }

    /// The `chat_template` of a Hugging Face tokenizer_config.json (a string, or a list of
    /// `{name, template}` whose "default" is used), when it is one of the recognized four.
    public static func fromTokenizerConfig(_ data: Data, file: String) throws -> ChatTemplate {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError(file, "malformed JSON (expected a tokenizer_config.json object)")
        }
        var source = obj["chat_template"] as? String
        if let list = obj["chat_template"] as? [[String: Any]] {
            source = (list.first { $0["name"] as? String == "default" } ?? list.first)?["template"] as? String
        }
        guard let source else { throw DataError(file, field: "chat_template", "missing (expected the tokenizer's Jinja chat template)") }
        guard let t = HFChatTemplate.recognize(source) else {
            throw DataError(file, field: "chat_template", "is not one of the recognized templates (LLaMA-2, ChatML, Zephyr, LLaMA-3); "
                            + "no general Jinja interpreter is built — set chat_template to one of llama2, chatml, zephyr, llama3 or a chat_template.json")
        }
        return .hf(t)
    }

    /// The template of a chat_template.json's contents `data`; `file` names it in errors.
    public static func parse(_ data: Data, file value: String) throws -> ChatTemplate {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let conv = obj["conversation"] as? [String], conv.count == 2 else {
            throw DataError(value, field: "conversation", "expected a list of two template strings [user, bot]")
        }
        guard conv[0].contains("{{user}}"), conv[1].contains("{{bot}}") else {
            throw DataError(value, field: "conversation", "templates must contain {{user}} and {{bot}}")
        }
        return .custom(system: obj["system"] as? String ?? "", user: conv[0], bot: conv[1])
    }

    /// The prompt and response strings of turn `i`.
    func render(src: String, tgt: String, turn i: Int) -> (String, String) {
        switch self {
        case .none: return (src, tgt)
        case .llama2: return ("[INST] " + src + " [/INST]", " " + tgt)
        case .custom(let system, let user, let bot):
            let u = user.replacingOccurrences(of: "{{user}}", with: src)
            return ((i == 0 ? system : "") + u, bot.replacingOccurrences(of: "{{bot}}", with: tgt))
        case .hf(let t):
            let prompt = (try? t.pieces([("user", src)]).map(\.text).joined()) ?? src
            return (prompt + t.generationPrompt, t.answer(tgt))
        }
    }
}

/// Supervised fine-tuning rows `{"src": str|[str], "tgt": str|[str]}` (or pre-tokenized rows),
/// encoded per turn as `[BOS] prompt response [EOS]` with labels on every response token and
/// its EOS.
///
/// Truncation (`maxSeqLen` in all, `maxPromptLen` per prompt): turns are kept newest first while
/// whole turns fit. When not even the newest turn fits whole, it alone is cut: its prompt keeps
/// its last `maxPromptLen` tokens (BOS stays in front), its response its first tokens that fit,
/// and a cut response has no EOS. A row with no response token left is dropped and counted.
public enum SFTDataset {
    public static func load(path: String, tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                            template: ChatTemplate) throws -> ([TokenizedExample], DatasetSummary) {
        try load(rows: JSONLines.read(path), tokenizer: tokenizer, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen, template: template)
    }

    /// The examples of an SFT file's contents `data`; `file` names it in errors.
    public static func load(data: Data, file: String, tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                            template: ChatTemplate) throws -> ([TokenizedExample], DatasetSummary) {
        try load(rows: JSONLines.parse(data, file: file), tokenizer: tokenizer, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen, template: template)
    }

    /// The examples of parsed rows (both `load`s end here).
    static func load(rows: [JSONRow], tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                     template: ChatTemplate) throws -> ([TokenizedExample], DatasetSummary) {
        var summary = DatasetSummary()
        var out: [TokenizedExample] = []
        for row in rows {
            summary.rows += 1
            if row.has("input_ids") {
                let e = try pretokenized(row, vocab: tokenizer.vocabSize)
                out.append(e); summary.count(e)
                continue
            }
            var pairs: [(String, String)], rowTemplate = template
            switch try TRLRows.sft(row) {
            case .text(let text)?:
                guard let (e, cut) = TRLRows.textExample(text, tokenizer, maxSeqLen: maxSeqLen) else {
                    summary.dropped += 1; summary.droppedReasons["empty text", default: 0] += 1; continue
                }
                out.append(e); summary.count(e)
                if cut { summary.truncated += 1 }
                continue
            case .turns(let t, let templated)?:
                pairs = t
                if !templated { rowTemplate = .none }
            case nil:
                let src = try row.strings("src"), tgt = try row.strings("tgt")
                guard src.count == tgt.count else {
                    throw row.fail("tgt", "has \(tgt.count) turns for \(src.count) in src (expected the same number)")
                }
                guard !src.isEmpty else { throw row.fail("src", "is an empty list") }
                if let i = tgt.firstIndex(where: { $0.isEmpty }) { throw row.fail("tgt", "turn \(i) is empty (expected a response)") }
                pairs = Array(zip(src, tgt))
            }
            if case .hf(let t) = rowTemplate {
                let messages = try TRLRows.conversation(row) ?? pairs.flatMap { [("user", $0.0), ("assistant", $0.1)] }
                guard let (e, cut) = try t.example(messages, tokenizer, maxSeqLen: maxSeqLen, file: row.file, line: row.line) else {
                    summary.dropped += 1; summary.droppedReasons["no room for the response", default: 0] += 1; continue
                }
                out.append(e); summary.count(e)
                if cut { summary.truncated += 1 }
                continue
            }
            let turns = pairs.enumerated().map { i, p in
                let (u, b) = rowTemplate.render(src: p.0, tgt: p.1, turn: i)
                return (tokenizer.encode(u), tokenizer.encode(b))
            }
            switch encode(turns, bos: tokenizer.bosId, eos: tokenizer.eosId, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen) {
            case .kept(let e, let cut):
                out.append(e); summary.count(e)
                if cut { summary.truncated += 1 }
            case .dropped(let reason):
                summary.dropped += 1
                summary.droppedReasons[reason, default: 0] += 1
            }
        }
        return (out, summary)
    }

    enum Encoded { case kept(TokenizedExample, truncated: Bool), dropped(String) }

    /// Lays out turns (prompt ids, response ids) under the truncation rules.
    static func encode(_ turns: [([Int32], [Int32])], bos: Int32, eos: Int32, maxSeqLen: Int, maxPromptLen: Int) -> Encoded {
        func whole(_ t: ([Int32], [Int32])) -> Int { t.0.count + t.1.count + 2 }
        var kept: [([Int32], [Int32], eos: Bool)] = []
        var used = 0
        var cut = false
        for t in turns.reversed() {
            if used + whole(t) <= maxSeqLen {
                kept.insert((t.0, t.1, true), at: 0); used += whole(t)
                continue
            }
            cut = true
            if kept.isEmpty {
                // The newest turn alone does not fit: cut its prompt and response.
                let prompt = Array(t.0.suffix(maxPromptLen))
                let room = maxSeqLen - 1 - prompt.count
                if room >= t.1.count + 1 {
                    kept = [(prompt, t.1, true)]
                } else if room > 0 {
                    kept = [(prompt, Array(t.1.prefix(room)), false)]
                } else {
                    return .dropped("no room for the response after the prompt")
                }
            }
            break
        }
        guard let last = kept.last, !last.1.isEmpty else { return .dropped("no room for the response after the prompt") }
        var ids: [Int32] = [], labels: [Int32] = []
        for (p, r, withEOS) in kept {
            ids += [bos] + p + r
            labels += Array(repeating: TokenizedExample.ignore, count: 1 + p.count) + r
            if withEOS { ids.append(eos); labels.append(eos) }
        }
        return .kept(TokenizedExample(inputIds: ids, labels: labels), truncated: cut)
    }
}

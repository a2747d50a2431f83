import Foundation

/// The four chat templates most LLaMA-family checkpoints ship as Jinja in `tokenizer_config.json`
/// (Llama-2-chat, ChatML, Zephyr, Llama-3-Instruct), recognized from their source and rendered
/// natively: the text equals what transformers' `apply_chat_template` renders from those sources
/// (`ChatTemplateTests`, fixtures made by transformers). A general Jinja interpreter was not
/// written: these four cover the LLaMA checkpoints in use, and an unrecognized template is an
/// error naming the file, never a silent other format.
public enum HFChatTemplate: String, Sendable, Equatable, CaseIterable {
    case llama2, chatml, zephyr, llama3

    public typealias Message = (role: String, content: String)

    /// The template a Jinja source is, by the markers only it uses; nil for any other.
    public static func recognize(_ source: String) -> HFChatTemplate? {
        if source.contains("<|start_header_id|>") && source.contains("<|eot_id|>") { return .llama3 }
        if source.contains("<|im_start|>") && source.contains("<|im_end|>") { return .chatml }
        if source.contains("<|user|>") && source.contains("<|assistant|>") { return .zephyr }
        if source.contains("[INST]") && source.contains("[/INST]") && !source.contains("[SYSTEM_PROMPT]") { return .llama2 }
        return nil
    }

    /// The template's own BOS and EOS text (transformers passes the tokenizer's).
    public var specialTokens: (bos: String, eos: String) {
        self == .llama3 ? ("<|begin_of_text|>", "<|end_of_text|>") : ("<s>", "</s>")
    }

    /// Strings that stand for one token each when the vocabulary has them.
    var markers: [String] {
        switch self {
        case .llama2: return ["<s>", "</s>"]
        case .chatml: return ["<|im_start|>", "<|im_end|>", "<s>", "</s>"]
        case .zephyr: return ["<|user|>", "<|assistant|>", "<|system|>", "<s>", "</s>"]
        case .llama3: return ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"]
        }
    }

    /// What starts the assistant's answer after the prompt (`add_generation_prompt`).
    public var generationPrompt: String {
        switch self {
        case .llama2: return ""
        case .chatml: return "<|im_start|>assistant\n"
        case .zephyr: return "<|assistant|>\n"
        case .llama3: return "<|start_header_id|>assistant<|end_header_id|>\n\n"
        }
    }

    /// An assistant message's text after `generationPrompt`: what training scores.
    public func answer(_ content: String, eos: String? = nil) -> String {
        let eos = eos ?? specialTokens.eos
        switch self {
        case .llama2: return " " + strip(content) + " " + eos
        case .chatml: return content + "<|im_end|>\n"
        case .zephyr: return content + eos + "\n"
        case .llama3: return strip(content) + "<|eot_id|>"
        }
    }

    /// The conversation as pieces of text, each marked as a training target or not: every
    /// assistant message's `answer` is a target, everything else (its header included) is not.
    public func pieces(_ messages: [Message], file: String = "", line: Int? = nil) throws -> [(text: String, target: Bool)] {
        let (bos, eos) = specialTokens
        var out: [(String, Bool)] = []
        switch self {
        case .llama2:
            var list = messages[...]
            var system: String?
            if let first = list.first, first.role == "system" { system = first.content; list = list.dropFirst() }
            for (i, m) in list.enumerated() {
                guard (m.role == "user") == (i % 2 == 0) else {
                    throw DataError(file, line: line, field: "messages", "roles must alternate user/assistant/user/… for the LLaMA-2 template (message \(i) is '\(m.role)')")
                }
                let content = i == 0 && system != nil ? "<<SYS>>\n" + system! + "\n<</SYS>>\n\n" + m.content : m.content
                if m.role == "user" { out.append((bos + "[INST] " + strip(content) + " [/INST]", false)) } else { out.append((answer(content), true)) }
            }
        case .chatml, .zephyr, .llama3:
            for (i, m) in messages.enumerated() {
                if m.role == "assistant" {
                    out.append(((i == 0 && self == .llama3 ? bos : "") + generationPrompt, false))
                    out.append((answer(m.content), true))
                    continue
                }
                switch self {
                case .chatml: out.append(("<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n", false))
                case .zephyr where m.role == "user" || m.role == "system": out.append(("<|" + m.role + "|>\n" + m.content + eos + "\n", false))
                case .llama3:
                    out.append(((i == 0 ? bos : "") + "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>", false))
                default: break
                }
            }
        }
        return out
    }

    /// The whole text, as `apply_chat_template(messages, tokenize=False, add_generation_prompt:)`.
    public func render(_ messages: [Message], addGenerationPrompt: Bool) throws -> String {
        try pieces(messages).map(\.text).joined() + (addGenerationPrompt ? generationPrompt : "")
    }

    /// Python's `str.strip()` / Jinja's `trim`: whitespace off both ends.
    func strip(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Token ids of template text: each marker the vocabulary holds as one piece (BOS/EOS as the
    /// tokenizer's own) becomes that id, the text between is encoded as text.
    func ids(_ text: String, _ tok: any Tokenizer, _ special: [String: Int32]) -> [Int32] {
        var out: [Int32] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var next: (range: Range<Substring.Index>, id: Int32)?
            for (marker, id) in special {
                if let r = rest.range(of: marker), next.map({ r.lowerBound < $0.range.lowerBound }) ?? true { next = (r, id) }
            }
            guard let n = next else { out += tok.encode(String(rest)); break }
            if n.range.lowerBound > rest.startIndex { out += tok.encode(String(rest[..<n.range.lowerBound])) }
            out.append(n.id)
            rest = rest[n.range.upperBound...]
        }
        return out
    }

    /// The markers `tok` has as single tokens (BOS and EOS text always).
    func specialIds(_ tok: any Tokenizer) -> [String: Int32] {
        var map: [String: Int32] = [specialTokens.bos: tok.bosId, specialTokens.eos: tok.eosId]
        let wanted = Set(markers).subtracting(map.keys)
        if !wanted.isEmpty {
            for id in 0..<Int32(tok.vocabSize) where wanted.contains(tok.piece(id)) { map[tok.piece(id)] = id }
        }
        return map
    }

    /// An SFT example of a conversation: the pieces' ids, labels on the targets; cut to
    /// `maxSeqLen` tokens from the start. nil when no target token is left.
    func example(_ messages: [Message], _ tok: any Tokenizer, maxSeqLen: Int, file: String, line: Int) throws -> (TokenizedExample, cut: Bool)? {
        let special = specialIds(tok)
        var ids: [Int32] = [], labels: [Int32] = []
        for p in try pieces(messages, file: file, line: line) {
            let t = self.ids(p.text, tok, special)
            ids += t
            labels += p.target ? t : Array(repeating: TokenizedExample.ignore, count: t.count)
        }
        let cut = ids.count > maxSeqLen
        ids = Array(ids.prefix(maxSeqLen)); labels = Array(labels.prefix(maxSeqLen))
        guard labels.contains(where: { $0 != TokenizedExample.ignore }) else { return nil }
        return (TokenizedExample(inputIds: ids, labels: labels), cut)
    }
}

extension ChatTemplate {
    /// The run's template: `chat_template` when set; else the chat template of the tokenizer's
    /// `tokenizer_config.json` when it is one of the four recognized (PaddleNLP and TRL render
    /// with the tokenizer's own template), with a note saying so; else none. An unrecognized
    /// tokenizer template is noted, and rows are rendered without one.
    static func forRun(_ name: String?, tokenizerPath: String) throws -> (template: ChatTemplate, note: String?) {
        if let name, !name.isEmpty { return (try named(name), nil) }
        var isDir: ObjCBool = false
        let dir = FileManager.default.fileExists(atPath: tokenizerPath, isDirectory: &isDir) && isDir.boolValue
            ? tokenizerPath : (tokenizerPath as NSString).deletingLastPathComponent
        let config = (dir as NSString).appendingPathComponent("tokenizer_config.json")
        guard let data = FileManager.default.contents(atPath: config),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], obj["chat_template"] != nil else { return (.none, nil) }
        do {
            let t = try fromTokenizerConfig(data, file: config)
            return (t, "chat_template: the tokenizer's (\(config))")
        } catch {
            return (.none, "note: \(error); rows are rendered without a template (set chat_template to choose one)")
        }
    }
}

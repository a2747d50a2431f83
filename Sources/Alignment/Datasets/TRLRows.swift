import Foundation

/// TRL's SFT row formats, beside PaddleNLP's `src`/`tgt`:
/// - `{"text": str}`: language modelling on the whole text (`[BOS] text [EOS]`, every token a target);
/// - `{"prompt": str, "completion": str}`: the completion is the target (TRL's completion-only
///   loss), the two strings joined as they are (no chat template: they are not messages);
/// - `{"messages": [{role, content}…]}` and `{"prompt": [messages], "completion": [messages]}`:
///   conversations, rendered through the run's chat template turn by turn; every assistant
///   message is a target (TRL's `assistant_only_loss`), system text goes before the first user
///   message, consecutive user messages are joined by a newline.
enum TRLRows {
    enum SFTRow {
        /// (user, assistant) turns; `templated` false for plain prompt/completion strings.
        case turns([(String, String)], templated: Bool)
        case text(String)
    }

    /// The row in a TRL format, or nil when it has none of their fields.
    static func sft(_ row: JSONRow) throws -> SFTRow? {
        if row.has("messages") { return .turns(try turns(messages(row, "messages"), row, "messages"), templated: true) }
        if row.has("prompt") || row.has("completion") {
            for key in ["prompt", "completion"] where !row.has(key) { throw row.fail(key, "missing (prompt and completion come together)") }
            if row.object["prompt"] is String || row.object["completion"] is String {
                let p = try row.string("prompt"), c = try row.string("completion")
                guard !c.isEmpty else { throw row.fail("completion", "is empty (expected a response)") }
                return .turns([(p, c)], templated: false)
            }
            let all = try messages(row, "prompt") + messages(row, "completion")
            return .turns(try turns(all, row, "completion"), templated: true)
        }
        if row.has("text"), !row.has("src") { return .text(try row.string("text")) }
        return nil
    }

    /// The raw messages of a conversational row (`messages`, or message-list `prompt` + `completion`); nil otherwise.
    static func conversation(_ row: JSONRow) throws -> [(role: String, content: String)]? {
        if row.has("messages") { return try messages(row, "messages") }
        if row.object["prompt"] is [Any], row.object["completion"] is [Any] { return try messages(row, "prompt") + messages(row, "completion") }
        return nil
    }

    static func messages(_ row: JSONRow, _ key: String) throws -> [(role: String, content: String)] {
        guard let list = row.object[key] as? [Any] else { throw row.fail(key, "is \(typeName(row.object[key] as Any)) (expected a list of {role, content} messages)") }
        return try list.enumerated().map { i, m in
            guard let m = m as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                throw row.fail(key, "message \(i) is not an object with string 'role' and 'content'")
            }
            return (role, content)
        }
    }

    /// (user, assistant) turns of a conversation; it must end with an assistant message.
    static func turns(_ msgs: [(role: String, content: String)], _ row: JSONRow, _ field: String) throws -> [(String, String)] {
        var system = "", out: [(String, String)] = [], user: String?
        for (i, m) in msgs.enumerated() {
            switch m.role {
            case "system": system += m.content
            case "user": user = (user.map { $0 + "\n" } ?? "") + m.content
            case "assistant":
                guard let u = user else { throw row.fail(field, "message \(i): an assistant message comes before any user message") }
                out.append(((out.isEmpty ? system : "") + u, m.content)); user = nil
            default: throw row.fail(field, "message \(i): unknown role '\(m.role)' (expected system, user or assistant)")
            }
        }
        guard user == nil, !out.isEmpty else { throw row.fail(field, "does not end with an assistant message (nothing to learn)") }
        if let i = out.firstIndex(where: { $0.1.isEmpty }) { throw row.fail(field, "assistant turn \(i) is empty") }
        return out
    }

    /// A `text` row as one example, every token a target, cut to `maxSeqLen`; nil when empty.
    static func textExample(_ text: String, _ tok: any Tokenizer, maxSeqLen: Int) -> (TokenizedExample, cut: Bool)? {
        guard !text.isEmpty else { return nil }
        let ids = [tok.bosId] + tok.encode(text) + [tok.eosId]
        let kept = Array(ids.prefix(maxSeqLen))
        return (TokenizedExample(inputIds: kept, labels: kept), kept.count < ids.count)
    }
}

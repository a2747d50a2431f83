import Foundation

/// What reading a preference file did; nothing is dropped or merged silently.
public struct PairDatasetSummary: Sendable, Equatable {
    public var rows = 0
    public var pairs = 0
    public var truncated = 0
    public var dropped = 0
    /// Pairs whose chosen and rejected responses are the same (kept, counted, first lines listed).
    public var identical = 0
    public var identicalLines: [Int] = []
    /// Multi-turn rows whose earlier assistant turns differ between chosen and rejected (chosen's are used).
    public var divergentHistory = 0
    public var reasons: [String: Int] = [:]

    /// One line for the run's log, empty when there is nothing to say.
    public var warnings: String {
        var parts: [String] = []
        if identical > 0 { parts.append("\(identical) pairs with identical chosen and rejected (lines \(identicalLines.prefix(5).map(String.init).joined(separator: ", ")))") }
        if dropped > 0 { parts.append("\(dropped) pairs dropped \(reasons)") }
        if truncated > 0 { parts.append("\(truncated) pairs truncated") }
        if divergentHistory > 0 { parts.append("\(divergentHistory) rows whose earlier turns differ (chosen's kept)") }
        return parts.joined(separator: "; ")
    }
}

/// A conversation to compare: earlier turns (user, assistant), the last user turn, and the two answers.
struct PreferenceConversation {
    var history: [(user: String, assistant: String)]
    var system: String
    var lastUser: String
    var chosen: String
    var rejected: String
}

/// Preference data (DPO) in the seed's `prompt`/`chosen`/`rejected` form (strings or lists for
/// multi-turn), PaddleNLP's `src`/`tgt`/`response`/`sort`, TRL's message lists, and pre-tokenized
/// `prompt_ids`/`chosen_ids`/`rejected_ids`.
///
/// A text row is encoded like SFT: earlier turns `[BOS] user assistant [EOS]` in the shared prompt
/// (their assistant tokens and EOS scored on both sides), then `[BOS] user` of the last turn;
/// each answer is `answer [EOS]`, every token scored.
///
/// Truncation (when prompt + chosen + rejected exceed `maxSeqLen`): the prompt keeps its last
/// `maxPromptLen` tokens; the answers share what is left in proportion to their lengths
/// (chosen gets ⌊rest·c/(c+r)⌋, rejected the remainder), each keeping its start; a cut answer
/// loses its EOS. A pair left with an empty answer is dropped and counted.
public enum PreferenceDataset {
    public static func load(path: String, tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                            template: ChatTemplate) throws -> ([PreferencePair], PairDatasetSummary) {
        try load(rows: JSONLines.read(path), tokenizer: tokenizer, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen, template: template)
    }

    /// The pairs of a preference file's contents `data`; `file` names it in errors.
    public static func load(data: Data, file: String, tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                            template: ChatTemplate) throws -> ([PreferencePair], PairDatasetSummary) {
        try load(rows: JSONLines.parse(data, file: file), tokenizer: tokenizer, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen, template: template)
    }

    /// The pairs of parsed rows (both `load`s end here).
    static func load(rows: [JSONRow], tokenizer: any Tokenizer, maxSeqLen: Int, maxPromptLen: Int,
                     template: ChatTemplate) throws -> ([PreferencePair], PairDatasetSummary) {
        var s = PairDatasetSummary()
        var pairs: [PreferencePair] = []
        for row in rows {
            s.rows += 1
            var pair: PreferencePair
            if row.has("prompt_ids") || row.has("chosen_ids") {
                pair = try pretokenized(row, vocab: tokenizer.vocabSize)
            } else {
                let conv = try conversation(row, &s)
                pair = try encode(conv, tokenizer, template, row: row)
            }
            if pair.chosen == pair.rejected {
                s.identical += 1
                if s.identicalLines.count < 20 { s.identicalLines.append(row.line) }
            }
            switch truncate(pair, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen) {
            case .kept(let p, let cut):
                pairs.append(p); s.pairs += 1
                if cut { s.truncated += 1 }
            case .dropped(let why):
                s.dropped += 1; s.reasons[why, default: 0] += 1
            }
        }
        return (pairs, s)
    }

    static func pretokenized(_ row: JSONRow, vocab: Int) throws -> PreferencePair {
        let p = try row.ids("prompt_ids", vocab: vocab), c = try row.ids("chosen_ids", vocab: vocab), r = try row.ids("rejected_ids", vocab: vocab)
        guard !c.isEmpty else { throw row.fail("chosen_ids", "is empty") }
        guard !r.isEmpty else { throw row.fail("rejected_ids", "is empty") }
        return PreferencePair(prompt: p, chosen: c, rejected: r)
    }

    /// The row as a conversation, whatever its form.
    static func conversation(_ row: JSONRow, _ s: inout PairDatasetSummary) throws -> PreferenceConversation {
        if row.has("response") || row.has("sort") {
            // PaddleNLP: src = user turns, tgt = earlier answers, response = two final answers, sort = their ranks.
            let src = try row.strings("src"), tgt = row.has("tgt") ? try row.strings("tgt") : []
            let response = try row.strings("response")
            guard src.count == tgt.count + 1 else { throw row.fail("tgt", "has \(tgt.count) turns for \(src.count) in src (expected one fewer)") }
            guard response.count == 2 else { throw row.fail("response", "has \(response.count) answers (expected 2)") }
            guard let sort = row.object["sort"] as? [Any], sort.count == 2,
                  let a = (sort[0] as? NSNumber)?.doubleValue, let b = (sort[1] as? NSNumber)?.doubleValue else {
                throw row.fail("sort", "expected two numbers")
            }
            guard a != b else { throw row.fail("sort", "is a tie (\(a), \(b)): no answer is preferred") }
            let (c, r) = a > b ? (response[0], response[1]) : (response[1], response[0])
            return PreferenceConversation(history: Array(zip(src.dropLast(), tgt)).map { ($0, $1) }, system: "",
                                          lastUser: src[src.count - 1], chosen: c, rejected: r)
        }
        // TRL's implicit prompt: only chosen and rejected.
        if !row.has("prompt"), row.has("chosen"), row.has("rejected") { return try conversation(ImplicitPrompt.extract(row), &s) }
        for key in ["prompt", "chosen", "rejected"] where !row.has(key) { throw row.fail(key, "missing") }
        if row.object["prompt"] is [[String: Any]] || row.object["chosen"] is [[String: Any]] {
            return try messages(row)
        }
        let prompt = try row.strings("prompt"), chosen = try row.strings("chosen"), rejected = try row.strings("rejected")
        guard prompt.count == chosen.count, chosen.count == rejected.count else {
            throw row.fail("rejected", "prompt, chosen and rejected have \(prompt.count), \(chosen.count) and \(rejected.count) turns (expected the same)")
        }
        guard let lastChosen = chosen.last, !lastChosen.isEmpty else { throw row.fail("chosen", "is empty") }
        guard let lastRejected = rejected.last, !lastRejected.isEmpty else { throw row.fail("rejected", "is empty") }
        if chosen.dropLast() != rejected.dropLast() { s.divergentHistory += 1 }
        return PreferenceConversation(history: Array(zip(prompt.dropLast(), chosen.dropLast())).map { ($0, $1) }, system: "",
                                      lastUser: prompt[prompt.count - 1], chosen: lastChosen, rejected: lastRejected)
    }

    /// TRL's form: lists of `{"role", "content"}` messages.
    static func messages(_ row: JSONRow) throws -> PreferenceConversation {
        func list(_ key: String) throws -> [(role: String, content: String)] {
            if let s = row.object[key] as? String { return [(key == "prompt" ? "user" : "assistant", s)] }
            guard let l = row.object[key] as? [[String: Any]] else { throw row.fail(key, "expected a string or a list of {role, content} messages") }
            return try l.enumerated().map { i, m in
                guard let role = m["role"] as? String, let content = m["content"] as? String else {
                    throw row.fail(key, "message \(i) lacks a string 'role' or 'content'")
                }
                return (role, content)
            }
        }
        let prompt = try list("prompt")
        func answer(_ key: String) throws -> String {
            var l = try list(key)
            if l.count > prompt.count, zip(l, prompt).allSatisfy({ $0.role == $1.role && $0.content == $1.content }) { l.removeFirst(prompt.count) }
            guard let last = l.last(where: { $0.role == "assistant" }), !last.content.isEmpty else { throw row.fail(key, "has no assistant message") }
            return last.content
        }
        var system = "", history: [(String, String)] = [], pendingUser: String?
        for m in prompt {
            switch m.role {
            case "system": system += m.content
            case "user": pendingUser = (pendingUser.map { $0 + "\n" } ?? "") + m.content
            case "assistant":
                guard let u = pendingUser else { throw row.fail("prompt", "an assistant message comes before any user message") }
                history.append((u, m.content)); pendingUser = nil
            default: throw row.fail("prompt", "unknown role '\(m.role)' (expected system, user or assistant)")
            }
        }
        guard let last = pendingUser else { throw row.fail("prompt", "does not end with a user message") }
        return PreferenceConversation(history: history.map { ($0.0, $0.1) }, system: system, lastUser: last,
                                      chosen: try answer("chosen"), rejected: try answer("rejected"))
    }

    static func encode(_ c: PreferenceConversation, _ tok: any Tokenizer, _ template: ChatTemplate, row: JSONRow) throws -> PreferencePair {
        guard case .hf(let t) = template else { return encode(c, tok, template) }
        // The prompt is the conversation up to the last user message and the assistant's header;
        // each answer is the template's assistant text (its end token included).
        var messages: [HFChatTemplate.Message] = c.system.isEmpty ? [] : [("system", c.system)]
        for turn in c.history { messages += [("user", turn.user), ("assistant", turn.assistant)] }
        messages.append(("user", c.lastUser))
        let special = t.specialIds(tok)
        let prompt = t.ids(try t.pieces(messages, file: row.file, line: row.line).map(\.text).joined() + t.generationPrompt, tok, special)
        let chosen = t.ids(t.answer(c.chosen), tok, special), rejected = t.ids(t.answer(c.rejected), tok, special)
        return PreferencePair(prompt: prompt, chosen: chosen, rejected: rejected)
    }

    static func encode(_ c: PreferenceConversation, _ tok: any Tokenizer, _ template: ChatTemplate) -> PreferencePair {
        var prompt: [Int32] = [], scored: [Bool] = []
        for (i, turn) in c.history.enumerated() {
            let (u, a) = template.render(src: (i == 0 ? c.system : "") + turn.user, tgt: turn.assistant, turn: i)
            let ui = tok.encode(u), ai = tok.encode(a)
            prompt += [tok.bosId] + ui + ai + [tok.eosId]
            scored += Array(repeating: false, count: 1 + ui.count) + Array(repeating: true, count: ai.count + 1)
        }
        let k = c.history.count
        let (u, chosen) = template.render(src: (k == 0 ? c.system : "") + c.lastUser, tgt: c.chosen, turn: k)
        let (_, rejected) = template.render(src: (k == 0 ? c.system : "") + c.lastUser, tgt: c.rejected, turn: k)
        let ui = tok.encode(u)
        prompt += [tok.bosId] + ui
        scored += Array(repeating: false, count: 1 + ui.count)
        let ci = tok.encode(chosen) + [tok.eosId], ri = tok.encode(rejected) + [tok.eosId]
        return PreferencePair(prompt: prompt, promptScored: scored, chosen: ci, chosenScored: Array(repeating: true, count: ci.count),
                              rejected: ri, rejectedScored: Array(repeating: true, count: ri.count))
    }

    enum Truncated { case kept(PreferencePair, cut: Bool), dropped(String) }

    static func truncate(_ p: PreferencePair, maxSeqLen: Int, maxPromptLen: Int) -> Truncated {
        guard p.rowLength > maxSeqLen else { return .kept(p, cut: false) }
        var q = p
        if q.prompt.count > maxPromptLen {
            q.prompt = Array(q.prompt.suffix(maxPromptLen)); q.promptScored = Array(q.promptScored.suffix(maxPromptLen))
        }
        let rest = maxSeqLen - q.prompt.count
        let (c, r) = (q.chosen.count, q.rejected.count)
        if c + r > rest {
            let keepC = rest * c / (c + r), keepR = rest - keepC
            guard keepC > 0, keepR > 0 else { return .dropped("no room for both answers after the prompt") }
            q.chosen = Array(q.chosen.prefix(keepC)); q.chosenScored = Array(q.chosenScored.prefix(keepC))
            q.rejected = Array(q.rejected.prefix(keepR)); q.rejectedScored = Array(q.rejectedScored.prefix(keepR))
        }
        return .kept(q, cut: true)
    }
}

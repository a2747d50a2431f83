import Foundation

/// TRL's implicit prompt: a preference row with only `chosen` and `rejected` (both strings, or
/// both message lists) holds its prompt as their longest common prefix (TRL's
/// `maybe_extract_prompt` / `extract_prompt`): the first position where they differ ends the
/// prompt, moved back one when the character before it is a space (so the answers keep their
/// leading space); when one is a prefix of the other, TRL's loop leaves the split one before the
/// shorter one's end, and so does this. Strings are compared by Unicode scalar (Python's
/// `str` indexing); message lists message by message (role and content).
enum ImplicitPrompt {
    /// The split index of two sequences under TRL's rule, or nil when one is empty.
    static func split<T: Equatable>(_ chosen: [T], _ rejected: [T], isSpace: (T) -> Bool) -> Int? {
        let n = min(chosen.count, rejected.count)
        guard n > 0 else { return nil }
        for i in 0..<n where chosen[i] != rejected[i] {
            return i > 0 && isSpace(chosen[i - 1]) ? i - 1 : i
        }
        return n - 1
    }

    /// The row with `prompt`, `chosen` and `rejected` made explicit.
    static func extract(_ row: JSONRow) throws -> JSONRow {
        var o = row.object
        if let c = o["chosen"] as? String, let r = o["rejected"] as? String {
            let cs = Array(c.unicodeScalars), rs = Array(r.unicodeScalars)
            guard let i = split(cs, rs, isSpace: { $0 == " " }) else {
                throw row.fail(c.isEmpty ? "chosen" : "rejected", "is empty (no prompt can be taken from it)")
            }
            o["prompt"] = String(String.UnicodeScalarView(cs[..<i]))
            o["chosen"] = String(String.UnicodeScalarView(cs[i...]))
            o["rejected"] = String(String.UnicodeScalarView(rs[i...]))
        } else if let c = o["chosen"] as? [[String: Any]], let r = o["rejected"] as? [[String: Any]] {
            func key(_ m: [String: Any]) -> [String] { [m["role"] as? String ?? "", m["content"] as? String ?? ""] }
            guard let i = split(c.map(key), r.map(key), isSpace: { _ in false }) else {
                throw row.fail(c.isEmpty ? "chosen" : "rejected", "is an empty list of messages")
            }
            guard i > 0 else { throw row.fail("rejected", "shares no first message with chosen, so there is no implicit prompt (add a 'prompt' field)") }
            o["prompt"] = Array(c[..<i]); o["chosen"] = Array(c[i...]); o["rejected"] = Array(r[i...])
        } else {
            throw row.fail("rejected", "without a 'prompt', chosen and rejected must both be strings or both lists of {role, content} messages")
        }
        return JSONRow(file: row.file, line: row.line, object: o)
    }
}

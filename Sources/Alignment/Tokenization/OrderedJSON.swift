import Foundation

/// A JSON value whose objects keep every key, in file order. Foundation's dictionaries key by
/// `String`, whose `==` treats canonically equivalent text (`e` + U+0301 and `é`) as one key:
/// a tokenizer vocabulary holding both would lose one of them.
indirect enum OrderedJSON {
    case object([(key: String, value: OrderedJSON)])
    case array([OrderedJSON])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    /// The value of `key` in an object (the first one).
    subscript(key: String) -> OrderedJSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { Array($0.key.utf8) == Array(key.utf8) }?.value
    }

    /// Parses `bytes`; `path` names the file in errors.
    static func parse(_ bytes: [UInt8], path: String) throws -> OrderedJSON {
        var p = Parser(b: bytes, path: path)
        let v = try p.value(depth: 0)
        p.space()
        guard p.i == bytes.count else { throw p.fail("text after the JSON value") }
        return v
    }

    private struct Parser {
        let b: [UInt8]
        let path: String
        var i = 0

        func fail(_ what: String) -> TokenizerError { TokenizerError(path, "malformed JSON at byte \(i): \(what)") }

        mutating func space() { while i < b.count, [0x20, 0x09, 0x0A, 0x0D].contains(b[i]) { i += 1 } }

        mutating func literal(_ word: String, _ v: OrderedJSON) throws -> OrderedJSON {
            let w = Array(word.utf8)
            guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else { throw fail("expected \(word)") }
            i += w.count
            return v
        }

        mutating func value(depth: Int) throws -> OrderedJSON {
            guard depth < 512 else { throw fail("nested too deeply") }
            space()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(key: String, value: OrderedJSON)] = []
                space()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                while true {
                    space()
                    let k = try string()
                    space()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    pairs.append((k, try value(depth: depth + 1)))
                    space()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard b[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                    i += 1
                    return .object(pairs)
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [OrderedJSON] = []
                space()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    space()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard b[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try literal("true", .bool(true))
            case UInt8(ascii: "f"): return try literal("false", .bool(false))
            case UInt8(ascii: "n"): return try literal("null", .null)
            default:
                let start = i
                while i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: ".")
                        || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") || (b[i] >= 0x30 && b[i] <= 0x39) { i += 1 }
                guard i > start, let d = Double(String(decoding: b[start..<i], as: UTF8.self)) else { throw fail("expected a value") }
                return .number(d)
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
            i += 4
            return v
        }

        mutating func string() throws -> String {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { break }
                guard c == UInt8(ascii: "\\") else { out.append(c); continue }
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                        i += 2
                        let lo = try hex4()
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo &- 0xDC00 & 0x3FF)
                    }
                    out += Array(String(Unicode.Scalar(v).map(Character.init) ?? "\u{FFFD}").utf8)
                default: out.append(e)   // \" \\ \/
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}

extension String {
    /// The text as a JSON string literal: quotes, backslashes and control characters escaped, the rest as UTF-8.
    var jsonLiteral: String {
        var s = "\""
        for u in unicodeScalars {
            switch u {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\t": s += "\\t"
            case "\r": s += "\\r"
            default: s += u.value < 0x20 ? String(format: "\\u%04x", u.value) : String(u)
            }
        }
        return s + "\""
    }
}

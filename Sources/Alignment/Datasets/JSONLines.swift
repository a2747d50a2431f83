import Foundation

/// A bad data file: one line `FILE:LINE: field 'x': problem`.
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var field: String?
    public var problem: String

    public init(_ file: String, line: Int? = nil, field: String? = nil, _ problem: String) {
        self.file = file; self.line = line; self.field = field; self.problem = problem
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let field { s += "field '\(field)': " }
        return s + problem
    }
}

/// One JSON object of a JSONL file, with where it came from, and typed field access that
/// names the file, line and field in every error.
public struct JSONRow {
    public let file: String
    public let line: Int
    public let object: [String: Any]

    public func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    func fail(_ field: String?, _ problem: String) -> DataError { DataError(file, line: line, field: field, problem) }

    /// A string or a list of strings, as a list.
    public func strings(_ key: String) throws -> [String] {
        switch object[key] {
        case let s as String: return [s]
        case let list as [Any]:
            return try list.enumerated().map { i, v in
                guard let s = v as? String else { throw fail(key, "item \(i) is \(typeName(v)) (expected a string)") }
                return s
            }
        case nil, is NSNull: throw fail(key, "missing (expected a string or a list of strings)")
        case let v?: throw fail(key, "is \(typeName(v)) (expected a string or a list of strings)")
        }
    }

    public func string(_ key: String) throws -> String {
        switch object[key] {
        case let s as String: return s
        case nil, is NSNull: throw fail(key, "missing (expected a string)")
        case let v?: throw fail(key, "is \(typeName(v)) (expected a string)")
        }
    }

    /// A list of integers (token ids), each in `0..<vocab` unless it is `allow`.
    public func ids(_ key: String, vocab: Int, allow: Int32? = nil) throws -> [Int32] {
        guard let list = object[key] as? [Any] else {
            throw fail(key, object[key] == nil ? "missing (expected a list of token ids)" : "is \(typeName(object[key] as Any)) (expected a list of token ids)")
        }
        return try list.enumerated().map { i, v in
            guard let n = v as? NSNumber, !isJSONBool(v), n.doubleValue == n.doubleValue.rounded() else {
                throw fail(key, "item \(i) is \(typeName(v)) (expected an integer token id)")
            }
            // Exactly, not through int32Value: that wraps 4294967299 to 3 and 1e20 to 0.
            guard let whole = exactInteger(n), let id = Int32(exactly: whole), id == allow || (id >= 0 && Int(id) < vocab) else {
                throw fail(key, "id \(n) at item \(i) is outside the vocabulary (0..<\(vocab))")
            }
            return id
        }
    }
}

/// The exact integer a JSON number stands for, or nil when it has a fraction or lies outside
/// `Int`. (`NSNumber.intValue` and `int32Value` do not say: they wrap or saturate.)
func exactInteger(_ n: NSNumber) -> Int? {
    if let i = Int(n.stringValue) { return i }   // integers as written, exact beyond 2^53
    let d = n.doubleValue
    guard d == d.rounded(), abs(d) < 0x1p63 else { return nil }
    return Int(d)
}

/// True for JSON `true`/`false` (on Linux they are NSNumbers too, of an own class).
func isJSONBool(_ v: Any) -> Bool {
    guard let n = v as? NSNumber else { return false }
    return String(describing: type(of: n)).contains("Boolean")
}

func typeName(_ v: Any) -> String {
    if isJSONBool(v) { return "a boolean" }
    return switch v {
    case is String: "a string"
    case is NSNumber: "a number"
    case is [Any]: "a list"
    case is [String: Any]: "an object"
    case is NSNull: "null"
    default: "\(type(of: v))"
    }
}

/// Reads JSONL rows; blank lines are skipped, anything else must be a JSON object.
public enum JSONLines {
    /// The rows of the JSONL file at `path`.
    public static func read(_ path: String) throws -> [JSONRow] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError(path, FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")
        }
        return try parse(data, file: path)
    }

    /// The rows of JSONL `data`; `file` names it in errors (as `read` names the path).
    public static func parse(_ data: Data, file path: String) throws -> [JSONRow] {
        var rows: [JSONRow] = []
        var lineNo = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            let trimmed = raw.drop { $0 == 32 || $0 == 9 || $0 == 13 }
            if trimmed.isEmpty || trimmed.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: Data(raw)) } catch {
                throw DataError(path, line: lineNo, "malformed JSON (expected one object per line)")
            }
            guard let obj = parsed as? [String: Any] else { throw DataError(path, line: lineNo, "is \(typeName(parsed)) (expected a JSON object)") }
            rows.append(JSONRow(file: path, line: lineNo, object: obj))
        }
        return rows
    }

    /// A dataset path: a file, or a directory with `train.jsonl` (or PaddleNLP's `train.json`,
    /// JSON lines too) and maybe `dev.jsonl` / `dev.json`.
    public static func resolve(_ path: String) throws -> (train: String, dev: String?) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError(path, "no such file or directory") }
        guard isDir.boolValue else { return (path, nil) }
        func first(_ names: [String]) -> String? {
            names.map { (path as NSString).appendingPathComponent($0) }.first { FileManager.default.fileExists(atPath: $0) }
        }
        guard let train = first(["train.jsonl", "train.json"]) else { throw DataError(path, "directory has no train.jsonl or train.json") }
        return (train, first(["dev.jsonl", "dev.json"]))
    }
}

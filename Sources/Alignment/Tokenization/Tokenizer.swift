import Foundation

/// Text ↔ token ids, exactly as SentencePiece does it for LLaMA.
public protocol Tokenizer: Sendable {
    var vocabSize: Int { get }
    var bosId: Int32 { get }
    var eosId: Int32 { get }
    /// Ids of `text`, with no BOS/EOS added (SentencePiece's `encode`).
    func encode(_ text: String) -> [Int32]
    /// Text of `ids`; BOS/EOS and other control tokens are skipped.
    func decode(_ ids: [Int32]) -> String
    /// The raw piece of an id (`▁Hello`, `<0x0A>`, `<s>`).
    func piece(_ id: Int32) -> String
    /// The bytes an id contributes to decoded text; `first` says whether it starts the text.
    func bytes(of id: Int32, first: Bool) -> [UInt8]
}

extension Tokenizer {
    public func decode(_ ids: [Int32]) -> String {
        var out: [UInt8] = []
        for id in ids { out += bytes(of: id, first: out.isEmpty) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A bad tokenizer file: one line naming the file and the problem.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public init(_ path: String, _ problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}

/// Turns ids into text as they are generated, holding back bytes of a character that is
/// not complete yet. The concatenation of everything `push` returns equals `decode(all ids)`.
public struct StreamingDecoder {
    public let tokenizer: any Tokenizer
    private var pending: [UInt8] = []
    private var started = false

    public init(tokenizer: any Tokenizer) { self.tokenizer = tokenizer }

    /// The text that `id` completes (possibly empty).
    public mutating func push(_ id: Int32) -> String {
        let b = tokenizer.bytes(of: id, first: !started)
        if !b.isEmpty { started = true }
        pending += b
        // Emit the longest prefix that is whole UTF-8.
        var end = pending.count
        while end > 0, String(validatingUTF8: pending[0..<end]) == nil, pending.count - end < 4 { end -= 1 }
        if end == 0 && pending.count >= 4 { end = pending.count }   // not UTF-8 at all: let it through
        let text = String(decoding: pending[0..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Whatever is still held back (an incomplete character at the end).
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}

extension String {
    /// Strict UTF-8 validation of a byte slice.
    init?(validatingUTF8 bytes: ArraySlice<UInt8>) {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var scalars = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let s): scalars.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(scalars)
    }
}

/// Loads a tokenizer: a SentencePiece `.model`, a llama2.c `.bin`, a Hugging Face
/// `tokenizer.json`, the vocabulary of a `.gguf` model, a directory holding one of them (tried
/// in that order, the byte marker `tokenizer.byte` before `tokenizer.json`), or `byte` for the
/// byte-level demo tokenizer.
public func loadTokenizer(path: String) throws -> any Tokenizer {
    if path == "byte" { return ByteTokenizer() }
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw TokenizerError(path, "no such file or directory")
    }
    if isDir.boolValue {
        for name in ["tokenizer.model", "tokenizer.bin"] {
            let p = (path as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: p) { return try loadTokenizer(path: p) }
        }
        let marker = (path as NSString).appendingPathComponent("tokenizer.byte")
        if FileManager.default.fileExists(atPath: marker) { return ByteTokenizer() }
        let json = (path as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json) { return try HFTokenizer(path: json) }
        throw TokenizerError(path, "no tokenizer.model, tokenizer.bin or tokenizer.json in this directory")
    }
    if path.hasSuffix(".bin") { return try Llama2cTokenizer(path: path) }
    // The marker file this project writes beside a byte-level model.
    if (path as NSString).lastPathComponent == "tokenizer.byte" { return ByteTokenizer() }
    if path.hasSuffix(".json") { return try HFTokenizer(path: path) }
    if isGGUF(path) {
        guard let tok = try GGUFVocabulary.tokenizer(path: path) else {
            throw TokenizerError(path, "this GGUF file holds no vocabulary usable for text (none, or a placeholder); give a tokenizer file")
        }
        return tok
    }
    return try SentencePieceTokenizer(path: path)
}

/// Names of the tokenizer files a model folder may hold, in the order they are tried.
let tokenizerFileNames = ["tokenizer.model", "tokenizer.bin", "tokenizer.byte", "tokenizer.json"]

/// Where a run's tokenizer is read from: `explicit` when given; else a `.gguf` model itself when
/// it holds a vocabulary, the model folder, or the folder of a model file when it holds a tokenizer file. A model file with no tokenizer beside
/// it (a llama2.c checkpoint holds none) is an error saying what to set, not a "corrupt tokenizer".
public func tokenizerPath(explicit: String?, model: String, field: String = "tokenizer_name_or_path") throws -> String {
    if let explicit { return explicit }
    if isGGUF(model), (try? GGUFVocabulary.tokenizer(path: model)) != nil { return model }
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue { return model }
    let dir = (model as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    if tokenizerFileNames.contains(where: { FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }) {
        return folder
    }
    throw TokenizerError(model, "no tokenizer beside this model file (\(tokenizerFileNames.joined(separator: ", ")) in \(folder)); set \(field)")
}

/// The tokenizer in the folder of `model` (or the model folder), nil when it holds no tokenizer
/// file; a tokenizer file that does not load is an error naming it. A `.gguf` model's own
/// vocabulary comes first.
public func tokenizerBeside(model: String) throws -> (any Tokenizer)? {
    if isGGUF(model), FileManager.default.fileExists(atPath: model), let tok = try GGUFVocabulary.tokenizer(path: model) { return tok }
    var isDir: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: model, isDirectory: &isDir)
    let dir = exists && isDir.boolValue ? model : (model as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    guard tokenizerFileNames.contains(where: { FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }) else {
        return nil
    }
    return try loadTokenizer(path: folder)
}

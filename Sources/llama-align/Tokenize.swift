import Alignment
import ArgumentParser

/// `llama-align tokenize`: show how text splits into tokens.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Encode text with a SentencePiece or llama2.c tokenizer (no BOS/EOS added).")

    @Option(help: "tokenizer.model, tokenizer.bin or a directory holding one.") var tokenizer: String
    @Flag(name: .customLong("ids-only"), help: "Print only the ids, space-separated.") var idsOnly = false
    @Argument(help: "Text to encode; several arguments are joined with spaces.") var text: [String]

    func run() throws {
        let tok = try loadTokenizer(path: tokenizer)
        let ids = tok.encode(text.joined(separator: " "))
        if idsOnly {
            print(ids.map(String.init).joined(separator: " "))
        } else {
            for id in ids { print("\(id)\t\(tok.piece(id))") }
        }
    }
}

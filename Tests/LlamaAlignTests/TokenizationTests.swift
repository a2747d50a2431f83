import Foundation
import Testing
@testable import Alignment

@Suite struct TokenizationTests {
    struct Case: Decodable { var text: String; var ids: [Int32]; var pieces: [String]; var decoded: String }

    func cases() throws -> [Case] {
        let p = try SharedFixtures.require("golden/llama2_tokenizer_cases.jsonl")
        return try String(contentsOfFile: p, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(Case.self, from: Data($0.utf8))
        }
    }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model", "tokenizers/llama2/tokenizer.bin",
                                                "golden/llama2_tokenizer_cases.jsonl"), "needs ../shared"),
          arguments: ["tokenizers/llama2/tokenizer.model", "tokenizers/llama2/tokenizer.bin"])
    func idsAndPiecesEqualSentencePiece(file: String) throws {
        let path = try SharedFixtures.require(file), cases = try cases()
        let tok = try loadTokenizer(path: path)
        #expect(tok.vocabSize == 32000 && tok.bosId == 1 && tok.eosId == 2)
        for c in cases {
            let ids = tok.encode(c.text)
            #expect(ids == c.ids, "\(c.text)")
            #expect(ids.map { tok.piece($0) } == c.pieces, "\(c.text)")
            #expect(tok.decode(ids) == c.decoded, "\(c.text)")
            var stream = StreamingDecoder(tokenizer: tok)
            let streamed = ids.map { stream.push($0) }.joined() + stream.finish()
            #expect(streamed == tok.decode(ids))
        }
    }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model"), "needs ../shared"))
    func roundTripOfUnusualText() throws {
        let path = try SharedFixtures.require("tokenizers/llama2/tokenizer.model")
        let tok = try SentencePieceTokenizer(path: path)
        for text in ["  two leading spaces", "tabs\tand\nnewlines", "emoji 🦙 and 漢字", "ends with space ", "x"] {
            #expect(tok.decode(tok.encode(text)) == text, "\(text)")
            #expect(tok.decode([1] + tok.encode(text) + [2]) == text)
        }
        // Canonically equivalent but different text encodes differently (byte-exact piece lookup).
        let composed = tok.encode("café"), decomposed = tok.encode("cafe\u{301}")
        #expect(composed != decomposed)
        #expect(tok.decode(decomposed).unicodeScalars.elementsEqual("cafe\u{301}".unicodeScalars))
        // Long text stays fast (heap-based merges).
        let long = String(repeating: "Once upon a time, a llama learned to align. ", count: 500)
        let t0 = Date()
        #expect(tok.decode(tok.encode(long)) == long)
        #expect(Date().timeIntervalSince(t0) < 5)
    }

    @Test func byteTokenizerRoundTrips() {
        let tok = ByteTokenizer()
        let text = "héllo 🦙"
        let ids = tok.encode(text)
        #expect(ids.count == text.utf8.count && ids.allSatisfy { $0 >= 3 && $0 < 259 })
        #expect(tok.decode([1] + ids + [2]) == text)
        var stream = StreamingDecoder(tokenizer: tok)
        var pieces: [String] = []
        for id in ids { pieces.append(stream.push(id)) }
        #expect(pieces.joined() == text)
        #expect(pieces.contains(""))   // the multi-byte characters were held back until complete
    }

    @Test func badFilesGiveOneLineNamingTheFile() throws {
        let dir = SharedFixtures.tempDir("tok")
        let missing = dir.appendingPathComponent("missing.model").path
        #expect(throws: TokenizerError.self) { try loadTokenizer(path: missing) }
        let garbage = dir.appendingPathComponent("garbage.model")
        try Data([0x0A, 0xFF, 0xFF, 0xFF]).write(to: garbage)
        do { _ = try loadTokenizer(path: garbage.path); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("garbage.model") && "\(error)".contains("protobuf") && !"\(error)".contains("\n"))
        }
        let truncated = dir.appendingPathComponent("truncated.bin")
        try Data([16, 0, 0, 0, 0, 0, 128, 63, 9, 0, 0, 0, 65]).write(to: truncated)
        do { _ = try loadTokenizer(path: truncated.path); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("truncated.bin") && "\(error)".contains("truncated"))
        }
        if let real = SharedFixtures.path("tokenizers/llama2/tokenizer.model") {
            let cut = dir.appendingPathComponent("cut.model")
            try Data(try Data(contentsOf: URL(fileURLWithPath: real)).prefix(1000)).write(to: cut)
            do { _ = try loadTokenizer(path: cut.path); Issue.record("expected an error") } catch {
                #expect("\(error)".contains("cut.model"))
            }
        }
    }
}

import Foundation
import Testing
@testable import Alignment

@Suite struct DatasetTests {
    let ignore = TokenizedExample.ignore

    func llama2() throws -> any Tokenizer {
        try loadTokenizer(path: try SharedFixtures.require("tokenizers/llama2/tokenizer.model"))
    }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model"), "needs ../shared"))
    func sftSingleTurnExactIds() throws {
        let tok = try llama2()
        let path = try jsonlFile([#"{"src": "Hello world", "tgt": "Once upon a time"}"#])
        let (rows, _) = try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: 64, maxPromptLen: 32, template: .none)
        let src: [Int32] = [15043, 3186], tgt: [Int32] = [9038, 2501, 263, 931]
        #expect(rows == [TokenizedExample(inputIds: [1] + src + tgt + [2], labels: [ignore, ignore, ignore] + tgt + [2])])
    }

    @Test(.enabled(if: SharedFixtures.available("tokenizers/llama2/tokenizer.model"), "needs ../shared"))
    func sftMultiTurnAndLlama2Template() throws {
        let tok = try llama2()
        let path = try jsonlFile([#"{"src": ["Hello world", "Hello"], "tgt": ["Once upon a time", "world"]}"#])
        let (rows, _) = try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: 64, maxPromptLen: 32, template: .none)
        let t1 = tok.encode("Once upon a time"), t2 = tok.encode("world")
        let ids: [Int32] = [1] + tok.encode("Hello world") + t1 + [2] + [1] + tok.encode("Hello") + t2 + [2]
        let labels: [Int32] = [ignore, ignore, ignore] + t1 + [2] + [ignore, ignore] + t2 + [2]
        #expect(rows.first?.inputIds == ids)
        #expect(rows.first?.labels == labels)
        let (chat, _) = try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: 128, maxPromptLen: 64, template: .llama2)
        let u1 = tok.encode("[INST] Hello world [/INST]"), b1 = tok.encode(" Once upon a time")
        #expect(chat.first.map { Array($0.inputIds.prefix(u1.count + b1.count + 2)) } == [1] + u1 + b1 + [2])
        #expect(chat.first.map { Array($0.labels.prefix(u1.count + b1.count + 2)) } == Array(repeating: ignore, count: 1 + u1.count) + b1 + [2])
    }

    @Test func chatTemplateJSONFile() throws {
        let dir = SharedFixtures.tempDir("tpl")
        let tplPath = dir.appendingPathComponent("chat_template.json").path
        try #"{"system": "S: ", "conversation": ["U: {{user}} A:", " {{bot}}"]}"#.write(toFile: tplPath, atomically: true, encoding: .utf8)
        let tpl = try ChatTemplate.named(tplPath)
        let tok = ByteTokenizer()
        let path = try jsonlFile([#"{"src": ["hi", "yo"], "tgt": ["ok", "no"]}"#])
        let (rows, _) = try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: 128, maxPromptLen: 64, template: tpl)
        let u1 = tok.encode("S: U: hi A:"), b1 = tok.encode(" ok"), u2 = tok.encode("U: yo A:"), b2 = tok.encode(" no")
        #expect(rows.first?.inputIds == [1] + u1 + b1 + [2] + [1] + u2 + b2 + [2])
    }

    @Test func sftTruncationKeepsNewestTurnsPromptEndAndResponseStart() throws {
        let tok = ByteTokenizer()
        // Two turns; only the newest fits whole.
        let p1 = try jsonlFile([#"{"src": ["aaaa", "bb"], "tgt": ["cccc", "dd"]}"#])
        let (r1, s1) = try SFTDataset.load(path: p1, tokenizer: tok, maxSeqLen: 8, maxPromptLen: 4, template: .none)
        #expect(r1.first?.inputIds == [1] + tok.encode("bb") + tok.encode("dd") + [2])
        #expect(s1.truncated == 1)
        // The newest turn alone is too long: the prompt keeps its last 2, the response its first tokens, no EOS.
        let p2 = try jsonlFile([#"{"src": "abcdef", "tgt": "uvwxyz"}"#])
        let (r2, _) = try SFTDataset.load(path: p2, tokenizer: tok, maxSeqLen: 6, maxPromptLen: 2, template: .none)
        #expect(r2.first?.inputIds == [1] + tok.encode("ef") + tok.encode("uvw"))
        #expect(r2.first?.labels == [ignore, ignore, ignore] + tok.encode("uvw"))
        // No room left for any response token: dropped and counted.
        let (r3, s3) = try SFTDataset.load(path: p2, tokenizer: tok, maxSeqLen: 3, maxPromptLen: 2, template: .none)
        #expect(r3.isEmpty && s3.dropped == 1 && s3.droppedReasons.values.reduce(0, +) == 1)
    }

    @Test func pretrainPackingAndPretokenizedRows() throws {
        let tok = ByteTokenizer()
        let path = try jsonlFile([#"{"text": "ab"}"#, "", #"{"text": "cdef"}"#])
        let (rows, s) = try PretrainDataset.load(path: path, tokenizer: tok, maxSeqLen: 4)
        let stream: [Int32] = [1] + tok.encode("ab") + [2, 1] + tok.encode("cdef") + [2]
        // Rows of 4, the last one shorter (a single leftover token would predict nothing and is not kept).
        #expect(rows.map(\.inputIds) == [Array(stream[0..<4]), Array(stream[4..<8]), Array(stream[8...])])
        #expect(rows.allSatisfy { $0.labels == $0.inputIds } && s.rows == 2)
        let pre = try jsonlFile([#"{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}"#, #"{"input_ids": [8, 9]}"#])
        let (p, _) = try SFTDataset.load(path: pre, tokenizer: tok, maxSeqLen: 8, maxPromptLen: 4, template: .none)
        #expect(p == [TokenizedExample(inputIds: [5, 6, 7], labels: [ignore, 6, 7]), TokenizedExample(inputIds: [8, 9], labels: [8, 9])])
    }

    @Test func collateShiftsTargetsAndMasksPadding() {
        let b = collate([TokenizedExample(inputIds: [1, 5, 6, 2], labels: [ignore, ignore, 6, 2]),
                         TokenizedExample(inputIds: [1, 7], labels: [ignore, 7])], padId: 0)
        #expect(b.batch == 2 && b.seq == 4)
        #expect(b.ids == [1, 5, 6, 2, 1, 7, 0, 0])
        #expect(b.targets == [0, 6, 2, 0, 7, 0, 0, 0])
        #expect(b.mask == [0, 1, 1, 0, 1, 0, 0, 0])
    }

    @Test func loaderIsSeededAndResumable() {
        let items = Array(0..<10)
        var a = DataLoader(items: items, batchSize: 3, shuffle: true, seed: 1)
        var b = DataLoader(items: items, batchSize: 3, shuffle: true, seed: 1)
        var c = DataLoader(items: items, batchSize: 3, shuffle: true, seed: 2)
        let fa = (0..<8).map { _ in a.next() }, fb = (0..<8).map { _ in b.next() }, fc = (0..<8).map { _ in c.next() }
        #expect(fa == fb && fa != fc)
        var plain = DataLoader(items: items, batchSize: 4, shuffle: false, seed: 9)
        #expect(plain.next() == [0, 1, 2, 3] && plain.next() == [4, 5, 6, 7] && plain.next() == [8, 9] && plain.next() == [0, 1, 2, 3])
        var d = DataLoader(items: items, batchSize: 3, shuffle: true, seed: 1)
        for _ in 0..<5 { _ = d.next() }
        var e = DataLoader(items: items, batchSize: 3, shuffle: true, seed: 1)
        e.state = d.state
        #expect((0..<4).map { _ in d.next() } == (0..<4).map { _ in e.next() })
    }

    @Test func badRowsNameFileLineAndField() throws {
        let tok = ByteTokenizer()
        let cases: [(String, String, String?)] = [
            (#"{"src": "a", "tgt": "b"}"# + "\n{not json", "malformed JSON", nil),
            (#"{"src": "a"}"#, "missing", "tgt"),
            (#"{"src": 3, "tgt": "b"}"#, "a number", "src"),
            (#"{"src": ["a", "b"], "tgt": ["c"]}"#, "turns", "tgt"),
            (#"{"src": "a", "tgt": ""}"#, "empty", "tgt"),
            (#"{"input_ids": [1, 999]}"#, "outside the vocabulary", "input_ids"),
        ]
        for (text, problem, field) in cases {
            let path = try jsonlFile(text.split(separator: "\n").map(String.init))
            do {
                _ = try SFTDataset.load(path: path, tokenizer: tok, maxSeqLen: 32, maxPromptLen: 16, template: .none)
                Issue.record("expected an error for \(text)")
            } catch let e as DataError {
                #expect(e.description.hasPrefix(path + ":"), "\(e)")
                #expect(e.description.contains(problem), "\(e)")
                if let field { #expect(e.description.contains("field '\(field)'"), "\(e)") }
                #expect(e.line == (text.contains("\n") ? 2 : 1))
            }
        }
    }
}

import Foundation
import Testing
@testable import Alignment

@Suite struct PreferenceDatasetTests {
    let tok = ByteTokenizer()
    func e(_ s: String) -> [Int32] { tok.encode(s) }

    func load(_ lines: [String], maxSeqLen: Int = 256, maxPromptLen: Int = 128, template: ChatTemplate = .none) throws -> ([PreferencePair], PairDatasetSummary) {
        try PreferenceDataset.load(path: try jsonlFile(lines), tokenizer: tok, maxSeqLen: maxSeqLen, maxPromptLen: maxPromptLen, template: template)
    }

    @Test func seedFormatSingleAndMultiTurn() throws {
        let (p, _) = try load([#"{"prompt": "Q", "chosen": "A.", "rejected": "B!"}"#,
                               #"{"prompt": ["q1", "q2"], "chosen": ["a1", "yes"], "rejected": ["a1", "no"]}"#])
        #expect(p[0] == PreferencePair(prompt: [1] + e("Q"), promptScored: [false, false], chosen: e("A.") + [2], chosenScored: [true, true, true],
                                       rejected: e("B!") + [2], rejectedScored: [true, true, true]))
        // Earlier turns sit in the shared prompt; their answer and EOS are scored on both sides.
        #expect(p[1].prompt == [1] + e("q1") + e("a1") + [2, 1] + e("q2"))
        #expect(p[1].promptScored == [false, false, false, true, true, true, false, false, false])
        #expect(p[1].chosen == e("yes") + [2] && p[1].rejected == e("no") + [2])
    }

    @Test func paddleAndTRLFormsAndLlama2Template() throws {
        let (p, _) = try load([
            #"{"src": ["q1", "q2"], "tgt": ["a1"], "response": ["bad", "good"], "sort": [0, 1]}"#,
            #"{"prompt": [{"role": "system", "content": "S "}, {"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "y"}], "rejected": [{"role": "assistant", "content": "n"}]}"#,
            #"{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "y"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "n"}]}"#,
            #"{"prompt_ids": [1, 5], "chosen_ids": [6, 2], "rejected_ids": [7]}"#,
        ])
        #expect(p[0].prompt == [1] + e("q1") + e("a1") + [2, 1] + e("q2") && p[0].chosen == e("good") + [2] && p[0].rejected == e("bad") + [2])
        #expect(p[1].prompt == [1] + e("S q") && p[1].chosen == e("y") + [2])
        #expect(p[2].prompt == [1] + e("q") && p[2].chosen == e("y") + [2] && p[2].rejected == e("n") + [2])
        #expect(p[3] == PreferencePair(prompt: [1, 5], chosen: [6, 2], rejected: [7]))
        let (chat, _) = try load([#"{"prompt": "hi", "chosen": "yo", "rejected": "no"}"#], template: .llama2)
        #expect(chat[0].prompt == [1] + e("[INST] hi [/INST]") && chat[0].chosen == e(" yo") + [2])
    }

    @Test func truncationSharesTheRestInProportion() throws {
        let (p, s) = try load([#"{"prompt": "abcdefgh", "chosen": "ABCDEFG", "rejected": "xyz"}"#], maxSeqLen: 14, maxPromptLen: 4)
        // Prompt keeps its last 4 of [BOS] abcdefgh; 10 left for 8 + 4 answer tokens: chosen ⌊10·8/12⌋ = 6, rejected 4.
        #expect(p[0].prompt == e("efgh"))
        #expect(p[0].chosen == e("ABCDEF") && p[0].rejected == e("xyz") + [2])
        #expect(s.truncated == 1)
        let (none, s2) = try load([#"{"prompt": "abcdefgh", "chosen": "ABCDEFG", "rejected": "xyz"}"#], maxSeqLen: 5, maxPromptLen: 4)
        #expect(none.isEmpty && s2.dropped == 1)
    }

    @Test func badRowsAndCountedWarnings() throws {
        let cases: [(String, String)] = [
            (#"{"prompt": "q", "rejected": "n"}"#, "field 'chosen': missing"),
            (#"{"prompt": ["a", "b"], "chosen": ["c"], "rejected": ["d"]}"#, "turns"),
            (#"{"src": ["q"], "response": ["a", "b"], "sort": [1, 1]}"#, "tie"),
            (#"{"prompt": "q", "chosen": 3, "rejected": "n"}"#, "a number"),
        ]
        for (line, problem) in cases {
            do { _ = try load([line]); Issue.record("expected an error for \(line)") } catch {
                #expect("\(error)".contains(":1: ") && "\(error)".contains(problem), "\(error)")
            }
        }
        let (p, s) = try load([#"{"prompt": "q", "chosen": "same", "rejected": "same"}"#, #"{"prompt": "q", "chosen": "a", "rejected": "b"}"#])
        #expect(p.count == 2 && s.identical == 1 && s.identicalLines == [1] && s.warnings.contains("identical"))
    }

    @Test func unknownLossTypeAndReferenceFreeMisuse() throws {
        var a = try Demo.args(.dpo, ["loss_type": "sigmod"])
        a.modelNameOrPath = "unused"
        do { try DPORun(args: a).run(); Issue.record("expected an error") } catch { #expect("\(error)".contains("did you mean 'sigmoid'?")) }
        let b = try Demo.args(.dpo, ["reference_free": true, "loss_type": ["sigmoid"]])
        do { try DPORun(args: b).run(); Issue.record("expected an error") } catch { #expect("\(error)".contains("reference_free")) }
    }
}

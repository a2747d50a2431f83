import Foundation
import Testing
@testable import Alignment

/// TRL's dataset formats: implicit-prompt preference rows (TRL's `extract_prompt` rule),
/// conversational preference rows, and SFT `text`, `prompt`/`completion` and `messages` rows.
@Suite struct TRLFormatTests {
    let tok = ByteTokenizer()

    func pairs(_ jsonl: String, template: ChatTemplate = .none) throws -> [PreferencePair] {
        try PreferenceDataset.load(data: Data(jsonl.utf8), file: "p.jsonl", tokenizer: tok, maxSeqLen: 512, maxPromptLen: 256, template: template).0
    }

    func sft(_ jsonl: String, template: ChatTemplate = .none, maxSeqLen: Int = 512) throws -> ([TokenizedExample], DatasetSummary) {
        try SFTDataset.load(data: Data(jsonl.utf8), file: "s.jsonl", tokenizer: tok, maxSeqLen: maxSeqLen, maxPromptLen: 256, template: template)
    }

    /// The split rule, on TRL's own docstring example and its edge cases (TRL 1.x
    /// `trl/data_utils.py`: the index moves back over a space; a prefix splits one before its end).
    @Test func implicitPromptFollowsTRLsRule() throws {
        let space: (Character) -> Bool = { $0 == " " }
        func cut(_ c: String, _ r: String) -> (String, String, String)? {
            guard let i = ImplicitPrompt.split(Array(c), Array(r), isSpace: space) else { return nil }
            return (String(Array(c)[..<i]), String(Array(c)[i...]), String(Array(r)[i...]))
        }
        #expect(cut("The sky is blue.", "The sky is green.")! == ("The sky is", " blue.", " green."))
        #expect(cut("ab", "ac")! == ("a", "b", "c"))
        #expect(cut("Hi there", "Hi there!")! == ("Hi ther", "e", "e!"))
        #expect(cut("", "x") == nil)
        let explicit = try pairs(#"{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}"#)
        #expect(try pairs(#"{"chosen": "The sky is blue.", "rejected": "The sky is green."}"#) == explicit)
        #expect(explicit.first?.prompt == [tok.bosId] + tok.encode("The sky is"))
    }

    @Test func conversationalImplicitPromptSplitsAtTheFirstDifferentMessage() throws {
        let implicit = #"{"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "#
            + #""rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}"#
        let explicit = #"{"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "#
            + #""rejected": [{"role": "assistant", "content": "5"}]}"#
        #expect(try pairs(implicit, template: .llama2) == pairs(explicit, template: .llama2))
        let p = try #require(try pairs(explicit, template: .llama2).first)
        #expect(p.prompt == [tok.bosId] + tok.encode("[INST] 2+2? [/INST]"))
        #expect(p.chosen == tok.encode(" 4") + [tok.eosId])
        // Nothing shared: an error naming the line and the field.
        let none = #"{"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "b"}]}"#
        #expect { try pairs(none) } throws: { "\($0)".contains("p.jsonl:1") && "\($0)".contains("rejected") }
    }

    @Test func sftTextPromptCompletionAndMessagesRows() throws {
        let (text, _) = try sft(#"{"text": "hello"}"#)
        let ids = [tok.bosId] + tok.encode("hello") + [tok.eosId]
        #expect(text == [TokenizedExample(inputIds: ids, labels: ids)])
        // prompt/completion strings: joined as they are (no template even when one is set), completion-only loss.
        let (pc, _) = try sft(#"{"prompt": "Q: 1+1?", "completion": " 2"}"#, template: .llama2)
        let (srcTgt, _) = try sft(#"{"src": "Q: 1+1?", "tgt": " 2"}"#)
        #expect(pc == srcTgt)
        // messages: rendered through the template, system before the first user message.
        let msgs = #"{"messages": [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "Hi"}, "#
            + #"{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]}"#
        let (m, _) = try sft(msgs, template: .llama2)
        let (paddle, _) = try sft(#"{"src": ["Be brief. Hi", "Bye"], "tgt": ["Hello", "Ciao"]}"#, template: .llama2)
        #expect(m == paddle && !m.isEmpty)
        // Conversational prompt/completion is the same conversation.
        let conv = #"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}"#
        #expect(try sft(conv, template: .llama2).0 == sft(#"{"src": "Hi", "tgt": "Hello"}"#, template: .llama2).0)
        // Errors name the file, line and field.
        let bad = #"{"messages": [{"role": "user", "content": "Hi"}]}"#
        #expect { try sft("\n" + bad) } throws: { "\($0)".contains("s.jsonl:2") && "\($0)".contains("messages") && "\($0)".contains("assistant") }
        #expect { try sft(#"{"prompt": "x"}"#) } throws: { "\($0)".contains("completion") }
        // A long text row is cut and counted.
        let (cut, summary) = try sft(#"{"text": "0123456789"}"#, maxSeqLen: 5)
        #expect(cut.first?.inputIds.count == 5 && summary.truncated == 1)
    }
}

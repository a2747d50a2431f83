import Alignment
import Foundation
import FuzzSupport

// Preference data (DPO): `prompt`/`chosen`/`rejected` (strings or turn lists), PaddleNLP's
// `src`/`tgt`/`response`/`sort`, TRL's message lists, pre-tokenized `*_ids` rows
// (JSONLines.parse, PreferenceDataset with its truncation), then the shared-prompt layout.

/// A BPE tokenizer from the tiny seed vocabulary, beside the byte-level one.
let bpe: Llama2cTokenizer? = try? Llama2cTokenizer(data: Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: true)), path: "tiny.bin")

/// Lengths and templates every input is read with: roomy, tight (truncation), and a prompt
/// budget larger than the row.
let settings: [(seq: Int, prompt: Int, template: ChatTemplate, bpe: Bool)] = [
    (512, 256, .none, false), (16, 6, .llama2, true), (5, 2, .custom(system: "S:", user: "<u>{{user}}</u>", bot: "{{bot}}!"), false),
    (4, 10, .none, false), (64, 20, .hf(.llama3), true), (8, 3, .hf(.zephyr), false),
]

/// One input: read as a preference file under each of `settings`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    for s in settings {
        guard let tok: any Tokenizer = s.bpe ? bpe : ByteTokenizer() else { continue }
        do {
            let (pairs, summary) = try PreferenceDataset.load(data: data, file: "dpo.jsonl", tokenizer: tok, maxSeqLen: s.seq,
                                                              maxPromptLen: s.prompt, template: s.template)
            DatasetChecks.check(pairs, summary: summary, vocab: tok.vocabSize, maxSeqLen: s.seq)
            Fuzz.require(summary.pairs + summary.dropped == summary.rows, "rows \(summary.rows) ≠ kept \(summary.pairs) + dropped \(summary.dropped)")
            _ = summary.warnings
        } catch let e as DataError {
            Fuzz.require(e.file == "dpo.jsonl" && e.line != nil, "error without the file and line: \(e)")
        } catch {
            Fuzz.require(false, "not a DataError: \(error)")
        }
    }
    return 0
}

/// Rows of every form the reader accepts, and near misses.
func seeds() -> [(String, Data)] {
    [
        ("seed", #"{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome."}"#),
        ("turns", #"{"prompt": ["Hi", "2+2?"], "chosen": ["Hello", "4"], "rejected": ["Hey", "5"]}"#),
        ("paddle", #"{"src": ["Hi", "2+2?"], "tgt": ["Hello"], "response": ["4", "5"], "sort": [1, 0]}"#
            + "\n" + #"{"src": "q", "response": ["a", "b"], "sort": [0.5, 0.5]}"#),
        ("trl", #"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}], "#
            + #""chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}"#),
        ("trl-full", #"{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "user", "content": "a"}, "#
            + #"{"role": "assistant", "content": "b"}], "rejected": "c"}"#),
        ("implicit", #"{"chosen": "The sky is blue.", "rejected": "The sky is green."}"# + "\n"
            + #"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "#
            + #""rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}"#),
        ("ids", #"{"prompt_ids": [1, 5, 6], "chosen_ids": [7, 2], "rejected_ids": [8, 9, 2]}"# + "\n" + #"{"prompt_ids": [], "chosen_ids": [3], "rejected_ids": [3]}"#),
        ("bad", #"{"prompt": "a", "chosen": "", "rejected": "b"}"# + "\n" + #"{"prompt": [{"role": "tool"}], "chosen": "x", "rejected": "y"}"#),
    ].map { ($0.0, Data($0.1.utf8)) }
}

/// libFuzzer calls this once before fuzzing: when run.sh asks (`LLAMA_ALIGN_FUZZ_WRITE_SEEDS`),
/// writes this target's seeds and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Fuzz.writeSeedsIfAsked(seeds)
    return 0
}

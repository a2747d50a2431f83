import Alignment
import Foundation
import FuzzSupport

// SFT data: `{"src", "tgt"}` rows (strings or lists of turns) and pre-tokenized rows
// (JSONLines.parse, SFTDataset with its truncation rules and chat templates).

/// A BPE tokenizer from the tiny seed vocabulary, beside the byte-level one.
let bpe: Llama2cTokenizer? = try? Llama2cTokenizer(data: Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: true)), path: "tiny.bin")

/// Lengths and templates every input is read with: roomy, tight (truncation), and a prompt
/// budget larger than the row.
let settings: [(seq: Int, prompt: Int, template: ChatTemplate, bpe: Bool)] = [
    (512, 256, .none, false), (12, 4, .llama2, true), (3, 1, .custom(system: "S:", user: "<u>{{user}}</u>", bot: "{{bot}}!"), false),
    (4, 10, .none, false), (64, 20, .hf(.llama2), true), (6, 3, .hf(.chatml), false),
]

/// One input: read as an SFT file under each of `settings`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    for s in settings {
        guard let tok: any Tokenizer = s.bpe ? bpe : ByteTokenizer() else { continue }
        do {
            let (rows, summary) = try SFTDataset.load(data: data, file: "sft.jsonl", tokenizer: tok, maxSeqLen: s.seq,
                                                      maxPromptLen: s.prompt, template: s.template)
            DatasetChecks.check(rows, summary: summary, vocab: tok.vocabSize)
            Fuzz.require(summary.examples + summary.dropped == summary.rows, "rows \(summary.rows) ≠ kept \(summary.examples) + dropped \(summary.dropped)")
        } catch let e as DataError {
            Fuzz.require(e.file == "sft.jsonl" && e.line != nil, "error without the file and line: \(e)")
        } catch {
            Fuzz.require(false, "not a DataError: \(error)")
        }
    }
    return 0
}

/// Rows of every form the reader accepts, and near misses.
func seeds() -> [(String, Data)] {
    [
        ("single", #"{"src": "What is the capital of France?", "tgt": "Paris."}"#),
        ("multi", #"{"src": ["Hi", "And 2+2?"], "tgt": ["Hello!", "4"]}"# + "\n" + #"{"src": [], "tgt": []}"#),
        ("ids", #"{"input_ids": [1, 72, 105, 2], "labels": [-100, -100, 105, 2]}"# + "\n" + #"{"input_ids": [], "src": "x"}"#),
        ("bad", #"{"src": "a", "tgt": ""}"# + "\n" + #"{"src": ["a", 1], "tgt": "b"}"# + "\n" + #"{"src": "a", "tgt": ["b", "c"]}"#),
        ("unicode", #"{"src": "é e\u0301 日本", "tgt": "🙂\n\t"}"#),
        ("trl", #"{"text": "plain text"}"# + "\n" + #"{"prompt": "Q?", "completion": " A"}"# + "\n"
            + #"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}"#
            + "\n" + #"{"prompt": [{"role": "user", "content": "u"}], "completion": [{"role": "assistant", "content": "a"}]}"#),
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

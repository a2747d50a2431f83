import Alignment
import Foundation
import FuzzSupport

// Pretraining data: `{"text"}` JSONL rows and pre-tokenized `{"input_ids", "labels"?}` rows
// (JSONLines.parse, PretrainDataset), and the same bytes as a `.txt` file of documents.

/// A BPE tokenizer from the tiny seed vocabulary, beside the byte-level one.
let bpe: Llama2cTokenizer? = try? Llama2cTokenizer(data: Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: true)), path: "tiny.bin")

/// One input: read as JSONL and as text, packed into rows of 512, 3 and 2 tokens.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    for file in ["fuzz.jsonl", "fuzz.txt"] {
        for (seq, tok) in [(512, bpe as (any Tokenizer)?), (3, ByteTokenizer()), (2, ByteTokenizer())] {
            guard let tok else { continue }
            do {
                let (rows, summary) = try PretrainDataset.load(data: data, file: file, tokenizer: tok, maxSeqLen: seq)
                DatasetChecks.check(rows, summary: summary, vocab: tok.vocabSize)
            } catch let e as DataError {
                Fuzz.require(e.file == file, "error names \(e.file), not \(file)")
            } catch {
                Fuzz.require(false, "not a DataError: \(error)")
            }
        }
    }
    return 0
}

/// Rows of every form the reader accepts, and near misses.
func seeds() -> [(String, Data)] {
    [
        ("text", #"{"text": "Once upon a time there was a cat."}"# + "\n" + #"{"text": "The end."}"#),
        ("ids", #"{"input_ids": [1, 72, 105, 2]}"# + "\n" + #"{"input_ids": [1, 3, 4], "labels": [-100, 3, 4]}"#),
        ("mixed", "\n  \n" + #"{"text": "é 日本 🙂\n"}"# + "\r\n" + #"{"text": ""}"# + "\n" + #"{"input_ids": [5], "labels": null}"#),
        ("bad", #"{"text": 3}"# + "\n" + #"[1, 2]"# + "\n" + #"{"input_ids": [1.5, true, -100, 300]}"#),
        ("doc.txt", "First document.\nStill first.\n\nSecond document.\n\n\n\nThird."),
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

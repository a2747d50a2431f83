import Alignment
import Foundation
import FuzzSupport

// chat_template.json (PaddleNLP: `{"system"?, "conversation": [user, bot]}` with {{user}} and
// {{bot}} slots): ChatTemplate.parse, then SFT and DPO rows rendered through the template.

/// SFT rows (one and two turns) and preference rows the parsed template renders.
let sftRows = Data((#"{"src": "Hi {{bot}}", "tgt": "Hello {{user}}"}"# + "\n" + #"{"src": ["a", "b"], "tgt": ["c", "d"]}"#).utf8)
let dpoRows = Data((#"{"prompt": ["a", "b"], "chosen": ["c", "d"], "rejected": ["c", "e"]}"# + "\n"
    + #"{"prompt": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}], "chosen": "y", "rejected": "n"}"#).utf8)

/// One input: parsed as a chat template; when accepted, used to read `sftRows` and `dpoRows`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    let template: ChatTemplate
    do {
        template = try ChatTemplate.parse(data, file: "chat_template.json")
    } catch let e as DataError {
        Fuzz.require(e.file == "chat_template.json", "error names \(e.file)")
        return 0
    } catch {
        Fuzz.require(false, "not a DataError: \(error)")
        return 0
    }
    let tok = ByteTokenizer()
    for (seq, prompt) in [(4096, 2048), (6, 2)] {
        do {
            let (rows, summary) = try SFTDataset.load(data: sftRows, file: "sft.jsonl", tokenizer: tok, maxSeqLen: seq,
                                                      maxPromptLen: prompt, template: template)
            DatasetChecks.check(rows, summary: summary, vocab: tok.vocabSize)
            let (pairs, pairSummary) = try PreferenceDataset.load(data: dpoRows, file: "dpo.jsonl", tokenizer: tok, maxSeqLen: seq,
                                                                  maxPromptLen: prompt, template: template)
            DatasetChecks.check(pairs, summary: pairSummary, vocab: tok.vocabSize, maxSeqLen: seq)
        } catch {
            Fuzz.require(false, "fixed rows failed under an accepted template: \(error)")
        }
    }
    return 0
}

/// PaddleNLP-style templates, and near misses.
func seeds() -> [(String, Data)] {
    [
        ("paddle", #"{"system": "You are a helpful assistant. ", "conversation": ["[INST] {{user}} [/INST]", "{{bot}}</s>"]}"#),
        ("plain", #"{"conversation": ["<|user|>\n{{user}}\n<|assistant|>\n", "{{bot}}"]}"#),
        ("repeat", #"{"system": null, "conversation": ["{{user}}{{user}}", "{{bot}} and {{bot}}"], "generation": "x"}"#),
        ("bad", #"{"conversation": ["{{user}}"]}"#),
        ("unicode", #"{"system": "é日本🙂", "conversation": ["\u0000{{user}}\uFFFD", "{{bot}}\n"]}"#),
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

import Alignment
import Foundation
import FuzzSupport

// Hugging Face `tokenizer.json`: the JSON (key-order-keeping parse of the vocabulary), the BPE
// model, merges, added tokens, normalizer and pre-tokenizer, then the vocabulary encoding and
// decoding text (TokenizerChecks).

/// One input: read as a tokenizer.json; an accepted one must encode into its vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    do {
        TokenizerChecks.exercise(try HFTokenizer(data: data, path: "tokenizer.json"))
    } catch let e as TokenizerError {
        Fuzz.require(e.path == "tokenizer.json" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
    } catch {
        Fuzz.require(false, "not a TokenizerError: \(error)")
    }
    return 0
}

/// tokenizer.json written by this project for small vocabularies, the byte tokenizer and the
/// first pieces of the shared LLaMA-2 tokenizer.
func seeds() throws -> [(String, Data)] {
    var out: [(String, Data)] = []
    for (name, bin) in [("few-bytes", Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: false))),
                        ("all-bytes", Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: true)))]
                        + (Seeds.trimmedSharedLlama2cTokenizer(pieces: 400).map { [("llama2-400", $0)] } ?? []) {
        if let json = try HFTokenizerFiles.tokenizerJSON(try Llama2cTokenizer(data: bin, path: name)) { out.append(("\(name).json", json)) }
    }
    if let byte = try HFTokenizerFiles.tokenizerJSON(ByteTokenizer()) { out.append(("byte.json", byte)) }
    return out
}

/// libFuzzer calls this once before fuzzing: when run.sh asks (`LLAMA_ALIGN_FUZZ_WRITE_SEEDS`),
/// writes this target's seeds and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Fuzz.writeSeedsIfAsked(seeds)
    return 0
}

import Alignment
import Foundation
import FuzzSupport

// llama2.c `tokenizer.bin`: the header, each piece's score, length and bytes, then the BPE
// vocabulary built from them encoding and decoding text (TokenizerChecks).

/// One input: read as a tokenizer.bin; an accepted one must encode into its vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    do {
        TokenizerChecks.exercise(try Llama2cTokenizer(data: data, path: "tokenizer.bin"))
    } catch let e as TokenizerError {
        Fuzz.require(e.path == "tokenizer.bin" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
    } catch {
        Fuzz.require(false, "not a TokenizerError: \(error)")
    }
    return 0
}

/// Small vocabularies encoded here, and the first pieces of the shared LLaMA-2 tokenizer.bin.
func seeds() -> [(String, Data)] {
    var out = [("few-bytes.bin", Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: false))),
               ("all-bytes.bin", Seeds.llama2cTokenizer(Seeds.vocabulary(allBytes: true)))]
    if let llama = Seeds.trimmedSharedLlama2cTokenizer(pieces: 400) { out.append(("llama2-400.bin", llama)) }
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

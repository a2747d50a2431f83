import Alignment
import Foundation
import FuzzSupport

// SentencePiece `tokenizer.model`: the protobuf reader (varints, wire types, lengths), the
// ModelProto's pieces, TrainerSpec and NormalizerSpec, then the BPE vocabulary built from them
// encoding and decoding text (TokenizerChecks).

/// One input: read as a tokenizer.model; an accepted one must encode into its vocabulary.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    do {
        TokenizerChecks.exercise(try SentencePieceTokenizer(data: data, path: "tokenizer.model"))
    } catch let e as TokenizerError {
        Fuzz.require(e.path == "tokenizer.model" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
    } catch {
        Fuzz.require(false, "not a TokenizerError: \(error)")
    }
    return 0
}

/// Small BPE models encoded here, and the first pieces of the shared LLaMA-2 model.
func seeds() -> [(String, Data)] {
    var out = [("few-bytes.model", Seeds.sentencePieceModel(Seeds.vocabulary(allBytes: false))),
               ("all-bytes.model", Seeds.sentencePieceModel(Seeds.vocabulary(allBytes: true)))]
    if let llama = Seeds.trimmedSharedSentencePiece(pieces: 400) { out.append(("llama2-400.model", llama)) }
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

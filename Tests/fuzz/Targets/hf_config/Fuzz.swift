import Alignment
import Foundation
import FuzzSupport

// Hugging Face config.json: HFConfig's Codable decoding (sizes, norm eps, RoPE θ from
// rope_theta or rope_parameters, refusals of scaled RoPE and biases) and the checks of the
// model configuration it describes (HFCheckpoint.config(data:path:)).

/// One input: parsed as a config.json; an accepted one must describe a usable model.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    do {
        let (c, _) = try HFCheckpoint.config(data: data, path: "config.json")
        Fuzz.require(c.dim > 0 && c.nHeads > 0 && c.nKVHeads > 0 && c.dim % c.nHeads == 0 && c.nHeads % c.nKVHeads == 0
                     && c.headDim % 2 == 0 && c.vocabSize > 0 && c.maxSeqLen > 0 && c.nLayers > 0 && c.hiddenDim > 0,
                     "accepted an unusable configuration \(c)")
        Fuzz.require(c.normEps.isFinite && c.ropeTheta.isFinite && c.ropeTheta > 0, "accepted eps \(c.normEps), theta \(c.ropeTheta)")
        _ = c.parameterShapes
    } catch let e as CheckpointError {
        Fuzz.require(e.path == "config.json" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
    } catch {
        Fuzz.require(false, "not a CheckpointError: \(error)")
    }
    return 0
}

/// config.json as HFCheckpoint.save writes it, and as transformers 5 writes it.
func seeds() throws -> [(String, Data)] {
    try Seeds.huggingFace().configs
}

/// libFuzzer calls this once before fuzzing: when run.sh asks (`LLAMA_ALIGN_FUZZ_WRITE_SEEDS`),
/// writes this target's seeds and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Fuzz.writeSeedsIfAsked(seeds)
    return 0
}

import Alignment
import Foundation
import FuzzSupport

// safetensors files: Safetensors.parse (header length, JSON header, dtypes, shapes,
// data_offsets, overlaps), then every tensor decoded to Float (F32, F16, BF16).

/// One input: parsed as a safetensors file; when accepted, every tensor is decoded.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    let file: Safetensors.File
    do {
        file = try Safetensors.parse(data, path: "model.safetensors")
    } catch let e as CheckpointError {
        Fuzz.require(e.path == "model.safetensors" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
        return 0
    } catch {
        Fuzz.require(false, "not a CheckpointError: \(error)")
        return 0
    }
    _ = file.metadata
    for name in file.names {
        guard let info = file.tensors[name] else { continue }
        Fuzz.require(info.byteRange.upperBound <= data.count, "tensor '\(name)' ends past the file")
        do {
            let t = try file.tensor(name)
            Fuzz.require(t.values.count == info.count && t.shape == info.shape, "tensor '\(name)' decoded to \(t.values.count) values for \(info.shape)")
        } catch let e as CheckpointError {
            Fuzz.require(Safetensors.DType(rawValue: info.dtype) == nil, "a decodable dtype failed: \(e)")
        } catch {
            Fuzz.require(false, "not a CheckpointError: \(error)")
        }
    }
    return 0
}

/// The tiny model as HFCheckpoint.save writes it, and small F32/F16/BF16 files.
func seeds() throws -> [(String, Data)] {
    try Seeds.huggingFace().safetensors
}

/// libFuzzer calls this once before fuzzing: when run.sh asks (`LLAMA_ALIGN_FUZZ_WRITE_SEEDS`),
/// writes this target's seeds and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    Fuzz.writeSeedsIfAsked(seeds)
    return 0
}

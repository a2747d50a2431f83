import Alignment
import Foundation
import FuzzSupport

// llama2.c legacy `.bin` checkpoints: the seven-int32 header (sizes, shared classifier by the
// sign of vocab_size, newer-version magic), the file-length check, and the weights read from it.

/// Loads `data` as a `.bin` checkpoint; an accepted one must validate.
func load(_ data: Data) {
    do {
        let w = try Llama2cCheckpoint.load(data: data, path: "model.bin")
        do { try w.validate() } catch { Fuzz.require(false, "loaded weights do not validate: \(error)") }
    } catch let e as CheckpointError {
        Fuzz.require(e.path == "model.bin" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
    } catch {
        Fuzz.require(false, "not a CheckpointError: \(error)")
    }
}

/// The length a legacy `.bin` with this 28-byte header has (computed here independently of
/// the reader), when the sizes are positive and it is at most 64 KiB; else nil.
func expectedLength(_ header: Data) -> Int? {
    guard header.count >= 28 else { return nil }
    let h = (0..<7).map { i in Double(Int32(bitPattern: header.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) })) }
    let (d, f, l, heads, kv, v, s) = (h[0], h[1], h[2], h[3], h[4], abs(h[5]), h[6])
    guard [d, f, l, heads, kv, v, s].allSatisfy({ $0 > 0 }) else { return nil }
    let hd = (d / heads).rounded(.towardZero), kvd = kv * hd
    let floats = v * d + l * (2 * d + 2 * d * d + 2 * kvd * d + 3 * f * d) + d + 2 * s * (hd / 2).rounded(.towardZero) + (h[5] < 0 ? v * d : 0)
    let bytes = 28 + 4 * floats
    return bytes <= 65536 ? Int(bytes) : nil
}

/// One input: loaded as it is, and (so that fuzzed headers get past the length check) with
/// its body cut or repeated to the length its header implies.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    load(data)
    if let n = expectedLength(data), n != data.count {
        var fitted = data.prefix(28)
        let body = data.dropFirst(28)
        while fitted.count < n { fitted.append(contentsOf: body.isEmpty ? Data(count: n - fitted.count) : body.prefix(n - fitted.count)) }
        load(fitted)
    }
    return 0
}

/// The tiny model as Llama2cCheckpoint.write writes it (tied, untied), a newer-version
/// header, and the shared stories260K header when LLAMA_ALIGN_SHARED is set.
func seeds() throws -> [(String, Data)] {
    var out = try Seeds.llama2cCheckpoints()
    out.append(("ak42.bin", Data([0x32, 0x34, 0x6B, 0x61, 2, 0, 0, 0] + [UInt8](repeating: 0, count: 248))))
    if let header = Seeds.sharedLlama2cHeader() { out.append(("stories260K-header.bin", header)) }
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

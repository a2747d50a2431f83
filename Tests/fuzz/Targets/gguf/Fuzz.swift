import Alignment
import Foundation
import FuzzSupport

// GGUF files: GGUFFile.parse (magic, version, counts, metadata values and arrays, the tensor
// table, alignment, offsets, sizes, overlaps), every decodable tensor (F32, F16, BF16, Q8_0,
// Q4_0, and the unpacked view of the quantized ones), the LLaMA model it describes
// (GGUFLlama.weights) and its vocabulary as a tokenizer.

/// Requires `error` to be a one-line CheckpointError naming the file.
func checkError(_ error: any Error) {
    guard let e = error as? CheckpointError else { Fuzz.require(false, "not a CheckpointError: \(error)"); return }
    Fuzz.require(e.path == "model.gguf" && !e.description.contains("\n"), "error is not one line naming the file: \(e)")
}

/// One input: parsed; when accepted, every tensor decoded, the model and the tokenizer read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = Fuzz.data(bytes, size)
    let file: GGUFFile
    do { file = try GGUFFile.parse(data, path: "model.gguf") } catch { checkError(error); return 0 }
    for t in file.tensors {
        do {
            let values = try file.floats(t.name)
            Fuzz.require(values.count == t.count, "tensor '\(t.name)' decoded to \(values.count) values, expected \(t.count)")
            Fuzz.require(t.offset + (t.byteCount ?? 0) <= data.count, "tensor '\(t.name)' ends past the file")
            if t.type == .q8_0 || t.type == .q4_0 {
                let q = try file.quantized(t.name)
                Fuzz.require(q.values.count == t.count && q.scales.count * 32 == t.count, "unpacked sizes disagree for '\(t.name)'")
                Fuzz.require(t.type == .q8_0 || q.values.allSatisfy { (-8...7).contains($0) }, "a Q4_0 value outside −8…7")
                Fuzz.require(zip(q.dequantized(), values).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) },
                             "unpacked and decoded values differ for '\(t.name)'")
            }
        } catch {
            checkError(error)
            Fuzz.require(t.byteCount == nil, "a decodable tensor failed: \(error)")
        }
    }
    do {
        let w = try GGUFLlama.weights(file)
        do { try w.validate() } catch { Fuzz.require(false, "loaded weights do not validate: \(error)") }
    } catch { checkError(error) }
    do {
        if let tok = try GGUFVocabulary.read(from: file)?.tokenizer() { TokenizerChecks.exercise(tok) }
    } catch { checkError(error) }
    return 0
}

/// A tiny model (rows of 32, so that Q8_0/Q4_0 apply) as `GGUFLlama.writer` writes it in every
/// file type, with a SentencePiece or a placeholder vocabulary, and a byte-level one in F16.
func seeds() throws -> [(String, Data)] {
    let spm = try SentencePieceTokenizer(data: Seeds.sentencePieceModel(Seeds.vocabulary(allBytes: false)), path: "t.model")
    var out: [(String, Data)] = []
    for (type, tokenizer) in [(GGUFLlama.FileType.f32, spm), (.f16, nil), (.q8_0, nil), (.q4_0, spm)] as [(GGUFLlama.FileType, (any Tokenizer)?)] {
        let c = LlamaConfig(dim: 32, hiddenDim: 32, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: spm.vocabSize, maxSeqLen: 4,
                            tiedEmbeddings: type != .q8_0)
        let vocab = try GGUFVocabulary.from(tokenizer, vocabSize: c.vocabSize, source: "seed")
        let (writer, _) = GGUFLlama.writer(LlamaWeights.random(config: c, seed: 7), vocabulary: vocab, type: type, name: "seed")
        out.append(("tiny-\(type.rawValue).gguf", writer.encoded()))
    }
    let c = LlamaConfig(dim: 4, hiddenDim: 8, nLayers: 1, nHeads: 2, nKVHeads: 1, vocabSize: 259, maxSeqLen: 4)
    let vocab = try GGUFVocabulary.from(ByteTokenizer(), vocabSize: 259, source: "byte")
    out.append(("byte.gguf", GGUFLlama.writer(LlamaWeights.random(config: c, seed: 7), vocabulary: vocab, type: .f16, name: "b").0.encoded()))
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

import Alignment
import ArgumentParser
import Foundation

extension GGUFLlama.FileType: ExpressibleByArgument {}

/// `llama-align export --gguf`: write a model as a GGUF file llama.cpp loads.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a GGUF v3 file (LLaMA metadata, the SentencePiece vocabulary, F32/F16/Q8_0/Q4_0 tensors) that llama.cpp loads.")

    @Flag(help: "Write GGUF (the one export format so far; required).") var gguf = false
    @Option(help: "The matrices' type: f32, f16, q8_0 or q4_0 (norm weights are always f32).") var type: GGUFLlama.FileType = .f32
    @Option(name: .customLong("vocab-type"), help: "Type of the token embedding and the output matrix (default: --type).")
    var vocabType: GGUFLlama.FileType?
    @Option(help: "A checkpoint (.bin, Hugging Face directory, .gguf), or small | medium: the benchmarks' random weights (seed 1).")
    var model: String
    @Option(help: "tokenizer.model, tokenizer.bin or byte (default: beside the model; with none, a placeholder vocabulary).")
    var tokenizer: String?
    @Option(help: "The GGUF file to write (must end in .gguf).") var out: String
    @Option(help: "general.name (default: the model's file or folder name).") var name: String?

    func validate() throws {
        guard gguf else { throw ValidationError("say which format: --gguf (the only export format so far)") }
        guard out.lowercased().hasSuffix(".gguf") else { throw ValidationError("--out must name a .gguf file, got '\(out)'") }
    }

    func run() throws {
        let random = BenchConfig.named(model)
        if random == nil { try CheckpointOutput.checkFile(out, source: model) }
        // A quantized GGUF's values in another quantized type would be quantized twice (the same
        // type again is exact: its blocks come back as they were).
        let sourceTypes = random == nil ? try ggufQuantizedTypes(model) : []
        let asked = Set(([type] + [vocabType ?? type]).filter { $0 == .q8_0 || $0 == .q4_0 }.map { $0.rawValue.uppercased() })
        if !sourceTypes.isEmpty, !asked.isSubset(of: sourceTypes) {
            throw CLIError("\(model) is already quantized (\(sourceTypes.joined(separator: ", ")) tensors); writing "
                                  + "\(asked.sorted().joined(separator: ", ")) would quantize its values again (export it as f32, f16 or "
                                  + "its own type, or export the f32 model)")
        }
        let weights = try random.map { LlamaWeights.random(config: $0, seed: 1, scale: 0.02) } ?? loadModel(path: model)
        let tok: (any Tokenizer)? = try tokenizer.map { try loadTokenizer(path: $0) } ?? (random == nil ? tokenizerBeside(model: model) : nil)
        let vocabulary = try GGUFVocabulary.from(tok, vocabSize: weights.config.vocabSize, source: tokenizer ?? model)
        let title = name ?? (random != nil ? "random-\(model)" : URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent)
        let summary = try GGUFLlama.export(weights, vocabulary: vocabulary, type: type, vocabularyType: vocabType, name: title, to: out)
        var counts: [String: Int] = [:]
        for t in summary.tensors { counts[t.type.description, default: 0] += 1 }
        let types = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print(String(format: "wrote %@ (%.2f MiB, GGUF v3): %d tensors (%@)", out, Double(summary.bytes) / 1_048_576, summary.tensors.count, types))
        if !summary.fallbacks.isEmpty {
            print("note: \(summary.fallbacks.count) matrices have rows that are not a multiple of 32 and were written as F16: "
                  + summary.fallbacks.joined(separator: ", "))
        }
        switch vocabulary.kind {
        case .placeholder: print("note: no tokenizer; the vocabulary is \(vocabulary.pieces.count) placeholder pieces (use token ids)")
        case .byte: print("note: byte-level vocabulary (259 pieces); llama.cpp decodes it, give it token ids rather than text")
        case .sentencePiece: print("vocabulary: \(vocabulary.pieces.count) SentencePiece pieces with scores and types")
        }
    }
}

/// The GGUF file at `path` on the quantized kernels (`GGUFLlama.quantizedWeights`), its notes
/// printed; nil when its projections are not all Q8_0 or all Q4_0.
func ggufQuantized(_ path: String) throws -> QuantizedWeights? {
    var notes: [String] = []
    let q = try GGUFLlama.quantizedWeights(GGUFFile.read(path: path), notes: &notes)
    for n in notes { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
    return q
}

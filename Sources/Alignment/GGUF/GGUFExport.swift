import Foundation

/// Writing a LLaMA model as a GGUF v3 file that llama.cpp loads.
extension GGUFLlama {
    /// The type of a file (`--type`): its matrices' encoding and `general.file_type`.
    public enum FileType: String, CaseIterable, Sendable {
        case f32, f16, q8_0, q4_0

        /// The ggml type of the matrices.
        public var tensorType: GGMLType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            }
        }

        /// llama.cpp's `llama_ftype`: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7.
        var fileTypeCode: UInt32 {
            switch self {
            case .f32: 0
            case .f16: 1
            case .q8_0: 7
            case .q4_0: 2
            }
        }
    }

    /// What an export wrote: each tensor's type in file order, the matrices that could not take
    /// the quantized type (rows not a multiple of 32) and were written as F16, and the file's size.
    public struct ExportSummary: Sendable {
        public var tensors: [(name: String, type: GGMLType)] = []
        public var fallbacks: [String] = []
        public var bytes = 0
    }

    /// Writes `weights` with `vocabulary` to `path` (atomically). Norm weights are F32 in every
    /// file type. Every matrix takes `type`, the token embedding and the output matrix
    /// `vocabularyType` when given (else `type` too); a matrix whose rows (ggml's `ne0`) are not
    /// a multiple of 32 cannot be Q8_0/Q4_0 and is written as F16 (listed in `fallbacks`), as
    /// llama.cpp's quantizer does. A non-finite weight is an error naming the tensor.
    @discardableResult
    public static func export(_ weights: LlamaWeights, vocabulary: GGUFVocabulary, type: FileType, vocabularyType: FileType? = nil,
                              name: String, to path: String) throws -> ExportSummary {
        try weights.validate(source: path)
        try weights.checkFinite(source: path)
        let (w, written) = writer(weights, vocabulary: vocabulary, type: type, vocabularyType: vocabularyType, name: name)
        let data = w.encoded()
        try BinaryIO.writeAtomically(data, to: path)
        var summary = written
        summary.bytes = data.count
        return summary
    }

    /// The file `export` writes, not yet encoded (weights must be valid and finite).
    public static func writer(_ weights: LlamaWeights, vocabulary: GGUFVocabulary, type: FileType, vocabularyType: FileType? = nil,
                              name: String) -> (GGUFWriter, ExportSummary) {
        let c = weights.config
        var w = GGUFWriter()
        var summary = ExportSummary()
        w.add("general.architecture", .string("llama"))
        w.add("general.name", .string(name))
        w.add("general.file_type", .uint32(type.fileTypeCode))
        w.add("general.quantization_version", .uint32(2))
        w.add("llama.vocab_size", .uint32(UInt32(c.vocabSize)))
        w.add("llama.context_length", .uint32(UInt32(c.maxSeqLen)))
        w.add("llama.embedding_length", .uint32(UInt32(c.dim)))
        w.add("llama.block_count", .uint32(UInt32(c.nLayers)))
        w.add("llama.feed_forward_length", .uint32(UInt32(c.hiddenDim)))
        w.add("llama.rope.dimension_count", .uint32(UInt32(c.headDim)))
        w.add("llama.attention.head_count", .uint32(UInt32(c.nHeads)))
        w.add("llama.attention.head_count_kv", .uint32(UInt32(c.nKVHeads)))
        w.add("llama.attention.layer_norm_rms_epsilon", .float32(c.normEps))
        w.add("llama.rope.freq_base", .float32(c.ropeTheta))
        vocabulary.write(to: &w)

        func add(_ param: String, layer: Int?, rows: Int, cols: Int) {
            guard let g = tensorName(param, layer: layer), let all = weights.tensors[param] else { return }
            let start = (layer ?? 0) * rows * cols
            let values = Array(all[start ..< start + rows * cols])
            let isNorm = param.hasSuffix("norm")
            var t: GGMLType = .f32
            if !isNorm {
                t = (param == "embed" || param == "lm_head" ? vocabularyType ?? type : type).tensorType
                if t.blockSize > 1 && cols % t.blockSize != 0 {
                    t = .f16
                    summary.fallbacks.append(g)
                }
            }
            w.addTensor(g, dims: isNorm ? [cols] : [cols, rows], type: t, values: values)
            summary.tensors.append((g, t))
        }
        add("embed", layer: nil, rows: c.vocabSize, cols: c.dim)
        let shapes = Dictionary(c.parameterShapes.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        for layer in 0..<c.nLayers {
            for (param, _) in layerTensors {
                guard let s = shapes[param] else { continue }
                add(param, layer: layer, rows: s.count == 3 ? s[1] : 1, cols: s.last ?? 0)
            }
        }
        add("final_norm", layer: nil, rows: 1, cols: c.dim)
        if !c.tiedEmbeddings { add("lm_head", layer: nil, rows: c.vocabSize, cols: c.dim) }
        return (w, summary)
    }
}

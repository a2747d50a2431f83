import KernelRuntime
import LlamaGraphs

/// A LLaMA model with quantized projections: every layer's `wq wk wv wo w1 w2 w3` (stacked over
/// the layers: `[L·out, in]`) of one `QuantType`, and the output projection `lm_head` (the
/// embedding itself when tied) in `headType` — `q8_0` by default: the most sensitive matrix and,
/// for small models, most of the bytes a token reads, kept at 8 bits as llama.cpp keeps it above
/// 4; `q4_0` (with `q4_0` layers only) halves those bytes. The embedding table and the norms stay
/// f32: a token reads one row of the embedding, so quantizing it would save memory but no time.
public struct QuantizedWeights: Sendable {
    public var config: LlamaConfig
    public let type: QuantType
    public let groupSize: Int
    /// The output projection's type (`matrices["lm_head"]`).
    public var headType: QuantType { matrices["lm_head"]?.type ?? .q8_0 }
    /// `embed`, `attn_norm`, `ffn_norm`, `final_norm` (f32).
    public var dense: [String: [Float]]
    /// `wq` … `w3` and `lm_head`.
    public var matrices: [String: QuantizedMatrix]

    /// The layer projections, in `LlamaConfig.parameterShapes` order.
    public static let projections = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
    /// The f32 tensors.
    public static let denseNames = ["embed", "attn_norm", "ffn_norm", "final_norm"]

    public init(config: LlamaConfig, type: QuantType, groupSize: Int, dense: [String: [Float]], matrices: [String: QuantizedMatrix]) throws {
        self.config = config; self.type = type; self.groupSize = groupSize
        self.dense = dense; self.matrices = matrices
        for n in QuantizedWeights.denseNames where dense[n] == nil { throw QuantizationError("quantized model: no tensor '\(n)'") }
        for n in QuantizedWeights.projections + ["lm_head"] where matrices[n] == nil { throw QuantizationError("quantized model: no tensor '\(n)'") }
        for n in QuantizedWeights.projections where matrices[n]?.type != type {
            throw QuantizationError("quantized model: '\(n)' is not \(type.rawValue)")
        }
        if headType == .q4_0 && type != .q4_0 {
            throw QuantizationError("quantized model: a q4_0 output matrix needs q4_0 layers (these are \(type.rawValue))")
        }
    }

    /// Quantizes `weights` (`groupSize` 32, 64 or 128; a row it does not divide ends in a short
    /// group, e.g. stories260K's hidden size 172 = 5·32 + 12). The output matrix is `headType`
    /// (`q8_0` unless told; `q4_0` only with `q4_0` layers).
    public init(quantizing weights: LlamaWeights, type: QuantType, groupSize: Int = 32, headType: QuantType = .q8_0) throws {
        try weights.validate()
        let c = weights.config
        guard [32, 64, 128].contains(groupSize) else {
            throw QuantizationError("group size \(groupSize): expected 32, 64 or 128")
        }
        var matrices: [String: QuantizedMatrix] = [:]
        for (name, shape) in c.parameterShapes where QuantizedWeights.projections.contains(name) {
            matrices[name] = try QuantizedMatrix(quantizing: weights.tensors[name] ?? [], type: type,
                                                 rows: shape[0] * shape[1], cols: shape[2], groupSize: groupSize)
        }
        let head = c.tiedEmbeddings ? weights.tensors["embed"] : weights.tensors["lm_head"]
        matrices["lm_head"] = try QuantizedMatrix(quantizing: head ?? [], type: headType, rows: c.vocabSize, cols: c.dim, groupSize: groupSize)
        var dense: [String: [Float]] = [:]
        for n in QuantizedWeights.denseNames { dense[n] = weights.tensors[n] ?? [] }
        try self.init(config: c, type: type, groupSize: groupSize, dense: dense, matrices: matrices)
    }

    /// The model these weights stand for, in f32 (every quantized value times its scale; the
    /// output projection becomes an untied `lm_head`).
    public func dequantized() -> LlamaWeights {
        var c = config
        c.tiedEmbeddings = false
        var t = dense
        for (n, m) in matrices { t[n] = m.dequantized() }
        return LlamaWeights(config: c, tensors: t)
    }

    /// Bytes of the quantized matrices (values and f32 scales as the programs read them).
    public var matrixBytes: Int { matrices.values.reduce(0) { $0 + $1.packed.count + 4 * $1.scales.count } }
}

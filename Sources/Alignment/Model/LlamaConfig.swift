/// The hyper-parameters of a LLaMA v1/v2 model (GQA when `nKVHeads < nHeads`).
///
/// One internal layout serves every source format: weights are stacked per layer in
/// llama2.c order and RoPE uses interleaved pairs `(2i, 2i+1)`; Hugging Face's
/// rotate-half q/k rows are permuted at load and back at save.
public struct LlamaConfig: Codable, Sendable, Equatable, Hashable {
    /// Model width (`hidden_size`).
    public var dim: Int
    /// Feed-forward width (`intermediate_size`).
    public var hiddenDim: Int
    public var nLayers: Int
    public var nHeads: Int
    /// Key/value heads; equal to `nHeads` for multi-head attention.
    public var nKVHeads: Int
    public var vocabSize: Int
    /// Longest sequence the model was trained for (`max_position_embeddings`).
    public var maxSeqLen: Int
    public var normEps: Float
    public var ropeTheta: Float
    /// True when the classifier shares the token-embedding matrix.
    public var tiedEmbeddings: Bool

    public init(dim: Int, hiddenDim: Int, nLayers: Int, nHeads: Int, nKVHeads: Int, vocabSize: Int,
                maxSeqLen: Int, normEps: Float = 1e-5, ropeTheta: Float = 10000, tiedEmbeddings: Bool = true) {
        self.dim = dim; self.hiddenDim = hiddenDim; self.nLayers = nLayers; self.nHeads = nHeads
        self.nKVHeads = nKVHeads; self.vocabSize = vocabSize; self.maxSeqLen = maxSeqLen
        self.normEps = normEps; self.ropeTheta = ropeTheta; self.tiedEmbeddings = tiedEmbeddings
    }

    /// Width of one attention head.
    public var headDim: Int { dim / nHeads }
    /// Width of the key/value projections.
    public var kvDim: Int { nKVHeads * headDim }

    /// Internal parameter names and shapes, in llama2.c file order. Per-layer tensors are
    /// stacked with a leading `nLayers` axis; every matrix is `[out, in]` row-major.
    public var parameterShapes: [(name: String, shape: [Int])] {
        var p: [(String, [Int])] = [
            ("embed", [vocabSize, dim]),
            ("attn_norm", [nLayers, dim]),
            ("wq", [nLayers, dim, dim]),
            ("wk", [nLayers, kvDim, dim]),
            ("wv", [nLayers, kvDim, dim]),
            ("wo", [nLayers, dim, dim]),
            ("ffn_norm", [nLayers, dim]),
            ("w1", [nLayers, hiddenDim, dim]),   // gate_proj
            ("w2", [nLayers, dim, hiddenDim]),   // down_proj
            ("w3", [nLayers, hiddenDim, dim]),   // up_proj
            ("final_norm", [dim]),
        ]
        if !tiedEmbeddings { p.append(("lm_head", [vocabSize, dim])) }
        return p
    }
}

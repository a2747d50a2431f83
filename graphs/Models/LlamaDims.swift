import TensorGraph

/// The symbolic sizes every LLaMA program uses. Model widths are symbols too, so one
/// compiled program serves every LLaMA v1/v2 configuration (MHA when `REP = 1`, GQA otherwise).
public enum LlamaDims {
    /// The model's scalar constants every LLaMA program reads (one float each), by input name.
    public enum Constant: String, CaseIterable, Sendable {
        case normEps = "norm_eps", ropeTheta = "rope_theta"
    }

    public static let batch = Dim.sym("B")
    public static let seq = Dim.sym("T")
    /// Position of the first token of this call (0 without a cache).
    public static let start = Dim.sym("P")
    /// Positions attended to: `P + T` with a cache.
    public static let span = Dim.sym("S")
    /// KV-cache capacity.
    public static let cacheLen = Dim.sym("C")
    public static let layers = Dim.sym("L")
    public static let kvHeads = Dim.sym("KVH")
    /// Query heads per KV head.
    public static let rep = Dim.sym("REP")
    /// Half the head width (RoPE pairs).
    public static let half = Dim.sym("HD2")
    public static let hidden = Dim.sym("F")
    public static let vocab = Dim.sym("V")
    /// Positions whose prediction is scored (the rows the vocabulary projection runs on).
    public static let scored = Dim.sym("NS")
    /// `lm_step` takes its scored positions in `NC` chunks of `CR` rows: the vocabulary
    /// projection, the cross-entropy and their gradients run one chunk at a time, so only
    /// `[CR, V]` logits are ever in memory (the runtime pads the last chunk with weight-0 rows).
    public static let chunks = Dim.sym("NC")
    /// Rows per chunk of scored positions (see `chunks`).
    public static let chunkRows = Dim.sym("CR")

    public static var headDim: Dim { half * 2 }
    public static var heads: Dim { kvHeads * rep }
    public static var dim: Dim { heads * headDim }
    public static var kvDim: Dim { kvHeads * headDim }

    /// The derived widths emitted C declares by name at the top of each kernel, largest first.
    public static let named: [NamedSize] = [NamedSize("D", dim), NamedSize("KVD", kvDim), NamedSize("H", heads), NamedSize("HD", headDim)]
}

/// Elementwise functions of one value.
public enum UnaryOp: String, Sendable, Hashable, CaseIterable {
    case neg, exp, log, sqrt, rsqrt, recip, sin, cos, tanh, abs
}

/// Elementwise functions of two values. Comparisons give 1 or 0.
public enum BinaryOp: String, Sendable, Hashable, CaseIterable {
    case add, sub, mul, div, max, min, pow, cmplt, cmple, cmpeq
}

/// Reductions over the last axis (kept as a dim of size 1).
public enum ReduceOp: String, Sendable, Hashable {
    case sum, max
}

/// The value a fused causal-attention node computes (`GraphBuilder.attentionOutput` and
/// friends): its log-sum-exp rows, its output, or one of its gradients.
public enum AttentionPart: String, Sendable, Hashable {
    /// `lse[b, h, t] = log Σ_{s visible} exp(q·k_s / √HD)`, `[B, H, T]`.
    case lse
    /// `out[b, t, h, :] = Σ_s exp(q·k_s / √HD − lse) · v_s`, `[B, T, H, HD]`.
    case out
    /// The gradients of `out` with respect to `q`, `k` and `v`.
    case gradQ = "grad_q", gradK = "grad_k", gradV = "grad_v"
}

/// The primitive op set. Everything else (RMSNorm, RoPE, softmax, attention, losses) is
/// composed from these in the DSL; the fuser turns chains of them back into few kernels.
public enum Op: Sendable, Hashable {
    // Leaves
    /// A program input (data, or a state buffer such as a KV cache).
    case input(String)
    /// A parameter (weight). Inside a repeated stage it is the current layer's slice.
    case param(String)
    case constant(Double)
    /// The runtime value of a size, as a scalar.
    case size(Dim)
    /// The coordinate along `axis`, as a value of the node's shape.
    case iota(axis: Int)
    /// The value carried into a repeated stage (index into `Program.carries`).
    case carry(Int)
    /// The value of carry `k` after its repeated stage has finished.
    case loopResult(Int)

    // Elementwise
    case unary(UnaryOp)
    case binary(BinaryOp)
    /// `select(c, a, b)`: `c != 0 ? a : b`.
    case select
    case cast(DType)
    /// Identity whose gradient is zero (TRL's `.detach()`).
    case stopGradient
    /// A uniform number in [0, 1) drawn from the key (input 0, int32, broadcast to the node's
    /// shape) and the element's flat index: `CounterRandom.uniform(key:index:)`, no gradient.
    case random

    // Reductions
    case reduce(ReduceOp)

    // Movement (views: they never copy unless a consumer needs contiguous memory)
    case reshape
    case permute([Int])
    /// Broadcast dims of size 1 up to the node's shape.
    case expand
    case slice(axis: Int, start: Dim)
    case concat(axis: Int)

    // Contractions and indexing
    /// Fused causal attention (one primitive, several parts): inputs `q` `[B, T, H, HD]`, `k`,
    /// `v` `[B, S, KVH, HD]` (`H` a multiple of `KVH`), then with `masked` an extra 1/0 mask
    /// `[B, T, S]`, then the part's own: `out` takes `lse`; the gradients take `out`, `lse`
    /// and the output's gradient. Query `t` sees keys `s ≤ start + t`.
    case attention(AttentionPart, start: Dim, masked: Bool)
    /// Batched `A · B` over the last two axes; leading axes are batch axes.
    case matmul(transA: Bool, transB: Bool)
    /// `out[i..., :] = table[ids[i...], :]` (embedding lookup).
    case gather
    /// `out[v, :] = Σ_{ids[i] = v} src[i, :]` (gradient of gather); shape [rows, D].
    case scatterAdd
    /// Writes `value` into `target` at `start` along `axis`, in place; the result is the updated target.
    case writeSlice(axis: Int, start: Dim)
    /// The value of input 1, a buffer the program filled earlier with input 0's value (a
    /// saved activation); gradients flow to input 0. The compiler then reads input 1 wherever
    /// input 0 is used, so input 0 is never recomputed.
    case reuse

    /// Short name for manifests, comments and errors.
    public var name: String {
        switch self {
        case .input: "input"
        case .param: "param"
        case .constant: "const"
        case .size: "size"
        case .iota: "iota"
        case .carry: "carry"
        case .loopResult: "loop_result"
        case .unary(let u): u.rawValue
        case .binary(let b): b.rawValue
        case .select: "select"
        case .cast: "cast"
        case .stopGradient: "stop_gradient"
        case .random: "random"
        case .reduce(let r): "reduce_\(r.rawValue)"
        case .reshape: "reshape"
        case .permute: "permute"
        case .expand: "expand"
        case .slice: "slice"
        case .concat: "concat"
        case .matmul: "matmul"
        case .attention(let part, _, _): "attention_\(part.rawValue)"
        case .gather: "gather"
        case .scatterAdd: "scatter_add"
        case .writeSlice: "write_slice"
        case .reuse: "reuse"
        }
    }

    public var isElementwise: Bool {
        switch self {
        case .unary, .binary, .select, .cast, .stopGradient, .random: true
        default: false
        }
    }

    public var isView: Bool {
        switch self {
        case .reshape, .permute, .expand, .slice: true
        default: false
        }
    }

    public var isLeaf: Bool {
        switch self {
        case .input, .param, .constant, .size, .iota, .carry, .loopResult: true
        default: false
        }
    }
}

/// One node of the IR: an op applied to earlier nodes.
public struct Node: Sendable, Hashable {
    public var id: Int
    public var op: Op
    public var inputs: [Int]
    public var shape: Shape
    public var dtype: DType
    /// The DSL scope path (`layer/attention/rope`) the node was built in.
    public var scope: String
    /// The Swift call site (`file:line`) that built the node.
    public var site: String
    /// Index of the program stage the node belongs to.
    public var stage: Int

    public init(id: Int, op: Op, inputs: [Int], shape: Shape, dtype: DType, scope: String, site: String, stage: Int) {
        self.id = id; self.op = op; self.inputs = inputs; self.shape = shape; self.dtype = dtype
        self.scope = scope; self.site = site; self.stage = stage
    }
}

/// A declared program input, parameter or output.
public struct TensorDecl: Sendable, Hashable, Codable {
    public var name: String
    /// The full shape the caller passes; per-layer tensors carry a leading layer axis.
    public var shape: Shape
    public var dtype: DType
    /// True when stacked over layers and sliced per iteration of a repeated stage.
    public var perLayer: Bool
    /// True when the program writes into it (KV caches).
    public var mutable: Bool

    public init(name: String, shape: Shape, dtype: DType, perLayer: Bool = false, mutable: Bool = false) {
        self.name = name; self.shape = shape; self.dtype = dtype; self.perLayer = perLayer; self.mutable = mutable
    }

    /// The shape one iteration sees (without the layer axis).
    public var sliceShape: Shape { perLayer ? Array(shape.dropFirst()) : shape }
}

/// A stretch of a program: run once, or repeated `count` times (the layer loop).
public struct Stage: Sendable, Hashable {
    public var name: String
    /// The repeat count (a size such as `L`), nil for a stage that runs once.
    public var count: Dim?
    /// True when iteration `l` works on layer `count − 1 − l` (backward through the layers).
    public var reversed: Bool = false

    /// The layer a given iteration works on.
    public func layer(iteration l: Int, of n: Int) -> Int { reversed ? n - 1 - l : l }
}

/// A value threaded through a repeated stage: `initial` enters the first iteration,
/// `next` (computed in the stage) enters the following one; `loopResult` reads the last.
public struct Carry: Sendable, Hashable {
    public var stage: Int
    /// The `.carry` node through which the stage reads the value of the current iteration.
    public var entry: Int
    public var initial: Int
    public var next: Int

    public init(stage: Int, entry: Int, initial: Int, next: Int) {
        self.stage = stage; self.entry = entry; self.initial = initial; self.next = next
    }
}


/// How a program's matrix products are computed. Everything else (norms, softmax, losses,
/// gradients, the optimizer) is float32 in both.
public enum MatmulPrecision: String, Sendable, Hashable, Codable {
    /// float32 operands and accumulation (OpenBLAS `sgemm`): the default.
    case f32
    /// Mixed precision: both operands rounded to bfloat16 (nearest even) as the product packs
    /// them, products accumulated in float32 (AVX-512 BF16 `vdpbf16ps`); every tensor in
    /// memory stays float32 (the weights are the float32 master copy).
    case bf16
}

/// A named entry point: the whole IR of one program (e.g. `prefill`, `decode`, `lm_step`).
public struct Program: Sendable {
    public var name: String
    public var nodes: [Node]
    public var stages: [Stage]
    public var carries: [Carry]
    public var inputs: [TensorDecl]
    public var params: [TensorDecl]
    /// Named results: node id and declaration.
    public var outputs: [(name: String, node: Int)]
    /// How the matrix products are computed (`MatmulPrecision`); set by `lowered(precision:)`.
    public var matmulPrecision: MatmulPrecision = .f32
    /// One token per call (decode): nearly every loop is under the parallel threshold, so the
    /// emitter gives each elementwise loop a plain serial copy beside its OpenMP one instead of an
    /// OpenMP `if` clause — a parallel region turned off by `if` still costs ~1 µs of the OpenMP
    /// runtime's bookkeeping, paid by every small kernel of every token.
    public var latencyBound = false

    /// The same graph with its products in `precision`, named with the precision's suffix
    /// (`lm_step` → `lm_step_bf16`); `.f32` returns the program unchanged.
    public func lowered(precision: MatmulPrecision) -> Program {
        guard precision != .f32 else { return self }
        var p = self
        p.name += "_" + precision.rawValue
        p.matmulPrecision = precision
        return p
    }

    /// The declaration of an input or parameter by name.
    public func decl(_ name: String) -> TensorDecl? {
        inputs.first { $0.name == name } ?? params.first { $0.name == name }
    }

    /// Every symbol that appears in a declared shape or in the IR, sorted.
    public var symbols: [String] {
        var s = Set<String>()
        for d in inputs + params { for dim in d.shape { s.formUnion(dim.syms) } }
        for n in nodes {
            for dim in n.shape { s.formUnion(dim.syms) }
            switch n.op {
            case .size(let d): s.formUnion(d.syms)
            case .slice(_, let st), .writeSlice(_, let st), .attention(_, let st, _): s.formUnion(st.syms)
            default: break
            }
        }
        for st in stages { if let c = st.count { s.formUnion(c.syms) } }
        return s.sorted()
    }

    /// Users of each node.
    public func consumers() -> [[Int]] {
        var c = Array(repeating: [Int](), count: nodes.count)
        for n in nodes { for i in n.inputs { c[i].append(n.id) } }
        for carry in carries {
            c[carry.initial].append(carry.entry)
            c[carry.next].append(carry.entry)
        }
        return c
    }
}

/// A tensor dimension: a constant times a product of named symbols (`2`, `B`, `KVH*REP*HD`).
///
/// Symbols are sizes known only when a program runs (batch, sequence, model widths);
/// products cover every size a LLaMA graph needs (`dim = heads × head_dim`).
public struct Dim: Hashable, Sendable, Codable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var coeff: Int
    /// Symbol names, sorted, repeated for powers.
    public var syms: [String]

    public init(_ coeff: Int, _ syms: [String] = []) {
        self.coeff = coeff
        self.syms = coeff == 0 ? [] : syms.sorted()
    }
    public init(integerLiteral value: Int) { self.init(value) }

    /// A named runtime size.
    public static func sym(_ name: String) -> Dim { Dim(1, [name]) }

    public var isConstant: Bool { syms.isEmpty }
    /// The symbol's name when this size is exactly one symbol (`B`), else nil.
    public var symbolName: String? { coeff == 1 && syms.count == 1 ? syms[0] : nil }
    /// The constant value, when there are no symbols.
    public var constant: Int? { syms.isEmpty ? coeff : nil }

    public static func * (a: Dim, b: Dim) -> Dim { Dim(a.coeff * b.coeff, a.syms + b.syms) }

    /// `a / b` when it is exact (b's symbols are among a's and the coefficient divides).
    public func divided(by b: Dim) -> Dim? {
        guard b.coeff != 0, coeff % b.coeff == 0 else { return nil }
        var rest = syms
        for s in b.syms {
            guard let i = rest.firstIndex(of: s) else { return nil }
            rest.remove(at: i)
        }
        return Dim(coeff / b.coeff, rest)
    }

    /// The value under a binding of every symbol.
    public func evaluate(_ sizes: [String: Int]) throws -> Int {
        var v = coeff
        for s in syms {
            guard let x = sizes[s] else { throw GraphError("size '\(s)' is not bound") }
            v *= x
        }
        return v
    }

    /// C expression for this size, reading each symbol from a local `long` of the same name.
    /// Inside `Dim.$names.withValue(…)`, factors that are named sizes are written by their names
    /// (`4*B*T*D` for `8*B*HD2*KVH*REP*T` when `D = 2*HD2*KVH*REP`).
    public var cExpr: String {
        if syms.isEmpty { return "\(coeff)" }
        var rest = self, used: [String] = []
        for n in Dim.names {
            while let q = rest.divided(by: n.dim) {
                used.append(n.name)
                rest = q
            }
        }
        let prod = (rest.syms + used).joined(separator: "*")
        if prod.isEmpty { return "\(rest.coeff)" }
        return rest.coeff == 1 ? prod : "\(rest.coeff)*\(prod)"
    }

    /// The named sizes `cExpr` writes by name, largest first (set around the code that declares them).
    @TaskLocal public static var names: [NamedSize] = []

    public var description: String { cExpr }

    public static func < (a: Dim, b: Dim) -> Bool {
        a.syms == b.syms ? a.coeff < b.coeff : a.syms.lexicographicallyPrecedes(b.syms)
    }
}

/// A size derived from the symbols that emitted code declares once by name
/// (`const long D = 2*HD2*KVH*REP;`) and then writes by that name.
public struct NamedSize: Sendable, Hashable {
    public var name: String
    public var dim: Dim
    public init(_ name: String, _ dim: Dim) {
        self.name = name
        self.dim = dim
    }
}

/// A tensor shape: a list of dims, outermost first. `[]` is a scalar.
public typealias Shape = [Dim]

extension Array where Element == Dim {
    /// Product of all dims.
    public var elementCount: Dim { reduce(Dim(1)) { $0 * $1 } }
    /// C elements a tensor of this shape and `dtype` stores (values / `valuesPerElement`).
    public func storedElements(_ dtype: DType) -> Dim {
        let n = elementCount
        return dtype.valuesPerElement == 1 ? n : (n.divided(by: Dim(dtype.valuesPerElement)) ?? n)
    }
    public var shapeDescription: String { "[" + map(\.description).joined(separator: ", ") + "]" }
}

/// Element types.
public enum DType: String, Sendable, Hashable, Codable {
    /// float32; int32 (token ids, indices).
    case f32, i32
    /// Quantized weight values, read only by a quantized matmul (`GraphBuilder.quantizedMatmul`):
    /// `q8` one int8 per value (−127…127); `q4` two 4-bit values per byte, stored `q + 8` (0…15),
    /// each run of 32 values in 16 bytes — byte j holds value j in its low nibble and value
    /// j + 16 in its high nibble (GGUF's Q4_0 order).
    case q8, q4
    public var cType: String {
        switch self {
        case .f32: "float"
        case .i32: "int32_t"
        case .q8: "int8_t"
        case .q4: "uint8_t"
        }
    }
    /// Values per stored C element (2 for `q4`, else 1).
    public var valuesPerElement: Int { self == .q4 ? 2 : 1 }
    /// Whether this is a quantized weight type.
    public var isQuantized: Bool { self == .q8 || self == .q4 }
}

// Elementwise primitives with NumPy-style broadcasting, and the operators that build them.

extension GraphBuilder {
    /// A scalar constant.
    public func constant(_ v: Double, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        leaf(.constant(v), [], .f32, file, line)
    }

    /// The runtime value of a size, as a scalar.
    public func size(_ d: Dim, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        if let c = d.constant { return constant(Double(c), file: file, line: line) }
        return leaf(.size(d), [], .f32, file, line)
    }

    /// The coordinate along `axis` at every position of a tensor of `shape`.
    public func iota(_ shape: Shape, axis: Int, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard axis >= 0 && axis < shape.count else {
            fail("axis \(axis) out of range for \(shape.shapeDescription)", file, line, op: "iota")
            return constant(0)
        }
        return leaf(.iota(axis: axis), shape, .f32, file, line)
    }

    /// The shape both operands broadcast to, or nil.
    static func broadcastShape(_ a: Shape, _ b: Shape) -> Shape? {
        let n = Swift.max(a.count, b.count)
        let pa = Array(repeating: Dim(1), count: n - a.count) + a
        let pb = Array(repeating: Dim(1), count: n - b.count) + b
        var out: Shape = []
        for (x, y) in zip(pa, pb) {
            if x == y { out.append(x) } else if x == 1 { out.append(y) } else if y == 1 { out.append(x) } else { return nil }
        }
        return out
    }

    /// `t` broadcast to `shape` (leading axes added, size-1 axes expanded); views only.
    public func broadcast(_ t: Tensor, to shape: Shape, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        let s = t.shape
        if s == shape { return t }
        guard s.count <= shape.count else {
            fail("cannot broadcast \(s.shapeDescription) to \(shape.shapeDescription)", file, line, op: "expand")
            return t
        }
        var x = t
        if s.count < shape.count {
            x = reshape(x, Array(repeating: Dim(1), count: shape.count - s.count) + s, file: file, line: line)
        }
        for (d, want) in zip(x.shape, shape) where d != want && d != 1 {
            fail("cannot broadcast \(s.shapeDescription) to \(shape.shapeDescription)", file, line, op: "expand")
            return t
        }
        if x.shape == shape { return x }
        return append(.expand, [x.id], shape, x.dtype, file, line)
    }

    public func unary(_ op: UnaryOp, _ x: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        if x.dtype != .f32 { fail("\(op.rawValue) needs f32, got \(x.dtype.rawValue)", file, line, op: op.rawValue) }
        return append(.unary(op), [x.id], x.shape, .f32, file, line)
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard let s = GraphBuilder.broadcastShape(a.shape, b.shape) else {
            fail("shapes \(a.shape.shapeDescription) and \(b.shape.shapeDescription) do not broadcast", file, line, op: op.rawValue)
            return a
        }
        if a.dtype != b.dtype {
            fail("dtypes \(a.dtype.rawValue) and \(b.dtype.rawValue) differ", file, line, op: op.rawValue)
        }
        let x = broadcast(a, to: s, file: file, line: line), y = broadcast(b, to: s, file: file, line: line)
        return append(.binary(op), [x.id, y.id], s, a.dtype, file, line)
    }

    /// `c != 0 ? a : b`, broadcasting all three.
    public func select(_ c: Tensor, _ a: Tensor, _ b: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard let s1 = GraphBuilder.broadcastShape(a.shape, b.shape), let s = GraphBuilder.broadcastShape(c.shape, s1) else {
            fail("shapes \(c.shape.shapeDescription), \(a.shape.shapeDescription), \(b.shape.shapeDescription) do not broadcast", file, line, op: "select")
            return a
        }
        let ids = [c, a, b].map { broadcast($0, to: s, file: file, line: line).id }
        return append(.select, ids, s, a.dtype, file, line)
    }

    /// The same values, with no gradient flowing back through them.
    public func stopGradient(_ x: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        append(.stopGradient, [x.id], x.shape, x.dtype, file, line)
    }

    /// `computed`'s value read back from `saved`, a buffer an earlier stage filled with it
    /// (an activation kept for the backward pass): the compiler reads `saved` wherever
    /// `computed` is used instead of recomputing it; gradients flow to `computed`.
    public func reuse(_ computed: Tensor, saved: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard computed.shape == saved.shape, computed.dtype == saved.dtype else {
            fail("saved \(saved.shape.shapeDescription) does not match the value \(computed.shape.shapeDescription)", file, line, op: "reuse")
            return computed
        }
        return append(.reuse, [computed.id, saved.id], computed.shape, computed.dtype, file, line)
    }

    /// Uniform numbers in [0, 1) of `shape`, a pure function of `key` (an int32 scalar or a
    /// tensor broadcast to `shape`) and each element's flat index (`CounterRandom`): the same key
    /// gives the same numbers in every kernel and on every run, so a backward pass that rebuilds
    /// a value from it sees the forward's numbers. No gradient.
    public func uniform(key: Tensor, _ shape: Shape, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        if key.dtype != .i32 { fail("random needs an int32 key, got \(key.dtype.rawValue)", file, line, op: "random") }
        let k = broadcast(key, to: shape, file: file, line: line)
        return append(.random, [k.id], shape, .f32, file, line)
    }

    public func cast(_ x: Tensor, to dtype: DType, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        if x.dtype == dtype { return x }
        return append(.cast(dtype), [x.id], x.shape, dtype, file, line)
    }
}

// MARK: Operators

public func + (a: Tensor, b: Tensor) -> Tensor { a.builder.binary(.add, a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { a.builder.binary(.sub, a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { a.builder.binary(.mul, a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { a.builder.binary(.div, a, b) }
public func + (a: Tensor, b: Double) -> Tensor { a + a.builder.constant(b) }
public func - (a: Tensor, b: Double) -> Tensor { a - a.builder.constant(b) }
public func * (a: Tensor, b: Double) -> Tensor { a * a.builder.constant(b) }
public func / (a: Tensor, b: Double) -> Tensor { a / a.builder.constant(b) }
public func + (a: Double, b: Tensor) -> Tensor { b.builder.constant(a) + b }
public func - (a: Double, b: Tensor) -> Tensor { b.builder.constant(a) - b }
public func * (a: Double, b: Tensor) -> Tensor { b.builder.constant(a) * b }
public func / (a: Double, b: Tensor) -> Tensor { b.builder.constant(a) / b }
public prefix func - (a: Tensor) -> Tensor { a.builder.unary(.neg, a) }

extension Tensor {
    public func exp() -> Tensor { builder.unary(.exp, self) }
    public func log() -> Tensor { builder.unary(.log, self) }
    public func sqrt() -> Tensor { builder.unary(.sqrt, self) }
    public func rsqrt() -> Tensor { builder.unary(.rsqrt, self) }
    public func reciprocal() -> Tensor { builder.unary(.recip, self) }
    public func sin() -> Tensor { builder.unary(.sin, self) }
    public func cos() -> Tensor { builder.unary(.cos, self) }
    public func tanh() -> Tensor { builder.unary(.tanh, self) }
    public func abs() -> Tensor { builder.unary(.abs, self) }
    public func squared() -> Tensor { self * self }
    public func pow(_ e: Tensor) -> Tensor { builder.binary(.pow, self, e) }
    public func maximum(_ o: Tensor) -> Tensor { builder.binary(.max, self, o) }
    public func minimum(_ o: Tensor) -> Tensor { builder.binary(.min, self, o) }
    public func maximum(_ o: Double) -> Tensor { builder.binary(.max, self, builder.constant(o)) }
    public func minimum(_ o: Double) -> Tensor { builder.binary(.min, self, builder.constant(o)) }
    /// 1 where `self < o`, else 0.
    public func lt(_ o: Tensor) -> Tensor { builder.binary(.cmplt, self, o) }
    /// 1 where `self <= o`, else 0.
    public func le(_ o: Tensor) -> Tensor { builder.binary(.cmple, self, o) }
    /// 1 where `self == o`, else 0.
    public func eq(_ o: Tensor) -> Tensor { builder.binary(.cmpeq, self, o) }
    public func cast(_ d: DType) -> Tensor { builder.cast(self, to: d) }
}

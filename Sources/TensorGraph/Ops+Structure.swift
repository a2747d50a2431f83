// Reductions, movement views, contractions and indexing.

extension GraphBuilder {
    /// Reduces over `axis` (negative counts from the end), keeping it as size 1 unless `keepDims` is false.
    public func reduce(_ op: ReduceOp, _ x: Tensor, axis: Int = -1, keepDims: Bool = true,
                       file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        let r = x.rank
        let a = axis < 0 ? axis + r : axis
        guard a >= 0 && a < r else {
            fail("axis \(axis) out of range for \(x.shape.shapeDescription)", file, line, op: "reduce_\(op.rawValue)")
            return x
        }
        var order = Array(0..<r)
        order.remove(at: a); order.append(a)
        let moved = a == r - 1 ? x : permute(x, order, file: file, line: line)
        var s = moved.shape; s[r - 1] = 1
        var out = append(.reduce(op), [moved.id], s, x.dtype, file, line)
        if a != r - 1 {
            var back = Array(0..<(r - 1)); back.insert(r - 1, at: a)
            out = permute(out, back, file: file, line: line)
        }
        if !keepDims {
            var s2 = out.shape; s2.remove(at: a)
            out = reshape(out, s2, file: file, line: line)
        }
        return out
    }

    public func reshape(_ x: Tensor, _ shape: Shape, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        if x.shape == shape { return x }
        guard x.shape.elementCount == shape.elementCount else {
            fail("cannot reshape \(x.shape.shapeDescription) (\(x.shape.elementCount) elements) to \(shape.shapeDescription) (\(shape.elementCount) elements)", file, line, op: "reshape")
            return x
        }
        return append(.reshape, [x.id], shape, x.dtype, file, line)
    }

    public func permute(_ x: Tensor, _ order: [Int], file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard order.sorted() == Array(0..<x.rank) else {
            fail("order \(order) is not a permutation of \(x.rank) axes", file, line, op: "permute")
            return x
        }
        if order == Array(0..<x.rank) { return x }
        return append(.permute(order), [x.id], order.map { x.shape[$0] }, x.dtype, file, line)
    }

    /// `length` elements from `start` along `axis` (a view).
    public func slice(_ x: Tensor, axis: Int, start: Dim, length: Dim, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0 && a < x.rank else {
            fail("axis \(axis) out of range for \(x.shape.shapeDescription)", file, line, op: "slice")
            return x
        }
        if let s = start.constant, let l = length.constant, let n = x.shape[a].constant, s + l > n || s < 0 {
            fail("slice \(s)..<\(s + l) out of range for axis \(a) of \(x.shape.shapeDescription)", file, line, op: "slice")
            return x
        }
        var shape = x.shape; shape[a] = length
        return append(.slice(axis: a, start: start), [x.id], shape, x.dtype, file, line)
    }

    /// Concatenation along `axis`. Lengths along it add up when they are multiples of the same
    /// symbols; two parts of different symbolic lengths (`P` prefix positions then `T` tokens)
    /// need `size`, the symbol the caller binds to their sum (`S` = P + T).
    public func concat(_ xs: [Tensor], axis: Int, size: Dim? = nil, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard let first = xs.first else {
            fail("needs at least one tensor", file, line, op: "concat")
            return constant(0)
        }
        let a = axis < 0 ? axis + first.rank : axis
        var total = Dim(0)
        var sumSyms = true
        for x in xs {
            var s1 = x.shape, s0 = first.shape
            guard s1.count == s0.count, a >= 0, a < s0.count else {
                fail("ranks differ or axis out of range", file, line, op: "concat"); return first
            }
            s1[a] = 1; s0[a] = 1
            if s1 != s0 { fail("shapes \(first.shape.shapeDescription) and \(x.shape.shapeDescription) differ off axis \(a)", file, line, op: "concat"); return first }
            if total == 0 { total = x.shape[a] } else if total.syms == x.shape[a].syms { total = Dim(total.coeff + x.shape[a].coeff, total.syms) } else { sumSyms = false }
        }
        if let size {
            guard xs.count == 2 else { fail("an explicit size concatenates exactly two parts", file, line, op: "concat"); return first }
            total = size
        } else if !sumSyms {
            fail("concat of differently-sized symbolic axes needs the sum's size (size:)", file, line, op: "concat")
            return first
        }
        var shape = first.shape; shape[a] = total
        return append(.concat(axis: a), xs.map(\.id), shape, first.dtype, file, line)
    }

    /// Batched matrix product over the last two axes; batch axes must match exactly.
    public func matmul(_ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false,
                       file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        let sa = a.shape, sb = b.shape
        guard sa.count >= 2, sb.count == sa.count else {
            fail("needs equal ranks ≥ 2, got \(sa.shapeDescription) and \(sb.shapeDescription)", file, line, op: "matmul")
            return a
        }
        let r = sa.count
        let (m, ka) = transA ? (sa[r - 1], sa[r - 2]) : (sa[r - 2], sa[r - 1])
        let (kb, n) = transB ? (sb[r - 1], sb[r - 2]) : (sb[r - 2], sb[r - 1])
        guard ka == kb, Array(sa.prefix(r - 2)) == Array(sb.prefix(r - 2)) else {
            fail("shapes \(sa.shapeDescription)\(transA ? "ᵀ" : "") and \(sb.shapeDescription)\(transB ? "ᵀ" : "") do not contract", file, line, op: "matmul")
            return a
        }
        return append(.matmul(transA: transA, transB: transB), [a.id, b.id], Array(sa.prefix(r - 2)) + [m, n], .f32, file, line)
    }

    /// Rows of `table` ([V, D]) picked by int32 `ids` ([...]) → [..., D].
    public func gather(_ table: Tensor, _ ids: Tensor, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard table.rank == 2, ids.dtype == .i32 else {
            fail("needs a [V, D] table and int32 ids, got \(table.shape.shapeDescription) and \(ids.dtype.rawValue) ids", file, line, op: "gather")
            return table
        }
        return append(.gather, [table.id, ids.id], ids.shape + [table.shape[1]], .f32, file, line)
    }

    /// Sums rows of `src` ([..., D]) into a [rows, D] result at `ids` ([...]): the gradient of `gather`.
    public func scatterAdd(_ src: Tensor, _ ids: Tensor, rows: Dim, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard ids.dtype == .i32, src.rank == ids.rank + 1, Array(src.shape.dropLast()) == ids.shape else {
            fail("needs src [..., D] and int32 ids [...], got \(src.shape.shapeDescription) and \(ids.shape.shapeDescription)", file, line, op: "scatter_add")
            return src
        }
        return append(.scatterAdd, [src.id, ids.id], [rows, src.shape[src.rank - 1]], .f32, file, line)
    }

    /// Writes `value` into the mutable input `target` at `start` along `axis`; returns the updated target.
    @discardableResult
    public func writeSlice(_ target: Tensor, _ value: Tensor, axis: Int, start: Dim,
                           file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        var s = value.shape
        guard s.count == target.rank, axis >= 0, axis < s.count else {
            fail("ranks of \(target.shape.shapeDescription) and \(value.shape.shapeDescription) differ", file, line, op: "write_slice")
            return target
        }
        s[axis] = target.shape[axis]
        if s != target.shape {
            fail("value \(value.shape.shapeDescription) does not fit target \(target.shape.shapeDescription) off axis \(axis)", file, line, op: "write_slice")
        }
        if case .input(let name) = nodes[target.id].op, inputs.first(where: { $0.name == name })?.mutable == true {} else {
            fail("target must be a program input declared mutable", file, line, op: "write_slice")
        }
        return append(.writeSlice(axis: axis, start: start), [target.id, value.id], target.shape, target.dtype, file, line)
    }
}

extension Tensor {
    public func sum(axis: Int = -1, keepDims: Bool = true, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.reduce(.sum, self, axis: axis, keepDims: keepDims, file: file, line: line)
    }
    public func max(axis: Int = -1, keepDims: Bool = true, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.reduce(.max, self, axis: axis, keepDims: keepDims, file: file, line: line)
    }
    public func mean(axis: Int = -1, keepDims: Bool = true, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        return sum(axis: axis, keepDims: keepDims, file: file, line: line) / builder.size(shape[a], file: file, line: line)
    }
    public func reshape(_ s: Shape, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.reshape(self, s, file: file, line: line)
    }
    public func permute(_ order: [Int], file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.permute(self, order, file: file, line: line)
    }
    public func transposed(_ a: Int, _ b: Int, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        var o = Array(0..<rank); o.swapAt(a < 0 ? a + rank : a, b < 0 ? b + rank : b)
        return builder.permute(self, o, file: file, line: line)
    }
    public func expand(_ s: Shape, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.broadcast(self, to: s, file: file, line: line)
    }
    public func slice(axis: Int, start: Dim, length: Dim, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.slice(self, axis: axis, start: start, length: length, file: file, line: line)
    }
    public func matmul(_ o: Tensor, transA: Bool = false, transB: Bool = false, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        builder.matmul(self, o, transA: transA, transB: transB, file: file, line: line)
    }
}

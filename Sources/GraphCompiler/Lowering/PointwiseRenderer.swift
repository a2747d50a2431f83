import Foundation
import TensorGraph

/// Thrown while rendering when a value cannot be computed inside the kernel at hand;
/// the compiler materializes `node` and plans again.
struct NeedsRealization: Error { let node: Int }

/// Renders the body of a pointwise kernel: a loop over rows (all axes but the last, in
/// parallel) with, per row, the loops of any absorbed reductions, then the inner loop that
/// computes and stores the root. Values become one named local per (node, index).
struct PointwiseRenderer {
    let plan: FusionPlan
    /// Maps a realized node to the C name of its buffer inside the kernel.
    let buffer: (Int) -> String
    let rowShape: Shape
    /// Outer coordinates (`i0`, `i1`, …) of the current row.
    let rowVars: [String]
    /// The node this kernel computes (never loaded from its own buffer).
    var root: Int?
    /// Other values this kernel computes and stores in the same loop (a group of small
    /// loops): computed where read, never loaded.
    var alsoComputed: Set<Int> = []
    /// The kernel's output buffer, when its rows are free scratch until the final loop stores
    /// them: the first exp/log a row reduction evaluates is kept there, so the final loop (and
    /// later reductions) load it instead of evaluating it again (softmax's exp).
    var stashBuffer: String?
    private var stashed: Int?

    private(set) var rowBlock: [String] = []
    private var rowMemo: [String: String] = [:]
    private var innerMemo: [String: String] = [:]
    private var innerBlock: [String] = []
    private var innerVar: String?
    private var counter = 0
    private var reductionCount = 0

    init(plan: FusionPlan, rowShape: Shape, buffer: @escaping (Int) -> String) {
        self.plan = plan
        self.rowShape = rowShape
        self.buffer = buffer
        self.rowVars = (0..<max(rowShape.count - 1, 0)).map { "i\($0)" }
    }

    var rowCount: Dim { Array(rowShape.dropLast()).elementCount }
    var width: Dim { rowShape.last ?? 1 }

    /// The index of element `j` of the current row.
    func elementIndex(_ j: String) -> [String] { rowShape.isEmpty ? [] : rowVars + [j] }

    /// C lines that set `i0…` from the flat row number `r`.
    /// The row index's coordinates that `body` reads (`const long i0 = r / (T);`); unread ones
    /// are not declared.
    func unravelRow(for body: [String]) -> [String] {
        let outer = Array(rowShape.dropLast())
        let used = ProgramEmitter.identifiers(in: body)
        var lines: [String] = []
        for k in outer.indices where used.contains(rowVars[k]) {
            if outer[k] == 1 { lines.append("const long \(rowVars[k]) = 0;"); continue }
            let inner = Array(outer[(k + 1)...]).elementCount
            var e = inner == 1 ? "r" : "r / (\(inner.cExpr))"
            if k > 0 { e = "(\(e)) % \(paren(outer[k].cExpr))" }
            lines.append("const long \(rowVars[k]) = \(e);")
        }
        return lines
    }

    // MARK: Loops

    /// Renders the inner loop `for (j …) { …; store(value) }` into the row block.
    mutating func innerLoop(_ store: @escaping (String, String) -> String, value id: Int, index: ((String) -> [String])? = nil) throws {
        try innerLoop([(store, id)], index: index)
    }

    /// One inner loop that computes and stores several values (sharing what they share).
    mutating func innerLoop(_ stores: [((String, String) -> String, Int)], index: ((String) -> [String])? = nil) throws {
        let j = "j"
        let saved = (innerBlock, innerMemo, innerVar)
        innerBlock = []; innerMemo = [:]; innerVar = j
        let idx = index?(j) ?? elementIndex(j)
        for (store, id) in stores {
            // Row reductions first, so a value they stash is there for the final loop.
            if stashBuffer != nil { try reductionsFirst(id) }
            let v = try value(id, idx)
            innerBlock.append(store(v, j))
        }
        let body = innerBlock
        (innerBlock, innerMemo, innerVar) = saved
        if rowShape.isEmpty {
            rowBlock += body
        } else {
            rowBlock.append("for (long \(j) = 0; \(j) < n; \(j)++) {")
            rowBlock += body.map { "    " + $0 }
            rowBlock.append("}")
        }
    }

    /// Renders the row reductions `id` depends on inside this kernel, in program order.
    private mutating func reductionsFirst(_ id: Int) throws {
        var found: [Int] = [], seen = Set<Int>(), stack = [id]
        while let x = stack.popLast() {
            guard seen.insert(x).inserted else { continue }
            if x != root && !alsoComputed.contains(x) && (plan.realized.contains(x) || plan.isBufferLeaf(x)) { continue }
            let n = plan.node(x)
            if case .reduce = n.op, x != root, plan.node(n.inputs[0]).shape == rowShape { found.append(x); continue }
            stack += n.inputs
        }
        for r in found.sorted() { _ = try rowReduction(r) }
    }

    /// The per-row result of reducing node `id` (a reduction), computed once per row.
    mutating func rowReduction(_ id: Int) throws -> String {
        let n = plan.node(id)
        guard case .reduce(let op) = n.op else { throw NeedsRealization(node: id) }
        let key = "\(id)|row"
        if let v = rowMemo[key] { return v }
        let acc = "acc\(reductionCount)", j = "j\(reductionCount)"
        reductionCount += 1
        let saved = (innerBlock, innerMemo, innerVar)
        innerBlock = []; innerMemo = [:]; innerVar = j
        let x = try value(n.inputs[0], rowVars + [j])
        // fmaxf (not a ternary) is what the vectorizer recognizes as a max reduction.
        let combine = op == .sum ? "\(acc) += \(x);" : "\(acc) = fmaxf(\(acc), \(x));"
        innerBlock.append(combine)
        let body = innerBlock
        (innerBlock, innerMemo, innerVar) = saved
        rowBlock.append("float \(acc) = \(op == .sum ? "0.0f" : "-INFINITY");")
        // SIMD lanes keep partial results (a fixed, deterministic order for a given build).
        rowBlock.append("#pragma omp simd reduction(\(op == .sum ? "+" : "max"):\(acc))")
        rowBlock.append("for (long \(j) = 0; \(j) < n; \(j)++) {")
        rowBlock += body.map { "    " + $0 }
        rowBlock.append("}")
        rowMemo[key] = acc
        return acc
    }

    // MARK: Values

    /// The C expression (usually a local) for node `id` at coordinates `idx`.
    mutating func value(_ id: Int, _ idx: [String]) throws -> String {
        let n = plan.node(id)
        if id != root && !alsoComputed.contains(id) && (plan.realized.contains(id) || plan.isBufferLeaf(id)) {
            return "\(buffer(id))[\(linear(idx, n.shape))]"
        }
        switch n.op {
        case .constant(let v): return cLiteral(v)
        case .size(let d): return "(float)(\(d.cExpr))"
        case .iota(let axis): return "(float)\(idx[axis])"
        case .permute(let order):
            var inner = Array(repeating: "0", count: idx.count)
            for (k, o) in order.enumerated() { inner[o] = idx[k] }
            return try value(n.inputs[0], inner)
        case .expand:
            let src = plan.node(n.inputs[0]).shape
            let inner = idx.enumerated().map { k, e in src[k] == 1 && n.shape[k] != 1 ? "0" : e }
            return try value(n.inputs[0], inner)
        case .slice(let axis, let start):
            var inner = idx
            inner[axis] = start == 0 ? idx[axis] : idx[axis] == "0" ? start.cExpr : "\(idx[axis]) + \(paren(start.cExpr))"
            return try value(n.inputs[0], inner)
        case .reshape:
            // A reshape keeps row-major order: over a buffer, the offset is the same.
            let src = n.inputs[0]
            if src != root && (plan.realized.contains(src) || plan.isBufferLeaf(src)) {
                return "\(buffer(src))[\(linear(idx, n.shape))]"
            }
            return try value(src, reshapeIndex(idx, from: n.shape, to: plan.node(src).shape))
        case .reduce:
            // Absorbed: only legal at the row's own coordinates with the reduced axis at 0.
            guard idx == rowVars + ["0"] else { throw NeedsRealization(node: id) }
            return try rowReduction(id)
        default:
            break
        }
        let key = "\(id)|" + idx.joined(separator: ",")
        let local = mentionsInner(idx)
        if local, let v = innerMemo[key] { return v }
        if !local, let v = rowMemo[key] { return v }
        let atRowElement = local && idx == elementIndex(innerVar ?? "") && n.shape == rowShape
        if let out = stashBuffer, stashed == id, atRowElement {
            innerMemo[key] = "\(out)[\(linear(idx, rowShape))]"
            return innerMemo[key] ?? ""
        }
        let expr: String
        switch n.op {
        case .unary(let u):
            expr = unaryExpr(u, try value(n.inputs[0], idx))
        case .binary(let b):
            let x = try value(n.inputs[0], idx), y = try value(n.inputs[1], idx)
            expr = binaryExpr(b, x, y)
        case .select:
            let c = try value(n.inputs[0], idx), a = try value(n.inputs[1], idx), b = try value(n.inputs[2], idx)
            expr = "\(c) != 0.0f ? \(a) : \(b)"
        case .cast(let t):
            expr = "(\(t.cType))\(try value(n.inputs[0], idx))"
        case .stopGradient:
            expr = try value(n.inputs[0], idx)
        case .random:
            expr = "la_uniform((uint32_t)(\(try value(n.inputs[0], idx))), \(linear(idx, n.shape)))"
        case .gather:
            let ids = try value(n.inputs[1], Array(idx.dropLast()))
            let d = n.shape[n.shape.count - 1]
            expr = "\(buffer(plan.gatherTable(n.inputs[0]) ?? n.inputs[0]))[(long)\(ids) * \(paren(d.cExpr)) + \(idx[idx.count - 1])]"
        case .concat(let axis):
            return try concat(n, axis, idx, key: key, local: local)
        default:
            throw NeedsRealization(node: id)
        }
        let name = "v\(counter)"
        counter += 1
        emit("\(n.dtype.cType) \(name) = \(expr);", local: local)
        if local { innerMemo[key] = name } else { rowMemo[key] = name }
        if let out = stashBuffer, stashed == nil, atRowElement, innerVar != "j", n.dtype == .f32,
           case .unary(let u) = n.op, u == .exp || u == .log || u == .tanh || u == .sin || u == .cos {
            emit("\(out)[\(linear(idx, rowShape))] = \(name);", local: true)
            stashed = id
        }
        return name
    }

    /// Concatenation: each input is computed only on its own range of the axis.
    private mutating func concat(_ n: Node, _ axis: Int, _ idx: [String], key: String, local: Bool) throws -> String {
        let name = "v\(counter)"
        counter += 1
        emit("\(n.dtype.cType) \(name);", local: local)
        var offset: [Dim] = []
        for (k, input) in n.inputs.enumerated() {
            let len = plan.node(input).shape[axis]
            var sub = idx
            if !offset.isEmpty { sub[axis] = "\(idx[axis]) - \(paren(offset.sumExpr))" }
            let savedInner = (innerBlock, innerMemo), savedRow = (rowBlock, rowMemo)
            if local { innerBlock = []; } else { rowBlock = [] }
            let v = try value(input, sub)
            let body = (local ? innerBlock : rowBlock) + ["\(name) = \(v);"]
            if local { (innerBlock, innerMemo) = savedInner } else { (rowBlock, rowMemo) = savedRow }
            let upper = offset + [len]
            let cond = k == n.inputs.count - 1 ? "" : "if (\(idx[axis]) < \(paren(upper.sumExpr)))"
            let head = k == 0 ? "\(cond) {" : (cond.isEmpty ? "else {" : "else \(cond) {")
            emit(head, local: local)
            for line in body { emit("    " + line, local: local) }
            emit("}", local: local)
            offset = upper
        }
        if local { innerMemo[key] = name } else { rowMemo[key] = name }
        return name
    }

    private mutating func emit(_ line: String, local: Bool) {
        if local { innerBlock.append(line) } else { rowBlock.append(line) }
    }

    private func mentionsInner(_ idx: [String]) -> Bool {
        guard let v = innerVar else { return false }
        return idx.contains { e in e.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).contains { $0 == v } }
    }

    // MARK: Index arithmetic

    /// Row-major offset of `idx` in a contiguous buffer of `shape`.
    func linear(_ idx: [String], _ shape: Shape) -> String {
        if shape == rowShape && !shape.isEmpty && idx == elementIndex(idx.last ?? "") && idx.last != "0" {
            return rowCount == 1 ? idx[idx.count - 1] : "r * n + \(idx[idx.count - 1])"
        }
        var e = ""
        for (k, d) in shape.enumerated() {
            if e.isEmpty {
                e = idx[k] == "0" ? "" : idx[k]
            } else if d != 1 {
                e = "(\(e)) * \(paren(d.cExpr))" + (idx[k] == "0" ? "" : " + \(idx[k])")
            }
            if e.isEmpty && k == shape.count - 1 { e = "0" }
        }
        return e.isEmpty ? "0" : e
    }

    /// Coordinates in `to` of the element at `idx` of `from` (same element count).
    func reshapeIndex(_ idx: [String], from: Shape, to: Shape) -> [String] {
        // Keep matching leading and trailing dims as they are; linearize the middle.
        var lead = 0
        while lead < min(from.count, to.count) && from[lead] == to[lead] { lead += 1 }
        var trail = 0
        while trail < min(from.count, to.count) - lead && from[from.count - 1 - trail] == to[to.count - 1 - trail] { trail += 1 }
        let midFrom = Array(from[lead..<(from.count - trail)]), midTo = Array(to[lead..<(to.count - trail)])
        let midIdx = Array(idx[lead..<(idx.count - trail)])
        var out = Array(idx[0..<lead])
        if !midTo.isEmpty {
            let flat = linear(midIdx.isEmpty ? ["0"] : midIdx, midFrom.isEmpty ? [1] : midFrom)
            for k in midTo.indices {
                if midTo[k] == 1 { out.append("0"); continue }
                let inner = Array(midTo[(k + 1)...]).elementCount
                var e = inner == 1 ? paren(flat) : "\(paren(flat)) / \(paren(inner.cExpr))"
                if k > 0 || midFrom.elementCount != midTo.elementCount { e = "(\(e)) % \(paren(midTo[k].cExpr))" }
                out.append(midTo.count == 1 ? flat : e)
            }
        }
        out += idx[(idx.count - trail)...]
        return out
    }
}

/// Wraps a C expression in parentheses unless it is a plain name or number.
func paren(_ e: String) -> String {
    e.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." } ? e : "(\(e))"
}

/// A float literal that C reads back exactly.
func cLiteral(_ v: Double) -> String {
    if v == .infinity { return "INFINITY" }
    if v == -.infinity { return "(-INFINITY)" }
    if v.isNaN { return "NAN" }
    let f = Float(v)
    if f == f.rounded(), Swift.abs(f) < 1e7 { return String(format: "%.1ff", f) }
    let s = String(format: "%.9g", f)
    return (s.contains(".") || s.contains("e") ? s : s + ".0") + "f"
}

func unaryExpr(_ u: UnaryOp, _ x: String) -> String {
    switch u {
    case .neg: "-\(paren(x))"
    case .exp: "la_expf(\(x))"
    case .log: "logf(\(x))"
    case .sqrt: "sqrtf(\(x))"
    case .rsqrt: "1.0f / sqrtf(\(x))"
    case .recip: "1.0f / \(paren(x))"
    case .sin: "sinf(\(x))"
    case .cos: "cosf(\(x))"
    case .tanh: "tanhf(\(x))"
    case .abs: "fabsf(\(x))"
    }
}

func binaryExpr(_ b: BinaryOp, _ x: String, _ y: String) -> String {
    switch b {
    case .add: "\(x) + \(y)"
    case .sub: "\(x) - \(paren(y))"
    case .mul: "\(paren(x)) * \(paren(y))"
    case .div: "\(paren(x)) / \(paren(y))"
    case .max: "fmaxf(\(x), \(y))"
    case .min: "fminf(\(x), \(y))"
    case .pow: "powf(\(x), \(y))"
    case .cmplt: "\(x) < \(y) ? 1.0f : 0.0f"
    case .cmple: "\(x) <= \(y) ? 1.0f : 0.0f"
    case .cmpeq: "\(x) == \(y) ? 1.0f : 0.0f"
    }
}

import TensorGraph

// The passes that keep the fused program free of copies and of stored values it can
// recompute cheaply; `decide()` runs them.
extension FusionPlan {
    /// A forward layer loop that saves its carry into a per-layer input (`saved_x[l] = x`)
    /// keeps the carry in that slot instead: iteration `l` writes its next value straight into
    /// slot `l + 1`, the value entering the loop is computed into slot 0, and the copy is gone.
    mutating func keepCarriesInSavedSlots() {
        for n in program.nodes {
            guard case .writeSlice(let axis, let start) = n.op, axis == 0, start == 0,
                  case .input(let name) = node(n.inputs[0]).op, let decl = program.decl(name), decl.perLayer,
                  case .carry(let k) = node(n.inputs[1]).op, node(n.inputs[0]).shape == node(n.inputs[1]).shape else { continue }
            let carry = program.carries[k], stage = program.stages[carry.stage]
            guard stage.count != nil, !stage.reversed, carry.stage == n.stage, savedSlotCarries[k] == nil,
                  carry.initial == initialValue(carry),
                  !isBufferLeaf(carry.initial), storage[carry.initial] == nil, node(carry.initial).stage < carry.stage,
                  consumers[carry.initial].allSatisfy({ $0 == carry.entry || node($0).stage < carry.stage }) else { continue }
            savedSlotCarries[k] = name
            storage[carry.initial] = .external(ProgramEmitter.firstSlotName(name))
            realized.remove(n.id)
        }
    }

    /// For an elementwise value cheap enough to recompute in every kernel that reads it (at
    /// most `maxRecomputedOps` elementwise ops over stored values, views, constants and
    /// iotas, none read from a buffer its stage writes): the reductions it depends on.
    /// Nil when it should be stored. A `small` value (see `isSmall`) has no op limit: its
    /// readers loop over a few elements, where recomputing beats a kernel of its own.
    func recomputeCone(_ i: Int, readers: Int, small: Bool = false) -> Set<Int>? {
        guard node(i).op.isElementwise else { return nil }
        var reductions = Set<Int>(), seen = Set<Int>(), stack = [i], ops = 0, transcendental = 0
        while let x = stack.popLast() {
            guard seen.insert(x).inserted else { continue }
            let n = node(x)
            // A buffer this stage writes could change before a reader recomputes from it.
            if case .input(let name) = n.op, writtenInputs[n.stage]?.contains(name) == true { return nil }
            if x != i && (realized.contains(x) || n.op.isLeaf) { continue }
            if n.op.isReduction { reductions.insert(x); continue }
            if n.op.isView { stack += n.inputs; continue }
            guard n.op.isElementwise else { return nil }
            ops += 1
            if case .unary(let u) = n.op, u != .neg, u != .abs { transcendental += 1 }
            // An exp or log evaluated again costs about what storing and loading a float does:
            // worth it for two readers (a sum and a gradient), not for more.
            if !small && (ops > FusionPlan.maxRecomputedOps || (transcendental > 0 && readers > 2)) { return nil }
            stack += n.inputs
        }
        return reductions
    }

    /// The largest elementwise expression recomputed by each reader rather than stored.
    static let maxRecomputedOps = 8

    /// `target ← f(target, …)` over the whole target, where f's value is materialized anyway
    /// (it has other readers): the value is computed in place into the target and the write
    /// kernel goes. Only when every reader of the old value is an elementwise op, at the same
    /// index, inside the value's own kernel.
    mutating func writeInPlace() {
        for w in program.nodes {
            guard case .writeSlice(_, let start) = w.op, start == 0, realized.contains(w.id), accumulatingMatmul[w.id] == nil,
                  consumers[w.id].isEmpty else { continue }
            let (t, v) = (w.inputs[0], w.inputs[1])
            let value = node(v)
            guard case .input = node(t).op, node(t).shape == value.shape, realized.contains(v), storage[v] == nil,
                  value.stage == w.stage, value.op.isElementwise else { continue }
            var stack = consumers[t].filter { $0 != w.id }, seen = Set<Int>(), ok = true
            while ok, let c = stack.popLast() {
                guard c != v, seen.insert(c).inserted else { continue }
                let n = node(c)
                ok = n.op.isElementwise && n.shape == value.shape && !realized.contains(c) && n.stage == w.stage
                stack += consumers[c]
            }
            guard ok else { continue }
            storage[v] = storage[t]
            realized.remove(w.id)
        }
    }

    /// For a realized chain of reshapes, permutes and sums over the last axis that ends in a
    /// matmul, each link read by nothing else: the matmul, where each of its elements lands in
    /// the root's buffer (a summed axis gets stride 0), and the links in between. Nil unless
    /// BLAS can write it that way: unit column stride, every batch axis strided.
    func matmulUnderViews(_ root: Int) -> (matmul: Int, view: StridedView, links: [Int])? {
        let x = node(root)
        var view = StridedView.contiguous(base: root, shape: x.shape)
        var cur = root
        var links: [Int] = []
        if case .writeSlice(let axis, let start) = x.op {
            // The matmul lands in the written slice of the target.
            let value = x.inputs[1]
            guard accumulatingMatmul[root] == nil, !node(value).op.isLeaf,
                  let v = view.applying(.slice(axis: axis, start: start), to: node(value).shape) else { return nil }
            view = v
            cur = value
        } else {
            guard x.op.isView || x.op == .reduce(.sum) else { return nil }
        }
        while true {
            let n = node(cur)
            if cur != root {
                guard consumers[cur].count == 1, n.stage == x.stage, storage[cur] == nil else { return nil }
                if case .matmul = n.op {
                    let r = view.shape.count
                    guard r >= 2, !accumulatingMatmul.values.contains(cur),
                          view.strides[r - 1] == Dim(1) || view.shape[r - 1] == 1,
                          view.strides[r - 2] != Dim(0) || view.shape[r - 2] == 1 else { return nil }
                    return (cur, view, links)
                }
                links.append(cur)
            }
            let inShape = node(n.inputs.first ?? cur).shape
            switch n.op {
            case .reduce(.sum):
                // Every element of the summed row lands on the row's one result.
                view = StridedView(base: root, shape: inShape, strides: Array(view.strides.dropLast()) + [Dim(0)], offset: view.offset)
            case .permute(let order):
                var inner = view.strides
                for (k, o) in order.enumerated() { inner[o] = view.strides[k] }
                view = StridedView(base: root, shape: inShape, strides: inner, offset: view.offset)
            case .reshape:
                guard let v = view.reshaped(inShape) else { return nil }
                view = v
            default:
                return nil
            }
            cur = n.inputs[0]
        }
    }

    /// For `writeSlice(t, t + x)` over the whole of `t` where `x` is a matmul or a scatter read
    /// only there: `x`, which the write's kernel then computes straight into `t`.
    func accumulated(_ w: Node) -> Int? {
        guard case .writeSlice(_, let start) = w.op, start == 0 else { return nil }
        let (target, value) = (w.inputs[0], w.inputs[1])
        let v = node(value)
        guard node(target).shape == v.shape, case .binary(.add) = v.op, consumers[value].count == 1 else { return nil }
        let other = v.inputs[0] == target ? v.inputs[1] : (v.inputs[1] == target ? v.inputs[0] : -1)
        guard other >= 0, consumers[other].count == 1, node(other).stage == w.stage else { return nil }
        switch node(other).op {
        case .matmul, .scatterAdd: return other
        default: return nil
        }
    }

    /// The node whose buffer a carry starts from: its initial value, or the computed value
    /// under it when the initial value only reshapes it (read by nothing else) — the carry then
    /// starts from that buffer and no kernel copies it.
    func initialValue(_ c: Carry) -> Int {
        var x = c.initial
        while case .reshape = node(x).op, let inner = node(x).inputs.first, !node(inner).op.isLeaf, consumers[inner].count == 1,
              consumers[x].allSatisfy({ $0 == c.entry }) {
            x = inner
        }
        return x
    }

    /// A gather's table: the node itself, or the buffer under a chain of reshapes (the rows
    /// keep their offsets).
    func gatherTable(_ t: Int) -> Int? {
        var x = t
        while !(realized.contains(x) || isBufferLeaf(x)) {
            guard case .reshape = node(x).op else { return nil }
            x = node(x).inputs[0]
        }
        return x
    }
}

import TensorGraph

/// Graph clean-up before fusion: dead-code elimination, common-subexpression elimination
/// and view folding (reshape of reshape, permute of permute). Keeps node order topological.
public enum Simplify {
    public static func run(_ p: Program) -> Program {
        var q = substituteReused(p)
        q = foldViews(q)
        q = eliminateCommonSubexpressions(q)
        return eliminateDeadCode(q)
    }

    /// `reuse(c, s)`: every use of `c` (and of the reuse) reads the saved buffer `s` instead,
    /// so `c` is not recomputed (it dies unless something else needs its inputs). `s` must
    /// precede `c`'s readers in program order (a leaf declared before the recomputed value).
    static func substituteReused(_ p: Program) -> Program {
        var q = p
        var replace = Array(q.nodes.indices)
        for n in q.nodes {
            guard case .reuse = n.op else { continue }
            let (c, s) = (n.inputs[0], n.inputs[1])
            replace[c] = s
            replace[n.id] = s
        }
        guard replace.enumerated().contains(where: { $0.offset != $0.element }) else { return p }
        for i in q.nodes.indices {
            if case .reuse = q.nodes[i].op { continue }
            q.nodes[i].inputs = q.nodes[i].inputs.map { replace[$0] }
        }
        for k in q.carries.indices {
            q.carries[k].initial = replace[q.carries[k].initial]
            q.carries[k].next = replace[q.carries[k].next]
        }
        q.outputs = q.outputs.map { ($0.name, replace[$0.node]) }
        return q
    }

    /// Collapses chains of reshapes and of permutes into one view.
    static func foldViews(_ p: Program) -> Program {
        var q = p
        for i in q.nodes.indices {
            let n = q.nodes[i]
            guard let src = n.inputs.first else { continue }
            let m = q.nodes[src]
            switch (n.op, m.op) {
            case (.reshape, .reshape):
                q.nodes[i].inputs = m.inputs
            case (.permute(let outer), .permute(let inner)):
                q.nodes[i].op = .permute(outer.map { inner[$0] })
                q.nodes[i].inputs = m.inputs
            default: break
            }
        }
        return q
    }

    /// Merges nodes with the same op, inputs, shape, dtype and stage.
    static func eliminateCommonSubexpressions(_ p: Program) -> Program {
        struct Key: Hashable { var op: Op; var inputs: [Int]; var shape: Shape; var dtype: DType; var stage: Int }
        var q = p
        var seen: [Key: Int] = [:]
        var replace = Array(q.nodes.indices)
        for i in q.nodes.indices {
            q.nodes[i].inputs = q.nodes[i].inputs.map { replace[$0] }
            let n = q.nodes[i]
            switch n.op {
            case .carry, .loopResult, .writeSlice: continue   // identity matters
            default: break
            }
            let key = Key(op: n.op, inputs: n.inputs, shape: n.shape, dtype: n.dtype, stage: n.stage)
            if let j = seen[key] { replace[i] = j } else { seen[key] = i }
        }
        for k in q.carries.indices {
            q.carries[k].initial = replace[q.carries[k].initial]
            q.carries[k].next = replace[q.carries[k].next]
        }
        q.outputs = q.outputs.map { ($0.name, replace[$0.node]) }
        return q
    }

    /// Drops nodes nothing needs and renumbers the rest.
    static func eliminateDeadCode(_ p: Program) -> Program {
        var live = Array(repeating: false, count: p.nodes.count)
        var stack = p.outputs.map(\.node)
        for c in p.carries { stack += [c.initial, c.next, c.entry] }
        for n in p.nodes { if case .writeSlice = n.op { stack.append(n.id) } }
        while let i = stack.popLast() {
            if live[i] { continue }
            live[i] = true
            stack += p.nodes[i].inputs
            if case .loopResult(let k) = p.nodes[i].op { stack += [p.carries[k].next, p.carries[k].initial] }
        }
        var newId = Array(repeating: -1, count: p.nodes.count)
        var nodes: [Node] = []
        for n in p.nodes where live[n.id] {
            var m = n
            m.id = nodes.count
            m.inputs = n.inputs.map { newId[$0] }
            newId[n.id] = m.id
            nodes.append(m)
        }
        var q = p
        q.nodes = nodes
        q.carries = p.carries.map { Carry(stage: $0.stage, entry: newId[$0.entry], initial: newId[$0.initial], next: newId[$0.next]) }
        q.outputs = p.outputs.map { ($0.name, newId[$0.node]) }
        return q
    }
}

import TensorGraph

/// Consecutive loops over the same shape become one loop that computes and stores each value,
/// sharing the subexpressions they have in common: the DPO loss family and its gradients
/// (small `[B]` values), and AdamW's moment and parameter updates (one pass over the flat
/// buffers instead of three). A value of the group is computed where a later member reads
/// it, never loaded.
extension FusionPlan {
    mutating func groupLoops() {
        var grouped: [Kernel] = []
        for k in kernels {
            if var group = grouped.last, canJoin(k, group) {
                let roots = Set(group.roots + [k.root])
                group.extraRoots.append(k.root)
                group.covered = Array(Set(group.covered + k.covered)).sorted()
                group.reads = Array(Set(group.reads + k.reads).subtracting(roots)).sorted()
                grouped[grouped.count - 1] = group
            } else {
                grouped.append(k)
            }
        }
        kernels = grouped
    }

    /// The shape a grouped loop runs over: the value it stores (a write's value).
    func loopShape(_ root: Int) -> Shape {
        if case .writeSlice = node(root).op { return node(node(root).inputs[1]).shape }
        return node(root).shape
    }

    private func canJoin(_ k: Kernel, _ group: Kernel) -> Bool {
        guard k.stage == group.stage, loopShape(k.root) == loopShape(group.root),
              isPlainLoop(k), isPlainLoop(group) else { return false }
        if isSmall(loopShape(k.root)) && k.roots.allSatisfy(storesOwnValue) && group.roots.allSatisfy(storesOwnValue) { return true }
        // Elsewhere every member runs at the loop's own index only, so a later member finds an
        // earlier one's value computed in this iteration; it must not load the old contents of
        // a buffer an earlier member updates in place.
        guard ([k] + [group]).allSatisfy(indexesOnlyTheLoop) else { return false }
        let overwritten = Set(group.roots.compactMap(updatedBuffer))
        return !k.reads.contains { overwritten.contains($0) }
    }

    /// A pointwise loop with no absorbed reduction, storing an f32 value.
    private func isPlainLoop(_ k: Kernel) -> Bool {
        let n = node(k.root)
        guard k.kind == .pointwise, !n.op.isReduction, !loopShape(k.root).isEmpty,
              !k.covered.contains(where: { node($0).op.isReduction }) else { return false }
        if case .writeSlice(_, let start) = n.op {
            return start == 0 && node(n.inputs[0]).shape == loopShape(k.root) && node(n.inputs[1]).dtype == .f32
        }
        return n.dtype == .f32
    }

    /// Stores into a buffer of its own (an arena value or an output), not into an input.
    private func storesOwnValue(_ root: Int) -> Bool {
        if case .writeSlice = node(root).op { return false }
        switch storage[root] {
        case nil: return true
        case .external(let name)?: return program.outputs.contains { $0.name == name }
        default: return false
        }
    }

    /// The input node whose buffer a root overwrites (a write, or a value computed in place).
    private func updatedBuffer(_ root: Int) -> Int? {
        if case .writeSlice = node(root).op { return node(root).inputs[0] }
        guard case .external(let name)? = storage[root] else { return nil }
        return program.nodes.first { if case .input(name) = $0.op { return true } else { return false } }?.id
    }

    /// Every value the kernel computes is at the loop's own index: its only views broadcast a
    /// single element (a scalar input) or keep the shape.
    private func indexesOnlyTheLoop(_ k: Kernel) -> Bool {
        k.covered.allSatisfy { i in
            let n = node(i)
            guard n.op.isView else { return true }
            let input = node(n.inputs[0])
            return input.shape.elementCount == Dim(1) || input.shape == n.shape
        }
    }
}

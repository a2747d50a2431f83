import TensorGraph

extension FusionPlan {
    /// The kernels of repeated stage `s` whose every stored value only feeds carries that
    /// nothing reads after the loop: they are skipped in the stage's last iteration.
    ///
    /// The backward layer loop of an adapter program (LoRA, prefix) is the case: its carry is
    /// the gradient at each layer's input, which the next iteration reads, but the last
    /// iteration's value — the gradient at the embedding's output — has no reader, since the
    /// embedding is frozen. Layer 0's input-gradient products (`dy · W` of every projection)
    /// and the norm gradients that lead to it are then not computed at all.
    func kernelsSkippedInLastIteration(stage s: Int) -> Set<Int> {
        guard program.stages.indices.contains(s), program.stages[s].count != nil else { return [] }
        var deadAtEnd = Set<Int>()
        for (k, c) in program.carries.enumerated() where c.stage == s && outputCarries[k] == nil {
            let results = program.nodes.filter { if case .loopResult(k) = $0.op { return true } else { return false } }
            // (the carry's own entry node reads `next` on behalf of the following iteration)
            guard results.allSatisfy({ consumers[$0.id].isEmpty }), consumers[c.next].allSatisfy({ $0 == c.entry }) else { continue }
            deadAtEnd.formUnion([c.next, c.entry])
        }
        guard !deadAtEnd.isEmpty else { return [] }
        // Walk back from the carries' next values: a value is dead at the end when all its
        // readers are (a value read by nothing is an effect or an output, never dead).
        for n in program.nodes.reversed() where n.stage == s && !n.op.isLeaf && !deadAtEnd.contains(n.id) {
            let readers = consumers[n.id]
            if !readers.isEmpty && readers.allSatisfy({ deadAtEnd.contains($0) }) { deadAtEnd.insert(n.id) }
        }
        var skipped = Set<Int>()
        for (i, k) in kernels.enumerated() where k.stage == s && k.roots.allSatisfy({ deadAtEnd.contains($0) }) {
            skipped.insert(i)
        }
        return skipped
    }
}

import TensorGraph

/// Liveness-based arena planning: every intermediate gets a slot; slots are reused once
/// their last reader has run. Sizes are symbolic, so a slot's size is the max of the sizes
/// it holds, evaluated at run time.
struct MemoryPlan {
    /// Per arena buffer (Storage.arena index): its slot.
    var slotOf: [Int: Int] = [:]
    /// Per slot: the distinct element counts it must hold.
    var slotSizes: [[Dim]] = []
    /// Two slots per carry for the ping-pong of a repeated stage.
    var carrySlots: [Int: (Int, Int)] = [:]
    /// Sum of every intermediate's size (what no reuse would need).
    var unplannedTotal: [Dim] = []
    /// Kernels (by root) that write their value over a value they read last (`inPlaceSource`):
    /// the two share a slot, so the emitted function's pointers may alias.
    var inPlace: Set<Int> = []

    init(plan: FusionPlan) {
        let p = plan.program
        // Position of each kernel; a repeated stage's span, so values read inside a loop
        // but made before it stay alive to its end.
        var pos: [Int: Int] = [:]
        var stageEnd: [Int: Int] = [:]
        for (i, k) in plan.kernels.enumerated() {
            for r in k.roots { pos[r] = i }
            stageEnd[k.stage] = i
        }
        var lastUse: [Int: Int] = [:]
        for (i, k) in plan.kernels.enumerated() {
            for r in k.reads {
                var use = i
                if p.stages[k.stage].count != nil, plan.node(r).stage != k.stage { use = stageEnd[k.stage] ?? i }
                lastUse[r] = max(lastUse[r] ?? -1, use)
            }
        }
        // Carry initial values are read at the loop's first iteration.
        for c in p.carries where plan.realized.contains(plan.initialValue(c)) {
            let v = plan.initialValue(c)
            lastUse[v] = max(lastUse[v] ?? -1, stageEnd[c.stage] ?? 0)
        }
        var free: [Int] = []
        var ends: [(end: Int, slot: Int)] = []
        for (i, k) in plan.kernels.enumerated() {
            // Release slots whose values are dead before this kernel.
            ends.sort { $0.end < $1.end }
            while let first = ends.first, first.end < i { free.append(first.slot); ends.removeFirst() }
            for root in k.roots {
                guard case .arena(let a) = plan.storage[root] else { continue }
                let size = plan.node(root).shape.elementCount
                unplannedTotal.append(size)
                let slot: Int
                if let source = MemoryPlan.inPlaceSource(plan, k, lastUse: lastUse, at: i),
                   case .arena(let sa) = plan.storage[source], let s = slotOf[sa], let e = ends.firstIndex(where: { $0.slot == s && $0.end == i }) {
                    // The kernel reads `source` for the last time, each element at the index it writes.
                    slot = s
                    ends.remove(at: e)
                    inPlace.insert(root)
                    if !slotSizes[slot].contains(size) { slotSizes[slot].append(size) }
                } else if let j = free.firstIndex(where: { slotSizes[$0].contains(size) })
                    ?? free.firstIndex(where: { slotSizes[$0].allSatisfy { $0.syms == size.syms } }) ?? (free.isEmpty ? nil : 0) {
                    slot = free.remove(at: j)
                    if !slotSizes[slot].contains(size) { slotSizes[slot].append(size) }
                } else {
                    slot = slotSizes.count
                    slotSizes.append([size])
                }
                slotOf[a] = slot
                ends.append((max(lastUse[root] ?? i, i), slot))
            }
        }
        // Carries: two dedicated slots each.
        for (k, c) in p.carries.enumerated() {
            let size = plan.node(c.entry).shape.elementCount
            slotSizes.append([size]); slotSizes.append([size])
            carrySlots[k] = (slotSizes.count - 2, slotSizes.count - 1)
            unplannedTotal += [size, size]
        }
    }

    /// A value kernel `k` (at position `i`) may overwrite with its root: one it reads for the
    /// last time, of the root's shape, made in the same stage, and read only by elementwise ops
    /// of that shape that lead to the root — so each element is read before, and at the index
    /// where, the same element of the root is written. Kernels with several roots, and kernels
    /// whose row reductions could stash a value into the root's row early, are left alone.
    static func inPlaceSource(_ plan: FusionPlan, _ k: Kernel, lastUse: [Int: Int], at i: Int) -> Int? {
        guard k.kind == .pointwise, k.extraRoots.isEmpty else { return nil }
        let root = plan.node(k.root)
        guard root.dtype == .f32 else { return nil }
        let covered = Set(k.covered + [k.root])
        // A reduction that evaluates a transcendental may stash it in the root's row before the
        // final loop reads its inputs.
        for c in covered where plan.node(c).op.isReduction {
            var stack = plan.node(c).inputs, seen = Set<Int>()
            while let x = stack.popLast() {
                guard covered.contains(x), seen.insert(x).inserted else { continue }
                if case .unary(let u) = plan.node(x).op, u != .neg, u != .abs { return nil }
                stack += plan.node(x).inputs
            }
        }
        for r in k.reads.sorted() where lastUse[r] == i && r != k.root {
            let n = plan.node(r)
            guard case .arena = plan.storage[r], n.shape == root.shape, n.dtype == .f32, n.stage == k.stage else { continue }
            // Every covered reader of r (and of what it feeds) is elementwise of the root's shape.
            var reach: Set<Int> = [r], ok = true
            for c in covered.sorted() where plan.node(c).inputs.contains(where: reach.contains) {
                let cn = plan.node(c)
                guard cn.op.isElementwise, cn.shape == root.shape else { ok = false; break }
                reach.insert(c)
            }
            if ok && reach.contains(k.root) { return r }
        }
        return nil
    }

    /// C expression for the floats slot `s` needs, rounded up to 16 (64 bytes).
    func slotExpr(_ s: Int) -> String {
        let sizes = slotSizes[s].map(\.cExpr)
        let e = sizes.dropFirst().reduce(sizes[0]) { "la_max(\($0), \($1))" }
        return "la_round16(\(e))"
    }
}

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
                if let j = free.firstIndex(where: { slotSizes[$0].contains(size) })
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

    /// C expression for the floats slot `s` needs, rounded up to 16 (64 bytes).
    func slotExpr(_ s: Int) -> String {
        let sizes = slotSizes[s].map(\.cExpr)
        let e = sizes.dropFirst().reduce(sizes[0]) { "la_max(\($0), \($1))" }
        return "la_round16(\(e))"
    }
}

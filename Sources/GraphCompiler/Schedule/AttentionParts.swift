import TensorGraph

/// Attention's parts share kernels: the forward kernel that computes an output also stores
/// its `lse` (computed on the way, never in a kernel of its own), the backward's `dq`, `dk`
/// and `dv` of the same operands come from one kernel, and a part kept for the backward
/// (`writeSlice(saved, part)`) is stored straight into the kept buffer.
extension FusionPlan {
    mutating func fuseAttentionParts() {
        for i in kernels.indices {
            guard kernels[i].kind == .attention, case .attention(let part, let start, let masked) = node(kernels[i].root).op else { continue }
            switch part {
            case .out: fuseForward(i, start: start, masked: masked)
            case .gradQ, .gradK, .gradV: fuseGradients(i)
            default: break
            }
        }
        kernels.removeAll { $0.covered.isEmpty }
    }

    /// The operands (`q`, `k`, `v`, [mask]) of an attention node.
    func attentionOperands(_ n: Node) -> [Int] {
        guard case .attention(_, _, let masked) = n.op else { return [] }
        return Array(n.inputs.prefix(masked ? 4 : 3))
    }

    /// The kernel at `i` computes output `o`; its `lse` input, when it is the `lse` of the same
    /// operands (or a full write of it), is stored by the same kernel, and `o` goes straight
    /// into the buffer of a full write of it.
    private mutating func fuseForward(_ i: Int, start: Dim, masked: Bool) {
        let o = kernels[i].root
        let lseInput = node(o).inputs[masked ? 4 : 3]
        var lse = lseInput
        var lseWrite: Int?
        if case .writeSlice(0, let s) = node(lseInput).op, s == Dim(0) {
            lseWrite = lseInput
            lse = node(lseInput).inputs[1]
        }
        guard node(lse).op == .attention(.lse, start: start, masked: masked), attentionOperands(node(lse)) == attentionOperands(node(o)),
              lseWrite.map({ node($0).shape == node(lse).shape && realized.contains($0) }) ?? true,
              consumers[lse].allSatisfy({ $0 == o || $0 == lseWrite || $0 > o }),
              lseWrite.map({ w in consumers[w].allSatisfy { $0 >= o } }) ?? true else { return }
        let lseStore = lseWrite ?? lse
        var covered = kernels[i].covered + [lse] + (lseWrite.map { [$0] } ?? [])
        for j in kernels.indices where j != i && (kernels[j].root == lse || kernels[j].root == lseWrite) { kernels[j].covered = [] }
        if lseWrite != nil { realized.remove(lse) }
        attentionStore[lse] = lseStore
        var outStore = o
        if let w = fullWrite(of: o), let j = kernels.firstIndex(where: { $0.root == w }) {
            kernels[j].covered = []
            realized.remove(o)
            outStore = w
            covered.append(w)
        }
        attentionStore[o] = outStore
        kernels[i].root = outStore
        kernels[i].extraRoots = [lseStore]
        kernels[i].covered = Array(Set(covered)).sorted()
        kernels[i].reads.removeAll { [o, lse, lseStore, outStore].contains($0) }
    }

    /// `dq`, `dk` and `dv` of the same operands: the first one's kernel computes them all.
    private mutating func fuseGradients(_ i: Int) {
        let a = node(kernels[i].root)
        guard !kernels[i].covered.isEmpty, case .attention(_, let start, let masked) = a.op else { return }
        for j in kernels.indices where j > i && !kernels[j].covered.isEmpty {
            let other = node(kernels[j].root)
            guard case .attention(let part, start, masked) = other.op, part != .lse, part != .out, other.inputs == a.inputs,
                  // Readers of the later values must come after the first kernel (they do: all
                  // are built by one gradient rule, one after the other).
                  consumers[other.id].allSatisfy({ $0 > a.id }) else { continue }
            kernels[i].extraRoots.append(other.id)
            kernels[i].covered = Array(Set(kernels[i].covered + kernels[j].covered)).sorted()
            kernels[j].covered = []
        }
    }

    /// A write of the whole of `x` (`writeSlice(t, x)` at 0, same shape), its only reader,
    /// in the same stage.
    private func fullWrite(of x: Int) -> Int? {
        guard consumers[x].count == 1, let w = consumers[x].first, case .writeSlice(_, let start) = node(w).op, start == Dim(0),
              node(w).inputs[1] == x, node(w).inputs[0] != x, node(node(w).inputs[0]).shape == node(x).shape,
              node(w).stage == node(x).stage, realized.contains(w), accumulatingMatmul[w] == nil else { return nil }
        return w
    }
}

import TensorGraph

/// Lowers the fused causal-attention kernels (`Op.attention`, grouped by
/// `FusionPlan.fuseAttentionParts`) to C (FlashAttention-2's tiling, on CPU cores):
///
/// - forward, over batch × query heads: per block of `tile` query rows and tile of `tile`
///   keys, the scores `q·k_s/√HD` (a small product against the key tile transposed in cache),
///   the causal and extra masks, an online softmax (running max and sum per row, the row's
///   output rescaled when the max grows) and the product with `v`; tiles wholly above the
///   diagonal are skipped, no `T×S` value is stored; each row's log-sum-exp is kept;
/// - backward, over batch × key/value heads: per query head of the group, key tile and row
///   that sees it, the probabilities recomputed from `q`, `k` and `lse`,
///   `ds = p·(dO·v_s − D_t)/√HD` with `D_t = dO·out`, and `dq += ds·k`, `dk += ds·q`,
///   `dv += p·dO`. A thread owns its group's rows of `dq` and its rows of `dk` and `dv`, so
///   the `REP` query heads sum into their shared head without races, in a fixed order (runs
///   are bit-reproducible for any thread count).
///
/// The operands are read through their strided views (unit stride along `HD`); the loops over
/// the head dim and over a tile are contiguous and `omp simd`.
struct AttentionLowering {
    let plan: FusionPlan
    let kernel: Kernel
    let buffer: (Int) -> String

    /// The attention nodes the kernel computes.
    var parts: [Int] { kernel.covered.filter { plan.node($0).op.isAttention } }

    func part(_ p: AttentionPart) -> Int? {
        parts.first { if case .attention(p, _, _) = plan.node($0).op { return true } else { return false } }
    }

    /// Where a part's value is stored.
    func store(_ i: Int) -> String { buffer(plan.attentionStore[i] ?? i) }

    /// Which kernel this is, for its name.
    var title: String { isForward ? "causal_attention_forward" : "causal_attention_backward" }

    var isForward: Bool { part(.out) != nil || part(.lse) != nil }

    /// Rows and keys per tile (one 16-float vector of scores).
    static let tile = 16
    /// Query rows per block of the forward (each transposed key tile serves them all).
    static let rowBlock = 64

    /// A C pointer and the strides of the non-contiguous axes of operand `i` (`names`, one per
    /// axis but the last, which must have unit stride). Locals are lowercase: the program's sizes
    /// (`B`, `T`, `V`, …) are uppercase symbols.
    func operand(_ i: Int, _ pointer: String, _ names: [String]) throws -> [String] {
        guard let v = plan.stridedView(i), let last = v.strides.last, last == Dim(1) || v.shape.last == Dim(1) else {
            throw NeedsRealization(node: i)
        }
        let base = v.offset.isEmpty || v.offset.sumExpr == "0" ? buffer(v.base) : "\(buffer(v.base)) + \(paren(v.offset.sumExpr))"
        return ["const float *\(pointer) = \(base);"] + zip(names, v.strides).map { "const long \($0) = \($1.cExpr);" }
    }

    func lines() throws -> [String] {
        guard let first = parts.first, case .attention(_, let start, let masked) = plan.node(first).op else { return [] }
        let n = plan.node(first)
        let (q, k) = (plan.node(n.inputs[0]), plan.node(n.inputs[1]))
        var c = [
            "const long nb = \(q.shape[0].cExpr), nt = \(q.shape[1].cExpr), nh = \(q.shape[2].cExpr), hd = \(q.shape[3].cExpr);",
            "const long ns = \(k.shape[1].cExpr), nkv = \(k.shape[2].cExpr), start = \(start.cExpr), rep = nh / nkv;",
            "const float scale = 1.0f / sqrtf((float)hd);",
        ]
        c += try operand(n.inputs[0], "qp", ["qsb", "qst", "qsh"])
        c += try operand(n.inputs[1], "kp", ["ksb", "kss", "ksh"])
        c += try operand(n.inputs[2], "vp", ["vsb", "vss", "vsh"])
        if masked { c += try operand(n.inputs[3], "mp", ["msb", "mst"]) }
        let mask = masked ? "mp[b * msb + t * mst + s] == 0.0f" : nil
        if isForward { return c + (isSingleRow ? singleRowForward(mask) : forward(mask)) }
        let extra = n.inputs.count - 3   // out, lse, dOut
        c += try operand(n.inputs[extra], "op", ["osb", "ost", "osh"])
        c += try operand(n.inputs[extra + 1], "lp", ["lsb", "lsh"])
        c += try operand(n.inputs[extra + 2], "gp", ["gsb", "gst", "gsh"])
        return c + backward(dq: part(.gradQ).map(store), dk: part(.gradK).map(store), dv: part(.gradV).map(store), mask)
    }

    /// FLOPs over the visible half of the `T×S` pairs (`B·H·T·S·HD` counts half of them
    /// twice): forward 2 products of `HD` per pair (scores, `p·v`), backward 5 (scores, `dO·v`,
    /// `dq`, `dk`, `dv`).
    var flops: Dim {
        guard let first = parts.first else { return 0 }
        let q = plan.node(plan.node(first).inputs[0]).shape, s = plan.node(plan.node(first).inputs[1]).shape[1]
        let pairs = q[0] * q[2] * q[1] * s * q[3]
        return isForward ? Dim(2) * pairs : Dim(5) * pairs
    }
}

extension AttentionLowering {
    /// The kernel's math in one line, for its comment.
    var formula: String {
        let names = parts.map { i -> String in
            guard case .attention(let p, _, _) = plan.node(i).op else { return "" }
            return "\(p.rawValue) → \(store(i))"
        }
        let mask = parts.first.map { i -> String in
            if case .attention(_, let start, let masked) = plan.node(i).op {
                return "s ≤ \(start == Dim(0) ? "" : start.cExpr + " + ")t\(masked ? ", mask" : "")"
            }
            return ""
        } ?? ""
        return "causal attention (\(mask)): " + names.joined(separator: ", ")
    }
}

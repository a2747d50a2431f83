import TensorGraph

/// Where a realized value lives.
enum Storage: Hashable {
    /// A caller buffer (input, parameter or output), by declared name.
    case external(String)
    /// An intermediate in the program's arena (planned later).
    case arena(Int)
    /// The value entering the current iteration of carry k.
    case carryCurrent(Int)
    /// The value a repeated stage computes for its next iteration.
    case carryNext(Int)
}

/// What a kernel does.
enum KernelKind: Equatable {
    /// Loops over rows × last axis, with any reductions it absorbed computed per row.
    case pointwise
    /// `cblas_sgemm` over the batch axes.
    case matmul
    /// Zero then accumulate rows at indices.
    case scatterAdd
    /// Fused causal attention: a forward (output and log-sum-exp) or backward (dq, or dk and dv)
    /// kernel over batch × heads (`AttentionLowering`).
    case attention
}

/// One fused kernel: computes the value of `root` (and the absorbed ops feeding it).
struct Kernel {
    var root: Int
    var kind: KernelKind
    var stage: Int
    /// Every node whose arithmetic this kernel performs (for comments and the manifest).
    var covered: [Int] = []
    /// Realized nodes it reads.
    var reads: [Int] = []
    var name = ""
    /// Further values the same loop computes and stores (consecutive small loops grouped).
    var extraRoots: [Int] = []
    /// Every value the kernel stores: its root, then the extra roots.
    var roots: [Int] { [root] + extraRoots }
}

/// Decides which nodes are materialized and groups the rest into the kernels that compute them.
struct FusionPlan {
    let program: Program
    let consumers: [[Int]]
    var realized = Set<Int>()
    var storage: [Int: Storage] = [:]
    var kernels: [Kernel] = []
    /// `target += A·B` written as one sgemm with β = 1: write-slice node → its matmul.
    var accumulatingMatmul: [Int: Int] = [:]
    /// `target += scatterAdd(rows, ids)`: only the rows named by ids are touched (a sparse
    /// embedding gradient): write-slice node → its scatter.
    var accumulatingScatter: [Int: Int] = [:]
    /// A matmul written straight into the layout of the view (or batch-axis sum) of it that
    /// is realized: that node → (matmul, where the matmul's elements land in its buffer).
    var outputViews: [Int: (matmul: Int, view: StridedView)] = [:]
    /// Carries kept in the slots of a per-layer input they are saved into: carry → input name.
    var savedSlotCarries: [Int: String] = [:]
    /// An attention part computed by another part's kernel, or stored through a write of it:
    /// part node → the kernel root whose buffer receives it (`fuseAttentionParts`).
    var attentionStore: [Int: Int] = [:]
    /// Carries whose final value is a program output: the last iteration writes its next
    /// value straight into that output (no copy after the loop): carry → output name.
    var outputCarries: [Int: String] = [:]

    /// Per stage, the inputs some write-slice of that stage writes.
    let writtenInputs: [Int: Set<String>]
    /// Size symbols that count few rows (sequences, pairs): a value over only these (and
    /// constants) is recomputed by every reader instead of stored, however many ops it takes.
    let smallSizes: Set<String>

    init(_ p: Program, smallSizes: Set<String> = [], extraRealized: Set<Int> = []) throws {
        program = p
        self.smallSizes = smallSizes
        consumers = p.consumers()
        var written: [Int: Set<String>] = [:]
        for w in p.nodes {
            if case .writeSlice = w.op, case .input(let name) = p.nodes[w.inputs[0]].op { written[w.stage, default: []].insert(name) }
        }
        writtenInputs = written
        realized = extraRealized
        try decide()
    }

    func node(_ i: Int) -> Node { program.nodes[i] }

    /// The first realized-or-leaf node under a chain of views, with the strided view of it.
    func stridedView(_ i: Int) -> StridedView? {
        let n = node(i)
        if realized.contains(i) || isBufferLeaf(i) { return .contiguous(base: i, shape: n.shape) }
        guard n.op.isView, let inner = stridedView(n.inputs[0]) else { return nil }
        return inner.applying(n.op, to: n.shape)
    }

    /// Leaves that are buffers (inputs, params, carries, loop results).
    func isBufferLeaf(_ i: Int) -> Bool {
        switch node(i).op {
        case .input, .param, .carry, .loopResult: true
        default: false
        }
    }

    /// How many computing consumers read a node, looking through views.
    func effectiveUses(_ i: Int) -> Int {
        consumers[i].reduce(0) { acc, c in
            if case .carry = node(c).op { return acc + 1 }
            return acc + (node(c).op.isView ? effectiveUses(c) : 1)
        }
    }

    /// The planning passes, in order: each reads and refines the plan.
    static let passes: [(name: String, run: @Sendable (inout FusionPlan) throws -> Void)] = [
        ("bind outputs", { $0.bindOutputs() }),
        ("bind carries", { $0.bindCarries() }),
        ("realize products, writes and stage crossings", { $0.realizeProductsWritesAndCrossings() }),
        ("keep carries in saved slots", { $0.keepCarriesInSavedSlots() }),
        ("fold accumulations into their writes", { $0.foldAccumulations() }),
        ("make product operands strided views", { $0.makeProductOperandsStrided() }),
        ("realize shared values", { $0.realizeSharedValues() }),
        ("write in place", { $0.writeInPlace() }),
        ("group kernels", { try $0.buildKernels() }),
        ("write products into their views", { try $0.writeProductsIntoViews() }),
        ("fuse attention parts", { $0.fuseAttentionParts() }),
        ("group loops", { $0.groupLoops() }),
        ("name kernels", { $0.nameKernels() }),
        ("assign arena slots", { $0.assignArenaSlots() }),
    ]

    private mutating func decide() throws {
        for pass in FusionPlan.passes { try pass.run(&self) }
    }

    /// An output that only reshapes or detaches a computed value takes that value's place.
    private mutating func bindOutputs() {
        for (name, id) in program.outputs {
            var target = id
            while true {
                let inner = node(target).inputs.first ?? target
                guard inner != target, !node(inner).op.isLeaf, storage[inner] == nil else { break }
                if case .reshape = node(target).op, consumers[inner].count == 1 { target = inner; continue }
                if case .stopGradient = node(target).op { target = inner; continue }
                break
            }
            if case .loopResult(let k) = node(target).op, outputCarries[k] == nil {
                outputCarries[k] = name
                continue
            }
            realized.insert(target); storage[target] = .external(name)
        }
    }

    /// A carry's start value is materialized; the value entering and leaving an iteration
    /// live in the carry's buffers.
    private mutating func bindCarries() {
        for (k, c) in program.carries.enumerated() {
            if !isBufferLeaf(initialValue(c)) { realized.insert(initialValue(c)) }
            storage[c.entry] = .carryCurrent(k)
            realized.insert(c.next)
            storage[c.next] = .carryNext(k)
        }
    }

    /// Caller buffers are bound by name; products, scatters and writes are materialized, and
    /// so is every value read by another stage.
    private mutating func realizeProductsWritesAndCrossings() {
        for n in program.nodes {
            switch n.op {
            case .input(let name), .param(let name): storage[n.id] = .external(name)
            case .loopResult(let k): storage[n.id] = .carryCurrent(k)
            case .matmul, .scatterAdd, .attention: realized.insert(n.id)
            case .writeSlice:
                realized.insert(n.id)
                if let a = accumulated(n) {
                    if case .matmul = node(a).op { accumulatingMatmul[n.id] = a } else { accumulatingScatter[n.id] = a }
                }
            default: break
            }
            // (a carry's start value is materialized above, through its reshapes)
            if !n.op.isLeaf {
                for c in consumers[n.id] where node(c).stage != n.stage && !node(c).op.isCarry {
                    realized.insert(rootThroughViews(n.id))
                }
            }
        }
    }

    /// A matmul or scatter accumulated into a buffer is computed by the write's kernel.
    private mutating func foldAccumulations() {
        for m in accumulatingMatmul.values { realized.remove(m) }
        for a in accumulatingScatter.values { realized.remove(a) }
    }

    /// Matmul operands must be strided views of buffers: materialize the value under the
    /// views when that makes them strided, else the viewed value itself. A value whose last
    /// axis is tiny (RoPE's pairs) is materialized as the operand itself instead, so its
    /// kernel loops over whole rows of the layout the matmul reads.
    private mutating func makeProductOperandsStrided() {
        for n in program.nodes {
            guard case .matmul = n.op else { continue }
            for i in n.inputs where stridedView(i) == nil {
                var bottom = i
                while node(bottom).op.isView { bottom = node(bottom).inputs[0] }
                if let last = node(bottom).shape.last?.constant, last < 8, bottom != i, node(i).shape.last != node(bottom).shape.last,
                   !realized.contains(bottom), effectiveUses(bottom) == 1 {
                    realized.insert(i)
                    continue
                }
                realized.insert(bottom)
                if stridedView(i) == nil { realized.remove(bottom); realized.insert(i) }
            }
        }
    }

    /// A value with several readers is materialized, unless all of them end in one kernel
    /// that loops over the value's own shape (softmax's exp feeds both its sum and its output),
    /// or it is cheap elementwise arithmetic each reader recomputes (its row statistics stored).
    private mutating func realizeSharedValues() {
        for n in program.nodes.reversed() where !realized.contains(n.id) && !n.op.isLeaf && !n.op.isView && !n.shape.isEmpty {
            guard effectiveUses(n.id) > 1 else { continue }
            let roots = kernelRoots(reading: n.id)
            if roots.count == 1, let r = roots.first, rowShape(of: r) == n.shape { continue }
            if let rowStatistics = recomputeCone(n.id, readers: roots.count, small: isSmall(n.shape)) {
                realized.formUnion(rowStatistics)
                continue
            }
            realized.insert(n.id)
        }
    }

    /// A copy of a matmul's result (views, or a sum over its batch axes) is written by the
    /// matmul itself; the copy kernel disappears.
    private mutating func writeProductsIntoViews() throws {
        for k in kernels where k.kind == .pointwise || outputViews[k.root] != nil {
            guard let (m, view, links) = matmulUnderViews(k.root) else { continue }
            outputViews[k.root] = (m, view)
            for l in links + [m] { realized.remove(l); outputViews[l] = nil }
        }
        if !outputViews.isEmpty { try buildKernels() }
    }

    private mutating func nameKernels() {
        for (i, k) in kernels.enumerated() { kernels[i].name = kernelName(i, k) }
    }

    /// Writes land in their target's buffer; every other kernel result gets an arena value
    /// (slots are shared by liveness later, in `MemoryPlan`).
    private mutating func assignArenaSlots() {
        var slot = 0
        for root in kernels.flatMap(\.roots) where storage[root] == nil {
            if case .writeSlice = node(root).op {
                storage[root] = storage[node(root).inputs[0]]
            } else {
                storage[root] = .arena(slot); slot += 1
            }
        }
    }

    /// Groups the realized nodes into kernels. Reductions are absorbed into the kernel that
    /// consumes them row by row, unless a consumer cannot do that; iterates until every
    /// kernel is well formed.
    private mutating func buildKernels() throws {
        var changed = true
        var rounds = 0
        while changed {
            changed = false
            rounds += 1
            if rounds > program.nodes.count + 2 { throw GraphError("program '\(program.name)': fusion did not converge") }
            kernels = []
            for n in program.nodes where realized.contains(n.id) && !isBufferLeaf(n.id) {
                var k = Kernel(root: n.id, kind: kind(of: n), stage: n.stage)
                if let bad = collect(&k) {
                    realized.insert(bad)
                    changed = true
                    break
                }
                kernels.append(k)
            }
        }
    }

    /// The matmul a kernel rooted at `root` computes (itself, the one it accumulates, or the
    /// one whose output it lays out).
    func matmulNode(of root: Int) -> Int {
        accumulatingMatmul[root] ?? outputViews[root]?.matmul ?? root
    }

    /// The realized nodes whose kernels would compute `i` (following unrealized consumers).
    func kernelRoots(reading i: Int) -> Set<Int> {
        var roots = Set<Int>(), seen = Set<Int>(), stack = [i]
        while let x = stack.popLast() {
            for c in consumers[x] where seen.insert(c).inserted {
                if case .carry = node(c).op { roots.insert(-1 - c); continue }
                if realized.contains(c) { roots.insert(c) } else { stack.append(c) }
            }
        }
        return roots
    }

    /// A shape over small sizes only (`[B]`, `[K, B]` with B among `smallSizes`).
    func isSmall(_ shape: Shape) -> Bool {
        !smallSizes.isEmpty && shape.elementCount.syms.allSatisfy(smallSizes.contains)
    }

    /// The rows × last-axis shape a root's kernel loops over.
    func rowShape(of root: Int) -> Shape {
        let n = node(root)
        if n.op.isReduction { return node(n.inputs[0]).shape }
        if case .writeSlice = n.op { return node(n.inputs[1]).shape }
        if case .scatterAdd = n.op { return node(n.inputs[0]).shape }
        return n.shape
    }

    /// The node to materialize for a value reached through views (views are never materialized on their own).
    private func rootThroughViews(_ i: Int) -> Int { i }

    private func kind(of n: Node) -> KernelKind {
        if accumulatingScatter[n.id] != nil { return .scatterAdd }
        if accumulatingMatmul[n.id] != nil || outputViews[n.id] != nil { return .matmul }
        switch n.op {
        case .matmul: return .matmul
        case .scatterAdd: return .scatterAdd
        case .attention: return .attention
        default: return .pointwise
        }
    }

    /// Walks the ops a kernel computes. Returns a reduction that must be realized instead, if any.
    private func collect(_ k: inout Kernel) -> Int? {
        let root = node(k.root)
        var seen = Set<Int>()
        var bad: Int?
        // Rows × last axis of the loop nest: a reduction root loops over its input's shape.
        let rowShape = root.op.isReduction ? node(root.inputs[0]).shape : root.shape
        func visit(_ i: Int, top: Bool) {
            if seen.contains(i) || bad != nil { return }
            seen.insert(i)
            let n = node(i)
            if !top && (realized.contains(i) || isBufferLeaf(i)) {
                k.reads.append(i)
                return
            }
            k.covered.append(i)
            if case .reduce = n.op, !top {
                // Absorbed: its input must span the root's rows × last axis.
                let input = node(n.inputs[0])
                if input.shape != rowShape || k.kind != .pointwise { bad = i; return }
            }
            if case .matmul = n.op, !top { bad = i; return }
            if case .gather = n.op {
                // The table is read by row; ids are an expression.
                let t = n.inputs[0]
                guard let table = gatherTable(t) else { bad = t; return }
                k.reads.append(table)
                visit(n.inputs[1], top: false)
                return
            }
            if top, k.kind == .attention {
                // Operands are read through their views; the output's own `lse` input is not
                // read (the forward kernel computes it).
                let skipped: Int? = { if case .attention(.out, _, let masked) = n.op { return n.inputs[masked ? 4 : 3] } else { return nil } }()
                for input in n.inputs where input != skipped {
                    if let v = stridedView(input) { if !k.reads.contains(v.base) { k.reads.append(v.base) } } else { bad = input; return }
                }
                return
            }
            if top, k.kind == .matmul {
                let mm = node(matmulNode(of: i))
                if accumulatingMatmul[i] != nil { k.covered += [n.inputs[1], mm.id] }
                if outputViews[i] != nil {
                    var c = { if case .writeSlice = n.op { return n.inputs[1] } else { return n.inputs[0] } }()
                    while c != mm.id { k.covered.append(c); c = node(c).inputs[0] }
                    k.covered.append(mm.id)
                }
                for input in mm.inputs {
                    if let v = stridedView(input) { if !k.reads.contains(v.base) { k.reads.append(v.base) } }
                }
                return
            }
            for input in n.inputs { visit(input, top: false) }
        }
        visit(k.root, top: true)
        k.covered.sort()
        k.reads = Array(Set(k.reads)).sorted()
        return bad
    }
}

extension Op {
    var isReduction: Bool { if case .reduce = self { return true } else { return false } }
    var isMatmul: Bool { if case .matmul = self { return true } else { return false } }
    var isAttention: Bool { if case .attention = self { return true } else { return false } }
    var isCarry: Bool { if case .carry = self { return true } else { return false } }
}

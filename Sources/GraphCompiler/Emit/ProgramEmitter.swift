import Foundation
import TensorGraph

/// Emits the C of one program: its argument struct, one static function per kernel, the
/// arena layout, the entry point and the cost table.
struct ProgramEmitter {
    let family: String
    let program: Program
    var plan: FusionPlan
    let memory: MemoryPlan
    let symbols: [String]
    /// Derived sizes a kernel declares at its top and writes by name.
    let sizeNames: [NamedSize]

    init(family: String, program: Program, sizeNames: [NamedSize] = [], smallSizes: Set<String> = []) throws {
        self.family = family
        self.sizeNames = sizeNames
        self.program = program
        let plan = try FusionPlan.legal(program, smallSizes: smallSizes) { plan, k in _ = try ProgramEmitter.kernelBody(plan, k) }
        self.plan = plan
        self.memory = MemoryPlan(plan: plan)
        self.symbols = program.symbols
        // Names the entry point uses for its own locals.
        let reserved: Set<String> = ["args", "off", "prof", "tick", "l", "r", "n", "j", "rows", "total", "flops", "bytes"]
        for n in sizeNames where program.symbols.contains(n.name) || (program.inputs + program.params).contains(where: { $0.name == n.name }) {
            throw GraphError("program '\(program.name)': the size name '\(n.name)' is also a symbol or an input; rename one")
        }
        for d in program.inputs + program.params where reserved.contains(d.name) || d.name.hasPrefix("carry") || d.name.hasPrefix("t") && Int(d.name.dropFirst()) != nil {
            throw GraphError("program '\(program.name)': the name '\(d.name)' is reserved in emitted C; rename the input")
        }
    }

    var prefix: String { "\(family)_\(program.name)" }

    // MARK: Names

    /// C name of the buffer holding a realized node.
    static func bufferName(_ plan: FusionPlan, _ id: Int) -> String {
        switch plan.storage[id] {
        case .external(let name)?: return name
        case .arena(let a)?: return "t\(a)"
        case .carryCurrent(let k)?: return "carry\(k)"
        case .carryNext(let k)?: return "carry\(k)_next"
        case nil: return "missing\(id)"
        }
    }

    /// The entry's name for slot 0 of a per-layer input that holds a carry (see `savedSlotCarries`).
    static func firstSlotName(_ input: String) -> String { "\(input)_slot0" }

    // MARK: Kernels

    /// The statements of a kernel's body and the buffers it writes/reads.
    static func kernelBody(_ plan: FusionPlan, _ k: Kernel) throws -> [String] {
        let root = plan.node(k.root)
        let name = { (i: Int) in bufferName(plan, i) }
        switch k.kind {
        case .matmul:
            return try MatmulLowering.body(plan, k, buffer: name)
        case .attention:
            return try AttentionLowering(plan: plan, kernel: k, buffer: name).lines()
        case .scatterAdd:
            // Serial over source rows so accumulation is deterministic; the inner loop vectorizes.
            // Accumulated into a buffer (`t += scatter`), only the named rows are touched.
            let accumulating = plan.accumulatingScatter[k.root]
            let scatter = plan.node(accumulating ?? k.root)
            let src = scatter.inputs[0], ids = scatter.inputs[1]
            var r = PointwiseRenderer(plan: plan, rowShape: plan.node(src).shape, buffer: name)
            let out = name(k.root), width = scatter.shape[1].cExpr
            let id = try r.value(ids, r.rowVars)
            try r.innerLoop({ v, j in "\(out)[(long)\(id) * \(paren(width)) + \(j)] += \(v);" }, value: src)
            var lines = accumulating != nil ? [] : ["memset(\(out), 0, sizeof(float) * (size_t)(\(scatter.shape.elementCount.cExpr)));"]
            lines += ["const long rows = \(r.rowCount.cExpr), n = \(r.width.cExpr);",
                      "for (long r = 0; r < rows; r++) {"]
            lines += (r.unravelRow(for: r.rowBlock) + r.rowBlock).map { "    " + $0 }
            lines.append("}")
            return lines
        case .pointwise:
            if !k.extraRoots.isEmpty { return try groupBody(plan, k, buffer: name) }
            if case .writeSlice(let axis, let start) = root.op {
                let value = root.inputs[1]
                var r = PointwiseRenderer(plan: plan, rowShape: plan.node(value).shape, buffer: name)
                let target = name(k.root), shape = r
                try r.innerLoop({ v, j in
                    var idx = shape.elementIndex(j)
                    if start != Dim(0) { idx[axis] = idx[axis] == "0" ? start.cExpr : "\(idx[axis]) + \(paren(start.cExpr))" }
                    return "\(target)[\(shape.linear(idx, root.shape))] = \(v);"
                }, value: value)
                return loopNest(r)
            }
            if root.op.isReduction {
                var r = PointwiseRenderer(plan: plan, rowShape: plan.node(root.inputs[0]).shape, buffer: name)
                let acc = try r.rowReduction(k.root)
                let out = name(k.root)
                var lines = loopNest(r, extra: ["\(out)[r] = \(acc);"])
                lines.insert("/* one result per row */", at: 0)
                return lines
            }
            let rank = root.shape.count
            if rank >= 2, let c = root.shape[rank - 1].constant, c < 8, k.extraRoots.isEmpty, !k.covered.contains(where: { plan.node($0).op.isReduction }) {
                // A tiny last axis (RoPE's pairs): loop over rows of the last two axes merged;
                // the pair index is a shift, the row unravel happens once per wide row.
                let flat = Array(root.shape.dropLast(2)) + [root.shape[rank - 2] * Dim(c)]
                var r = PointwiseRenderer(plan: plan, rowShape: flat, buffer: name)
                r.root = k.root
                let out = name(k.root), outer = r.rowVars, single = r.rowCount == 1
                try r.innerLoop({ v, j in "\(out)[\(single ? j : "r * n + \(j)")] = \(v);" }, value: k.root,
                                index: { j in outer + ["\(j) / \(c)", "\(j) % \(c)"] })
                return loopNest(r)
            }
            var r = PointwiseRenderer(plan: plan, rowShape: root.shape, buffer: name)
            r.root = k.root
            // The output row is scratch until stored, unless the kernel updates it in place.
            if root.dtype == .f32, !k.reads.contains(where: { name($0) == name(k.root) }) { r.stashBuffer = name(k.root) }
            let out = name(k.root), shape = r
            try r.innerLoop({ v, j in "\(out)[\(shape.linear(shape.elementIndex(j), root.shape))] = \(v);" }, value: k.root)
            return loopNest(r)
        }
    }

    /// One loop storing every value of a group (see `FusionPlan.groupLoops`): a write stores
    /// its value into its target, any other root into its own buffer.
    static func groupBody(_ plan: FusionPlan, _ k: Kernel, buffer name: @escaping (Int) -> String) throws -> [String] {
        let shape = plan.loopShape(k.root)
        var r = PointwiseRenderer(plan: plan, rowShape: shape, buffer: name)
        r.root = k.root
        r.alsoComputed = Set(k.extraRoots)
        let layout = r
        try r.innerLoop(k.roots.map { id in
            let n = plan.node(id), out = name(id)
            let store: (String, String) -> String = { v, j in "\(out)[\(layout.linear(layout.elementIndex(j), shape))] = \(v);" }
            if case .writeSlice = n.op { return (store, n.inputs[1]) }
            return (store, id)
        })
        return loopNest(r)
    }

    /// Wraps a renderer's row block in the parallel row loop.
    static func loopNest(_ r: PointwiseRenderer, extra: [String] = []) -> [String] {
        var lines = ["const long rows = \(r.rowCount.cExpr), n = \(r.width.cExpr);"]
        var block = r.rowBlock
        let serialCopy = r.rowCount != 1 && r.plan.program.latencyBound
        if r.rowCount != 1 && !serialCopy {
            lines.append("#pragma omp parallel for if (rows * n > 32768)")
        } else if r.rowCount == 1 {
            // One long row (a flat parameter): the threads split the row itself; reductions
            // combine per-thread partial results (a fixed order for a given thread count). The
            // condition is the parallel construct's only: a bare `if` would also turn off the SIMD
            // lanes of a short row, leaving one sequential float sum.
            block = block.flatMap { line -> [String] in
                if line.hasPrefix("#pragma omp simd reduction(") {
                    return [line.replacingOccurrences(of: "#pragma omp simd", with: "#pragma omp parallel for simd") + " if (parallel: n > 32768)"]
                }
                if line == "for (long j = 0; j < n; j++) {" { return ["#pragma omp parallel for if (n > 32768)", line] }
                return [line]
            }
        }
        if r.rowCount == 1 {
            // One row: no row loop; `r` is 0 where the body reads it.
            let body = block + extra
            let usesRow = ProgramEmitter.identifiers(in: body).contains("r")
            return ["const long n = \(r.width.cExpr);"] + (usesRow ? ["const long r = 0;"] : []) + r.unravelRow(for: body) + body
        }
        let loop = ["for (long r = 0; r < rows; r++) {"] + (r.unravelRow(for: block + extra) + block + extra).map { "    " + $0 } + ["}"]
        guard serialCopy else { return lines + loop }
        // A latency-bound program: small loops never enter the OpenMP runtime.
        return lines + ["if (rows * n > 32768) {", "    #pragma omp parallel for"] + loop.map { "    " + $0 }
            + ["} else {"] + loop.map { "    " + $0 } + ["}"]
    }

    /// The buffers a kernel touches, written first: (C name, writes).
    func kernelBuffers(_ k: Kernel) -> [(String, Bool)] {
        let outs = k.roots.map { ProgramEmitter.bufferName(plan, $0) }
        var seen = Set(outs)
        var list = outs.map { ($0, true) }
        for r in k.reads {
            let n = ProgramEmitter.bufferName(plan, r)
            if seen.insert(n).inserted { list.append((n, false)) }
        }
        return list
    }

    func dtypeOf(buffer name: String, _ k: Kernel) -> DType {
        for i in k.roots + k.reads where ProgramEmitter.bufferName(plan, i) == name { return plan.node(i).dtype }
        return .f32
    }

    /// Symbols a piece of C mentions, in program order.
    func symbolsUsed(in lines: [String]) -> [String] {
        let words = ProgramEmitter.identifiers(in: lines)
        return symbols.filter { words.contains($0) }
    }

    /// The C identifiers (and numbers) in some lines.
    static func identifiers(in lines: [String]) -> Set<String> {
        Set(lines.joined(separator: " ").split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init))
    }

    /// `const long D = 2*HD2*KVH*REP;` for each named size the lines use, in `sizeNames` order.
    func sizeDeclarations(for lines: [String]) -> [String] {
        let words = ProgramEmitter.identifiers(in: lines)
        return sizeNames.filter { words.contains($0.name) }.map { "const long \($0.name) = \($0.dim.cExpr);" }
    }

    /// An in-place kernel's element loops marked `omp simd`: without `restrict` the C compiler
    /// cannot prove its pointers apart and leaves the loop scalar, but the in-place rule
    /// (`MemoryPlan.inPlaceSource`) only lets a kernel overwrite a value it reads at the very
    /// index it writes, so iterations never depend on one another.
    static func sameIndexLoopsVectorized(_ body: [String]) -> [String] {
        var out: [String] = []
        for line in body {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "for (long j = 0; j < n; j++) {", !(out.last?.trimmingCharacters(in: .whitespaces).hasPrefix("#pragma") ?? false) {
                out.append(String(line.prefix { $0 == " " }) + "#pragma omp simd")
            }
            out.append(line)
        }
        return out
    }

    /// A kernel as a static C function.
    func kernelFunction(_ k: Kernel) throws -> (text: String, call: String) {
        var body = try Dim.$names.withValue(sizeNames) { try ProgramEmitter.kernelBody(plan, k) }
        if memory.inPlace.contains(k.root) { body = ProgramEmitter.sameIndexLoopsVectorized(body) }
        body = sizeDeclarations(for: body) + body
        let bufs = kernelBuffers(k)
        let syms = symbolsUsed(in: body)
        var params: [String] = []
        // A kernel that writes over a value it reads (`MemoryPlan.inPlace`) gets pointers that alias.
        let restrict = memory.inPlace.contains(k.root) ? "" : "restrict "
        for (n, writes) in bufs {
            let t = dtypeOf(buffer: n, k).cType
            params.append(writes ? "\(t) *\(restrict)\(n)" : "const \(t) *\(restrict)\(n)")
        }
        params += syms.map { "long \($0)" }
        // The comment: the math in infix, or (when that is too long to read) a loop's
        // arithmetic ops (views and sizes are indexing).
        let bufferName = { (i: Int) in ProgramEmitter.bufferName(plan, i) }
        let summary = Dim.$names.withValue(sizeNames) {
            k.kind == .matmul ? MatmulLowering.formula(plan, k, buffer: bufferName)
                : k.kind == .attention ? AttentionLowering(plan: plan, kernel: k, buffer: bufferName).formula
                : k.kind == .pointwise ? InfixFormula.comment(plan, k, buffer: bufferName) : nil
        } ?? k.covered.map { plan.node($0).op }.filter { !$0.isView && $0.name != "size" && $0.name != "const" }.map(\.name).joined(separator: ", ")
        var scopes: [String] = []
        for s in k.covered.map({ plan.node($0).scope }) where !s.isEmpty && !scopes.contains(s) { scopes.append(s) }
        var text = "/* \(k.name): \(summary)"
        if !scopes.isEmpty { text += "  [\(scopes.joined(separator: "; "))]" }
        text += " */\n"
        text += "static void \(k.name)(\(params.joined(separator: ", "))) {\n"
        text += body.map { "    " + $0 }.joined(separator: "\n") + "\n}\n"
        let args = bufs.map(\.0) + syms
        return (text, "\(k.name)(\(args.joined(separator: ", ")));")
    }

    // MARK: Costs

    /// FLOPs and bytes of a kernel, as C expressions over the sizes.
    func costs(_ k: Kernel) -> (flops: String, bytes: String) {
        var flops: [Dim] = []
        var bytes: [Dim] = []
        switch k.kind {
        case .matmul:
            let mm = plan.node(plan.matmulNode(of: k.root))
            let a = plan.node(mm.inputs[0]).shape
            guard case .matmul(let ta, _) = mm.op else { break }
            let kk = ta ? a[a.count - 2] : a[a.count - 1]
            flops = [Dim(2) * mm.shape.elementCount * kk]
        case .attention:
            flops = [AttentionLowering(plan: plan, kernel: k, buffer: { ProgramEmitter.bufferName(self.plan, $0) }).flops]
        default:
            for c in k.covered {
                let n = plan.node(c)
                if n.op.isElementwise { flops.append(n.shape.elementCount) }
                if n.op.isReduction { flops.append(plan.node(n.inputs[0]).shape.elementCount) }
            }
        }
        // Bytes per stored element: 4 (f32, i32), 1 (q8), 1 per two values (q4).
        func stored(_ i: Int) -> Dim {
            let n = plan.node(i)
            return (n.dtype.isQuantized ? Dim(1) : Dim(4)) * n.shape.storedElements(n.dtype)
        }
        for r in k.roots { bytes.append(stored(r)) }
        for r in k.reads { bytes.append(stored(r)) }
        return (flops.sumExpr, bytes.sumExpr)
    }
}

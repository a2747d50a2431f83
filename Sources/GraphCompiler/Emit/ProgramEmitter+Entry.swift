import ProgramABI
import TensorGraph

/// A field of a program's argument struct.
struct ArgField {
    typealias Kind = ProgramManifest.Field.Kind
    var name: String
    var kind: Kind
    var cType: String
    var decl: TensorDecl?
}

extension ProgramEmitter {
    /// The argument struct's fields, in order: parameters, inputs, outputs, arena, profile, sizes.
    /// Every field is 8 bytes, so a caller may fill the struct as an array of slots.
    var fields: [ArgField] {
        var f: [ArgField] = []
        for d in program.params { f.append(ArgField(name: d.name, kind: .param, cType: "const \(d.dtype.cType) *", decl: d)) }
        for d in program.inputs {
            f.append(ArgField(name: d.name, kind: .input, cType: d.mutable ? "\(d.dtype.cType) *" : "const \(d.dtype.cType) *", decl: d))
        }
        for (name, id) in program.outputs {
            let n = plan.node(id)
            f.append(ArgField(name: name, kind: .output, cType: "\(n.dtype.cType) *",
                              decl: TensorDecl(name: name, shape: n.shape, dtype: n.dtype)))
        }
        f.append(ArgField(name: "arena", kind: .arena, cType: "float *"))
        f.append(ArgField(name: "kernel_ns", kind: .profile, cType: "double *"))
        for s in symbols { f.append(ArgField(name: s, kind: .size, cType: "long ")) }
        return f
    }

    var argsType: String { "\(prefix)_args" }

    /// `typedef struct { … } prefix_args;` plus the public prototypes.
    func headerText() -> String {
        var t = "/* Program '\(program.name)': \(plan.kernels.count) kernels. Sizes: \(symbols.joined(separator: ", ")). */\n"
        t += "typedef struct {\n"
        for f in fields {
            var note = ""
            if let d = f.decl { note = " /* \(d.dtype.rawValue) \(d.shape.shapeDescription)\(d.perLayer ? " per layer" : "")\(d.mutable ? ", written" : "") */" }
            if f.kind == .arena { note = " /* \(prefix)_arena_floats() floats, 64-byte aligned */" }
            if f.kind == .profile { note = " /* NULL, or a profiling buffer (see la_tock) */" }
            t += "    \(f.cType)\(f.name);\(note)\n"
        }
        t += "} \(argsType);\n\n"
        t += "void \(prefix)(const \(argsType) *args);\n"
        t += "long \(prefix)_arena_floats(const \(argsType) *args);\n"
        t += "void \(prefix)_costs(const \(argsType) *args, double *flops, double *bytes);\n"
        return t
    }

    /// `const long T = args->T;` for each size symbol `lines` use.
    private func sizeLocals(for lines: [String]) -> [String] {
        symbolsUsed(in: lines).map { "const long \($0) = args->\($0);" }
    }

    /// Layout, kernels, entry point and costs of this program.
    func sourceText() throws -> String {
        var t = "/* ===== program '\(program.name)' ===== */\n\n"
        var calls: [String] = []
        for k in plan.kernels {
            let f = try kernelFunction(k)
            t += f.text + "\n"
            calls.append(f.call)
        }
        // Arena layout.
        let slots = memory.slotSizes.count
        t += "/* Arena: \(slots) slots planned for \(plan.kernels.count) kernels. */\n"
        t += "static long \(prefix)_layout(const \(argsType) *args, long *off) {\n"
        let offsets = (0..<slots).map { "off[\($0)] = total; total += \(memory.slotExpr($0));" }
        for l in sizeLocals(for: offsets) { t += "    \(l)\n" }
        t += "    long total = 0;\n"
        for o in offsets { t += "    \(o)\n" }
        t += "    (void)args; (void)off;\n    return total;\n}\n\n"
        t += "long \(prefix)_arena_floats(const \(argsType) *args) {\n    long off[\(max(slots, 1))];\n    return \(prefix)_layout(args, off);\n}\n\n"
        // Entry point.
        t += "void \(prefix)(const \(argsType) *args) {\n"
        let entryStart = t.utf8.count
        t += "    long off[\(max(slots, 1))];\n    \(prefix)_layout(args, off);\n"
        t += "    double *prof = args->kernel_ns;\n"
        // (a new call: the weights kept packed by the last one are stale)
        if program.matmulPrecision == .bf16 { t += "    la_bf16_epoch++;\n" }
        var arenaNames: [Int] = []
        for root in plan.kernels.flatMap(\.roots) { if case .arena(let s)? = plan.storage[root], !arenaNames.contains(s) { arenaNames.append(s) } }
        for s in arenaNames.sorted() { t += "    float *t\(s) = args->arena + off[\(memory.slotOf[s] ?? 0)];\n" }
        for f in fields where (f.kind == .param || f.kind == .input || f.kind == .output) && !(f.decl?.perLayer ?? false) {
            t += "    \(f.cType)\(f.name) = args->\(f.name);\n"
        }
        for name in Set(plan.savedSlotCarries.values).sorted() { t += "    float *\(ProgramEmitter.firstSlotName(name)) = args->\(name);\n" }
        for (s, stage) in program.stages.enumerated() {
            let ks = plan.kernels.enumerated().filter { $0.element.stage == s }
            let stageCarries = program.carries.enumerated().filter { $0.element.stage == s }
            if ks.isEmpty && stageCarries.isEmpty { continue }
            var indent = "    "
            if let count = stage.count {
                t += "    /* stage '\(stage.name)', repeated \(count.cExpr) times\(stage.reversed ? ", last layer first" : "") */\n"
                for (k, c) in stageCarries {
                    let slots = memory.carrySlots[k] ?? (0, 0)
                    t += "    const float *carry\(k) = \(ProgramEmitter.bufferName(plan, plan.initialValue(c)));\n"
                    t += "    float *carry\(k)_buf[2] = { args->arena + off[\(slots.0)], args->arena + off[\(slots.1)] };\n"
                }
                t += "    for (long l = 0; l < \(count.cExpr); l++) {\n"
                indent = "        "
                // Only the per-iteration tensors this stage's kernels read (the layer loop's
                // weights, or the chunk loop's rows).
                let used = Set(ks.flatMap { ProgramEmitter.identifiers(in: calls[$0.offset]) })
                for f in fields where (f.decl?.perLayer ?? false) && used.contains(f.name) {
                    let per = (f.decl?.sliceShape ?? []).storedElements(f.decl?.dtype ?? .f32).cExpr
                    let layer = stage.reversed ? "(\(count.cExpr) - 1 - l)" : "l"
                    t += "\(indent)\(f.cType)\(f.name) = args->\(f.name) + \(layer) * \(paren(per));\n"
                }
                for (k, c) in stageCarries {
                    if let saved = plan.savedSlotCarries[k] {
                        // The next layer's input goes straight into its saved slot.
                        let per = plan.node(c.entry).shape.elementCount.cExpr
                        t += "\(indent)float *carry\(k)_next = l + 1 < \(count.cExpr) ? args->\(saved) + (l + 1) * \(paren(per)) : carry\(k)_buf[l & 1];\n"
                    } else if let output = plan.outputCarries[k] {
                        // The last iteration's value is the output: it is written there.
                        t += "\(indent)float *carry\(k)_next = l + 1 < \(count.cExpr) ? carry\(k)_buf[l & 1] : \(output);\n"
                    } else {
                        t += "\(indent)float *carry\(k)_next = carry\(k)_buf[l & 1];\n"
                    }
                }
            } else {
                t += "    /* stage '\(stage.name)' */\n"
            }
            // Kernels that only feed a carry nobody reads after the loop skip the last iteration.
            let skipped = plan.kernelsSkippedInLastIteration(stage: s)
            for (i, _) in ks {
                let guardText = skipped.contains(i) ? "if (l + 1 < \(stage.count?.cExpr ?? "1")) " : ""
                t += "\(indent)\(guardText)LA_TIMED(prof, \(i), \(plan.kernels.count), \(calls[i].dropLast()));\n"
            }
            if stage.count != nil {
                for (k, _) in stageCarries { t += "\(indent)carry\(k) = carry\(k)_next;\n" }
                t += "    }\n"
            }
        }
        // The sizes the entry point reads, declared at its top.
        let head = String(decoding: t.utf8.prefix(entryStart), as: UTF8.self)
        let entryBody = String(decoding: t.utf8.dropFirst(entryStart), as: UTF8.self)
        t = head + sizeLocals(for: [entryBody]).map { "    \($0)\n" }.joined() + entryBody
        t += "}\n\n"
        // Costs.
        t += "void \(prefix)_costs(const \(argsType) *args, double *flops, double *bytes) {\n"
        let costLines = plan.kernels.enumerated().map { i, k in
            let c = costs(k)
            return "flops[\(i)] = (double)(\(c.flops)); bytes[\(i)] = (double)(\(c.bytes)); /* \(k.name) */"
        }
        for l in sizeLocals(for: costLines) { t += "    \(l)\n" }
        for c in costLines { t += "    \(c)\n" }
        t += "    (void)args;\n}\n\n"
        t += "static void \(prefix)_run(const void *args) { \(prefix)((const \(argsType) *)args); }\n"
        t += "static long \(prefix)_arena(const void *args) { return \(prefix)_arena_floats((const \(argsType) *)args); }\n"
        t += "static void \(prefix)_cost(const void *args, double *f, double *b) { \(prefix)_costs((const \(argsType) *)args, f, b); }\n"
        t += "static const char *const \(prefix)_kernel_names[] = {\n"
        t += plan.kernels.map { "    \"\($0.name)\"," }.joined(separator: "\n") + "\n};\n"
        t += "const la_program_info \(prefix)_info = { \"\(family).\(program.name)\", \(fields.count), \(plan.kernels.count), \(prefix)_kernel_names, \(prefix)_run, \(prefix)_arena, \(prefix)_cost };\n"
        return t
    }

    /// The C identifiers in `text` (a kernel call's arguments).
    static func identifiers(in text: String) -> [String] {
        text.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init)
    }

    /// The program's manifest entry.
    func manifest() throws -> ProgramManifest {
        let fieldList = fields.enumerated().map { i, f in
            ProgramManifest.Field(slot: i, name: f.name, kind: f.kind, dtype: f.decl?.dtype.rawValue, shape: f.decl?.shape.map(\.cExpr),
                                  perLayer: f.decl?.perLayer, mutable: f.decl?.mutable)
        }
        let kernels = plan.kernels.enumerated().map { i, k in
            let c = costs(k)
            var scopes: [String] = []
            for s in k.covered.map({ plan.node($0).scope }) where !s.isEmpty && !scopes.contains(s) { scopes.append(s) }
            let product: ProgramManifest.Kernel.Kind = program.matmulPrecision == .bf16 && plan.node(plan.matmulNode(of: k.root)).inputs.count == 2 ? .bf16Gemm : .sgemm
            let kind: ProgramManifest.Kernel.Kind = switch k.kind {
            case .matmul: product
            case .scatterAdd: .scatterAdd
            case .attention: .attention
            case .pointwise: .fusedLoop
            }
            return ProgramManifest.Kernel(index: i, name: k.name, kind: kind, ops: k.covered.map { plan.node($0).op.name }, scopes: scopes,
                                          stage: program.stages[k.stage].name, flops: c.flops, bytes: c.bytes)
        }
        let planned = (0..<memory.slotSizes.count).map { memory.slotExpr($0) }
        return ProgramManifest(name: "\(family).\(program.name)", symbol: prefix, fields: fieldList, sizes: symbols, kernels: kernels,
                               arena: .init(slots: memory.slotSizes.count, plannedFloats: planned.isEmpty ? "0" : planned.joined(separator: " + "),
                                            intermediatesFloats: memory.unplannedTotal.sumExpr))
    }
}

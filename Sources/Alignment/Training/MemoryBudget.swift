import Foundation
import KernelRuntime

/// What a training step will allocate, checked before anything large is: a run whose buffers
/// cannot fit in this machine's memory fails at once, with the bytes and the arguments that drive
/// them, instead of dying in an allocation later.
public enum MemoryBudget {
    /// The machine's physical memory in bytes.
    public static var machineBytes: Int { sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE)) }

    /// Bytes one training step plans: parameters, gradients and both AdamW moments (4 copies of
    /// the weights, plus `extraModels` frozen copies such as a DPO reference), and the step
    /// program's arena, outputs and kept activations for `rows` × `seq` with every position scored.
    public static func trainingBytes(config: LlamaConfig, program: String, rows: Int, seq: Int, extraModels: Int = 0) throws -> Int {
        let parameters = config.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        return try stepBytes(program: program, config: config, rows: rows, seq: seq, sizes: { $0.bindings },
                             parameterFloats: Double(parameters * (4 + extraModels)))
    }

    /// `trainingBytes` for the step `store` trains with: `program` (`llama_train.lm_step`,
    /// `llama_dpo.dpo_step`) with the store's adapter suffix (`_lora`, `_prefix`, and
    /// `_dropout` with LoRA dropout). An adapter run keeps one frozen copy of the model and the
    /// adapters, with gradients and moments only for the trained adapters (and no
    /// `extraModels`: its reference is the same weights with the adapters off).
    public static func trainingBytes(store: ParameterStore, program: String, rows: Int, seq: Int, extraModels: Int = 0) throws -> Int {
        let base = store.config.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        let dropout = (store.lora?.dropout ?? 0) > 0 ? "_dropout" : ""
        guard store.adapted else {
            return try trainingBytes(config: store.config, program: program, rows: rows, seq: seq, extraModels: extraModels)
        }
        let adapters = store.adapterNames.reduce(0) { $0 + (store.counts[$1] ?? 0) }
        let trained = store.trainableAdapterNames.reduce(0) { $0 + (store.counts[$1] ?? 0) }
        return try stepBytes(program: program + store.programSuffix + dropout, config: store.config, rows: rows, seq: seq,
                             sizes: store.programSizes, parameterFloats: Double(base + adapters + 3 * trained))
    }

    /// The step program's arena, outputs and kept activations at `rows` × `seq` (every position
    /// scored), plus `parameterFloats`, in bytes.
    private static func stepBytes(program: String, config: LlamaConfig, rows: Int, seq: Int, sizes: (LlamaSizes) -> [String: Int],
                                  parameterFloats: Double) throws -> Int {
        let p = try CompiledProgram.load(program)
        let (b, t) = (max(rows, 1), max(seq, 1))
        let (scored, overflow) = b.multipliedReportingOverflow(by: t)
        guard !overflow else { return .max }
        let bound = sizes(LlamaSizes(config: config, batch: b, seq: t, scored: scored))
        let floats = Double(p.arenaFloats(sizes: bound)) + Double(try p.callerFloats(sizes: bound)) + parameterFloats
        return floats * 4 >= Double(Int.max) ? .max : Int(floats * 4)
    }

    /// Throws when `bytes` pass the machine's memory; `drivers` names the arguments behind them.
    public static func check(_ bytes: Int, drivers: String) throws {
        let have = machineBytes
        guard have > 0, bytes > have else { return }
        func gib(_ x: Int) -> String { String(format: "%.1f GiB", Double(x) / Double(1 << 30)) }
        throw RuntimeError("a training step needs about \(gib(bytes)) (\(bytes) bytes), more than this machine's \(gib(have)); "
                           + "lower \(drivers)")
    }
}

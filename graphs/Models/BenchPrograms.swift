import TensorGraph

/// Programs used only by `llama-align bench` to measure the machine.
public enum BenchPrograms {
    /// `sgemm`: `c = a · bᵀ` for `a [M, K]`, `b [N, K]` — the BLAS ceiling of this machine.
    public static func sgemm() throws -> Program {
        let b = GraphBuilder("sgemm")
        let x = b.input("a", [.sym("M"), .sym("K")])
        let y = b.input("b", [.sym("N"), .sym("K")])
        b.output("c", b.matmul(x, y, transB: true))
        return try b.build()
    }

    /// `sgemm_bf16`: the same product in bf16 (bf16 operands, fp32 accumulation) — the ceiling
    /// of a bf16 program's products.
    public static func all() throws -> [Program] { [try sgemm(), try sgemm().lowered(precision: .bf16)] }
}

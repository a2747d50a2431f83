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

    /// `gemm_layouts`: every layout a product's operands come in, for the tests of the bf16
    /// products (`gemm_layouts_bf16`, on each path): `a [M, K]`, `at [K, M]`, `b [N, K]`,
    /// `bt`, `ct [K, N]`; `nt = a·bᵀ`, `nn = a·bt`, `tn = atᵀ·bt`, `tt = atᵀ·bᵀ`, and `acc += atᵀ·ct`
    /// (a product accumulated into a buffer: beta 1).
    public static func gemmLayouts() throws -> Program {
        let g = GraphBuilder("gemm_layouts")
        let (m, n, k) = (Dim.sym("M"), Dim.sym("N"), Dim.sym("K"))
        let a = g.input("a", [m, k]), at = g.input("at", [k, m]), b = g.input("b", [n, k]), bt = g.input("bt", [k, n])
        g.output("nt", g.matmul(a, b, transB: true))
        g.output("nn", g.matmul(a, bt))
        g.output("tn", g.matmul(at, bt, transA: true))
        g.output("tt", g.matmul(at, b, transA: true, transB: true))
        // Its own operand: the same product as `tn` would be shared with it (an output read twice).
        let ct = g.input("ct", [k, n])
        g.accumulate(into: g.input("acc", [m, n], mutable: true), g.matmul(at, ct, transA: true))
        return try g.build()
    }

    /// `sgemm_bf16`: the same product in bf16 (bf16 operands, fp32 accumulation) — the ceiling
    /// of a bf16 program's products.
    public static func all() throws -> [Program] {
        [try sgemm(), try sgemm().lowered(precision: .bf16), try gemmLayouts().lowered(precision: .bf16)]
    }
}

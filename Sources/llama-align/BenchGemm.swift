import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align bench gemm`: one product `[M,K]·[N,K]ᵀ` on every path this CPU has, side by side
/// in one process: float32 `sgemm` (OpenBLAS), bf16 on AVX-512 BF16 (`vdpbf16ps`) and bf16 on
/// AMX-BF16 tiles, alternated round by round so the machine's noise falls on all of them alike.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "GFLOP/s of one product on float32 sgemm, bf16 AVX-512 BF16 and bf16 AMX (side by side).")

    @OptionGroup var options: BenchOptions
    @Option(help: "Rows of the product (default: --batch × --seq tokens of a training step).") var m: Int?
    @Option(help: "Columns (default: the config's hidden size).") var n: Int?
    @Option(help: "Inner dimension (default: the config's dim).") var k: Int?
    @Option(help: "Sequences a step's rows come from (with --seq, the default M).") var batch = 4
    @Option(help: "Tokens per sequence.") var seq = 256
    @Option(help: "Rounds; each measures every path (median of 5 runs after one warm-up).") var rounds = 3

    struct Result: Encodable {
        var job = "gemm", m: Int, n: Int, k: Int, threads: Int
        /// Medians over the rounds; `bf16_amx_gflops` is nil where the CPU or the OS has no AMX.
        var sgemm_gflops: Double, bf16_avx512_gflops: Double?, bf16_amx_gflops: Double?
        var kernels = MatrixKernels.current
    }

    func validate() throws {
        for (name, v) in [("m", m), ("n", n), ("k", k), ("batch", Optional(batch)), ("seq", Optional(seq)), ("rounds", Optional(rounds))] {
            if let v, v <= 0 { throw ValidationError("--\(name) must be positive, got \(v)") }
        }
        if BenchConfig.named(options.config) == nil && (m == nil || n == nil || k == nil) {
            throw ValidationError("--config must be small or medium unless --m, --n and --k are all given")
        }
    }

    func run() throws {
        options.applyThreading()
        let c = BenchConfig.named(options.config)
        let (m, n, k) = (self.m ?? batch * seq, self.n ?? c?.hiddenDim ?? 0, self.k ?? c?.dim ?? 0)
        let start = MatrixKernels.current
        let bf16 = start.hasBF16, amx = MatrixKernels.amxAllowed
        var f32: [Double] = [], avx: [Double] = [], tiles: [Double] = []
        defer { MatrixKernels.useAMX(start.bf16Path == "amx") }
        for _ in 0..<rounds {
            f32.append(try sgemmGFLOPs(m: m, n: n, k: k))
            if bf16 {
                MatrixKernels.useAMX(false)
                avx.append(try sgemmGFLOPs(m: m, n: n, k: k, program: "bench.sgemm_bf16"))
            }
            if amx {
                MatrixKernels.useAMX(true)
                tiles.append(try sgemmGFLOPs(m: m, n: n, k: k, program: "bench.sgemm_bf16"))
            }
        }
        let r = Result(m: m, n: n, k: k, threads: KernelThreads.current, sgemm_gflops: median(f32),
                       bf16_avx512_gflops: avx.isEmpty ? nil : median(avx), bf16_amx_gflops: tiles.isEmpty ? nil : median(tiles), kernels: start)
        if options.json { try printJSON(r); return }
        print("gemm [\(m),\(k)]·[\(n),\(k)]ᵀ, \(r.threads) threads, \(rounds) rounds alternating the paths; \(start.cpu)")
        print(String(format: "sgemm (float32, OpenBLAS %@): %.1f GFLOP/s", start.core, r.sgemm_gflops))
        print(r.bf16_avx512_gflops.map { String(format: "bf16 AVX-512 BF16 (vdpbf16ps): %.1f GFLOP/s (%.2f× sgemm)", $0, $0 / r.sgemm_gflops) }
              ?? "bf16 AVX-512 BF16: not on this CPU")
        print(r.bf16_amx_gflops.map { String(format: "bf16 AMX-BF16 tiles: %.1f GFLOP/s (%.2f× sgemm)", $0, $0 / r.sgemm_gflops) }
              ?? "bf16 AMX-BF16: not here (\(start.bf16Note))")
    }
}

import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
@testable import Alignment

/// The two paths of the bf16 products: AMX-BF16 tiles (where the CPU and the OS allow them, the
/// default there) and AVX-512 BF16 `vdpbf16ps` (elsewhere, or with `LLAMA_ALIGN_AMX=0`). Both must
/// give the float32-accumulated product of the operands rounded to bf16. In `MixedPrecisionTests`
/// (serialized) because switching the path is process-wide: no other bf16 test of the suite runs
/// while a test here has the path switched.
extension MixedPrecisionTests {
    /// The paths this machine can run: `false` (AVX-512 BF16) always, `true` (AMX) where allowed;
    /// says so when AMX is skipped.
    static func paths() -> [Bool] {
        if MatrixKernels.amxAllowed { return [false, true] }
        print("skipped: the AMX-BF16 path (\(MatrixKernels.current.bf16Note)); only AVX-512 BF16 checked")
        return [false]
    }

    /// Runs `body` with the products on AMX (`amx`) or AVX-512 BF16, then restores the path.
    static func on<T>(amx: Bool, _ body: () throws -> T) rethrows -> T {
        let before = MatrixKernels.current.bf16Path == "amx"
        defer { MatrixKernels.useAMX(before) }
        #expect(MatrixKernels.useAMX(amx) == amx)
        #expect(MatrixKernels.current.bf16Path == (amx ? "amx" : "avx512_bf16"))
        return try body()
    }

    /// `bench.gemm_layouts_bf16` (a·bᵀ, a·b, aᵀ·b, aᵀ·bᵀ and an accumulating aᵀ·b: beta 0 and 1)
    /// against the reference interpreter's product of the bf16-rounded operands, on each path, at
    /// shapes off every block: M, N not multiples of the 16-row tiles or 32-column panels, K odd,
    /// not a multiple of 32, and past one block of K (512).
    @Test(arguments: [[37, 70, 301], [1, 1, 1], [32, 32, 32], [33, 17, 1031], [130, 45, 64], [16, 97, 530], [5, 600, 7]])
    func layoutsOnEveryPathMatchTheRoundedProduct(shape: [Int]) throws {
        let program = try #require(try BenchPrograms.all().first { $0.name == "gemm_layouts_bf16" })
        let compiled = try CompiledProgram.load("bench.gemm_layouts_bf16")
        let sizes = ["M": shape[0], "N": shape[1], "K": shape[2]]
        for amx in Self.paths() {
            let (err, which) = try Self.on(amx: amx) {
                try FusedVsReference(program: program, compiled: compiled, sizes: sizes, seed: 3).maxRelativeError(idRange: 1)
            }
            #expect(err <= 1e-5, "\(amx ? "AMX" : "AVX-512 BF16") \(shape): \(which) differs by \(err)")
        }
    }

    /// Every bf16 program (training, DPO, LoRA) against the interpreter rounding products'
    /// operands to bf16, on each path (EveryProgramTests runs them on the default path).
    @Test func everyBF16ProgramOnEveryPath() throws {
        let names = EveryProgramTests.names.filter { $0.hasSuffix("_bf16") }
        #expect(names.count >= 6)
        for amx in Self.paths() {
            try Self.on(amx: amx) {
                for name in names { try EveryProgramTests().fusedMatchesReference(name: name) }
            }
        }
    }

    /// One `lm_step_bf16` on each path: the losses agree within the suite's tolerance, and both
    /// differ from float32's (the operands were rounded on both).
    @Test func oneStepAgreesOnEveryPath() throws {
        let golden = try TorchGolden.load()
        let weights = try TorchGolden.tensors("model")
        let f32 = try LMTrainer(parameters: ParameterStore(weights: weights), optimizer: golden.optimizerSettings)
        let reference = try f32.accumulateGradients([golden.tokenBatch]).loss
        var losses: [Double] = []
        for amx in Self.paths() {
            let t = try LMTrainer(parameters: ParameterStore(weights: weights), optimizer: golden.optimizerSettings, bf16: true)
            losses.append(try Self.on(amx: amx) { try t.accumulateGradients([golden.tokenBatch]).loss })
        }
        for l in losses {
            #expect(Self.relative(l, reference) < Self.tolerance && l != reference, "bf16 loss \(l) vs float32 \(reference)")
            #expect(Self.relative(l, losses[0]) < Self.tolerance / 10, "bf16 losses on the two paths: \(losses)")
        }
    }

    /// `doctor` names the products' path; `LLAMA_ALIGN_AMX=0` puts them on AVX-512 BF16.
    @Test func doctorNamesTheBF16Path() throws {
        guard let on = try CLI.run(["doctor"], environment: ["LLAMA_ALIGN_AMX": nil]), let off = try CLI.run(["doctor"], environment: ["LLAMA_ALIGN_AMX": "0"]) else { return }
        #expect(on.status == 0 && off.status == 0)
        let amx = MatrixKernels.amxAllowed
        #expect(on.stdout.contains(amx ? "bf16 products: AMX-BF16 tiles" : "bf16 products: AVX-512 BF16 (vdpbf16ps)"), "\(on.stdout)")
        #expect(off.stdout.contains("bf16 products: AVX-512 BF16 (vdpbf16ps); not AMX: " + (amx ? "turned off by LLAMA_ALIGN_AMX" : "")),
                "\(off.stdout)")
        #expect(off.stdout.contains("env: LLAMA_ALIGN_AMX=0"))
    }
}

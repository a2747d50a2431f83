import Foundation
import KernelRuntime
import Testing

/// The matrix kernels are chosen from the CPU's features by the program itself (issue: never a
/// generic GEMM kernel), a user's OPENBLAS_CORETYPE wins, and every report names the path.
@Suite struct MatrixKernelsTests {
    static let avx2 = ["avx", "fma", "avx2"]
    static let avx512 = avx2 + ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]

    @Test func theCoreFollowsTheFeaturesNotTheModel() {
        // Intel Xeon family 6 model 207 (AVX-512 BF16, VNNI, AMX) and AMD Zen 4/5: Cooperlake.
        #expect(MatrixKernels.core(forFeatures: Self.avx512 + ["avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"]) == "Cooperlake")
        #expect(MatrixKernels.core(forFeatures: Self.avx512 + ["avx512_vnni", "avx512_bf16", "avx_vnni"]) == "Cooperlake")
        #expect(MatrixKernels.core(forFeatures: Self.avx512 + ["avx512_vnni"]) == "SkylakeX")
        #expect(MatrixKernels.core(forFeatures: Self.avx2) == "Haswell")
        // AVX-512F alone (no BW/VL, as on Knights Landing) is not enough for SkylakeX's kernels.
        #expect(MatrixKernels.core(forFeatures: Self.avx2 + ["avx512f", "avx512cd"]) == "Haswell")
        #expect(MatrixKernels.core(forFeatures: ["avx"]) == "SandyBridge")
        #expect(MatrixKernels.core(forFeatures: []) == nil)
        #expect(MatrixKernels.isa(ofCore: "Prescott") == "sse")
        #expect(MatrixKernels.isa(ofCore: "cooperlake") == "avx512")
    }

    @Test func theKernelsInUseAreNotAGenericFallback() {
        let k = MatrixKernels.current
        #expect(k.error.isEmpty, "\(k.error)")
        #expect(!k.core.isEmpty)
        #expect(!k.isGenericFallback, "\(k.summary)")
        if k.features.contains("avx2") { #expect(["avx2", "avx512"].contains(k.isa), "\(k.summary)") }
        if !k.requestedCore.isEmpty { #expect(k.requestedCore.lowercased() == k.core.lowercased(), "\(k.summary)") }
    }

    @Test func withNoEnvironmentVariableTheProgramChoosesFromTheFeatures() throws {
        guard let r = try CLI.run(["doctor", "--json"], environment: ["OPENBLAS_CORETYPE": nil]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        struct Report: Decodable { var kernels: MatrixKernels; var version: String }
        let report = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        let k = report.kernels
        guard let expected = MatrixKernels.core(forFeatures: k.features) else { return }
        #expect(k.chosenBy == "cpu features")
        #expect(k.core.lowercased() == expected.lowercased(), "\(k.summary)")
        #expect(!k.isGenericFallback, "\(k.summary)")
        if k.features.contains("avx512bw") && k.features.contains("avx512vl") { #expect(k.isa == "avx512", "\(k.summary)") }
    }

    @Test func aUsersOwnCoreTypeWins() throws {
        guard MatrixKernels.current.features.contains("avx2") else { return }
        guard let r = try CLI.run(["doctor"], environment: ["OPENBLAS_CORETYPE": "Haswell"]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("matrix kernels: OpenBLAS Haswell (avx2), set by OPENBLAS_CORETYPE=Haswell"), "\(r.stdout)")
        #expect(r.stdout.contains("env: OPENBLAS_CORETYPE=Haswell"))
    }

    @Test func versionNamesTheCPUAndTheKernels() throws {
        guard let r = try CLI.run(["--version"]) else { return }
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("llama-align "))
        #expect(r.stdout.contains("cpu: ") && r.stdout.contains("matrix kernels: OpenBLAS "), "\(r.stdout)")
    }
}

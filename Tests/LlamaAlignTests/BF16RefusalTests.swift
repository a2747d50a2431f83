import Foundation
import Testing
import KernelRuntime
@testable import Alignment

/// On a CPU without AVX-512 BF16 (AVX2-only machines such as AMD Zen 3) every way into bf16
/// training is refused in one line, and nothing reaches a bf16 kernel (which would stop the
/// process on an illegal instruction). Where the CPU has it, `MixedPrecisionTests` runs instead.
@Suite(.enabled(if: !MixedPrecision.available, "this CPU has AVX-512 BF16: MixedPrecisionTests cover bf16"))
struct BF16RefusalTests {
    @Test(arguments: ["train", "dpo"])
    func benchBF16IsRefused(job: String) throws {
        guard let r = try CLI.run(["bench", job, "--bf16", "--threads", "1"]) else { return }
        #expect(r.status != 0)
        #expect(r.stderr.contains("AVX-512 BF16"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test func libraryCheckThrows() throws {
        let params = try ParameterStore(weights: LlamaWeights.random(config: QuantizationTests.tinyQuantConfig(), seed: 1, scale: 0.1))
        #expect(throws: RuntimeError.self) { try MixedPrecision.check(bf16: true, parameters: params) }
        try MixedPrecision.check(bf16: false, parameters: params)
        #expect(throws: RuntimeError.self) { try CompiledProgram.load("llama_train.lm_step_bf16") }
    }
}

import Foundation
import Testing
import KernelRuntime
@testable import Alignment

/// bf16 mixed precision (`bf16: true`, `--bf16`): the `*_bf16` programs' products round both
/// operands to bfloat16 and accumulate in float32; everything else stays float32. Checked
/// against exact products of the rounded operands, against PyTorch's float64 step
/// (`Fixtures/torch_golden`), and against float32 runs of the same training: losses within
/// `MixedPrecisionTests.tolerance` (relative), the figure the README's "bf16 mixed precision"
/// section states.
@Suite(.serialized, .enabled(if: MixedPrecision.available)) struct MixedPrecisionTests {
    /// Relative difference allowed between a bf16 and a float32 (or float64) loss.
    static let tolerance = 1e-2

    static func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-12) }

    /// `bench.sgemm_bf16`: c = a·bᵀ equals the float64 product of the operands rounded to bf16
    /// (nearest even), up to float32 accumulation, and differs from the float32 product.
    @Test func bf16ProductIsTheProductOfRoundedOperands() throws {
        let p = try CompiledProgram.load("bench.sgemm_bf16")
        let (m, n, k) = (37, 70, 301)   // edges of every block: rows % 12, columns % 32, odd K
        // Deterministic values in [-0.5, 0.5) with full 24-bit mantissas (so rounding to bf16 shows).
        var state: UInt64 = 7
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24) - 0.5
        }
        let a = AlignedBuffer(floats: m * k), b = AlignedBuffer(floats: n * k), c = AlignedBuffer(floats: m * n)
        for i in 0..<(m * k) { a.floats[i] = next() }
        for i in 0..<(n * k) { b.floats[i] = next() }
        try p.run(buffers: ["a": a.raw, "b": b.raw, "c": c.raw], sizes: ["M": m, "N": n, "K": k])
        func bf(_ x: Float) -> Double { Double(HalfFloat.floatFromBF16(HalfFloat.bf16FromFloat(x))) }
        var worst = 0.0, fromF32 = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var rounded = 0.0, exact = 0.0, scale = 0.0
                for t in 0..<k {
                    let x = a.floats[i * k + t], y = b.floats[j * k + t]
                    rounded += bf(x) * bf(y); exact += Double(x) * Double(y); scale += abs(Double(x) * Double(y))
                }
                worst = max(worst, abs(Double(c.floats[i * n + j]) - rounded) / scale)
                fromF32 = max(fromF32, abs(Double(c.floats[i * n + j]) - exact) / scale)
            }
        }
        #expect(worst < 1e-6, "bf16 product vs the rounded operands' product: \(worst)")
        #expect(fromF32 > 1e-4, "the product did not round its operands: \(fromF32) from float32")
    }

    /// One `lm_step_bf16` on the fixture model against PyTorch's float64 loss and gradient norm
    /// (within `tolerance`) and gradients (each tensor's relative L2 error within 5 × `tolerance`:
    /// a dim-32 model's gradients go through three rounded products each).
    @Test func oneStepAgainstTorchGolden() throws {
        let golden = try TorchGolden.load()
        let weights = try TorchGolden.tensors("model")
        let bf16 = try LMTrainer(parameters: ParameterStore(weights: weights), optimizer: golden.optimizerSettings, bf16: true)
        let f32 = try LMTrainer(parameters: ParameterStore(weights: weights), optimizer: golden.optimizerSettings)
        var losses: [Double] = []
        for t in [bf16, f32] {
            t.zeroGradients()
            losses.append(try t.accumulateGradients([golden.tokenBatch]).loss)
        }
        let want = try #require(golden.lm.losses.first), norm = try #require(golden.lm.grad_norms.first)
        #expect(Self.relative(losses[0], want) < Self.tolerance, "bf16 loss \(losses[0]) vs torch \(want)")
        #expect(losses[0] != losses[1], "lm_step_bf16 gave float32's loss exactly")
        #expect(Self.relative(try bf16.gradientNorm(), norm) < Self.tolerance)
        let expected = try TorchGolden.tensors("lm_gradients")
        var worst = (name: "", error: 0.0)
        for (name, e) in expected.tensors.sorted(by: { $0.key < $1.key }) {
            let g = try #require(bf16.gradient(name))
            let err = zip(g, e).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) }.squareRoot()
                / max(e.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), 1e-30)
            if err > worst.error { worst = (name, err) }
        }
        #expect(worst.error < 5 * Self.tolerance, "worst bf16 gradient \(worst.name): relative L2 error \(worst.error)")
        print("bf16 vs torch golden: loss \(Self.relative(losses[0], want)), worst gradient \(worst.name) \(worst.error)")
    }

    /// The head is packed once per program call (`la_bf16_gemm_weight`): after AdamW changed it in
    /// place, the next step sees the new weights, exactly as a fresh trainer holding them does.
    @Test func aStepAfterAnUpdateSeesTheNewWeights() throws {
        let golden = try TorchGolden.load()
        let t = try LMTrainer(parameters: ParameterStore(weights: TorchGolden.tensors("model")), optimizer: golden.optimizerSettings, bf16: true)
        _ = try t.trainStep([golden.tokenBatch], lr: 1e-2)
        let fresh = try LMTrainer(parameters: ParameterStore(weights: t.parameters.weights()), optimizer: golden.optimizerSettings, bf16: true)
        t.zeroGradients()
        fresh.zeroGradients()
        let a = try t.accumulateGradients([golden.tokenBatch]).loss, b = try fresh.accumulateGradients([golden.tokenBatch]).loss
        #expect(a == b, "after an update: \(a) in place, \(b) fresh")
        let sameGradient = t.gradient("lm_head") == fresh.gradient("lm_head")
        #expect(sameGradient, "the head's gradient differs after an update")
    }

    /// A 200-step SFT run with `bf16: true` follows the float32 run's loss curve.
    @Test func sftLossCurveFollowsFloat32() throws {
        let extra: [String: Any] = ["max_steps": 200, "learning_rate": 1e-3, "eval_steps": 0]
        let f32 = try Demo.args(.sft, extra)
        var on = extra; on["bf16"] = true
        let bf16 = try Demo.args(.sft, on)
        #expect(bf16.bf16 && bf16.ignoredKeys.isEmpty)
        let lines = NotesBox()
        var run32 = TrainingRun(args: f32, task: .sft), run16 = TrainingRun(args: bf16, task: .sft)
        run32.log = { lines.add("f32: " + $0) }
        run16.log = { lines.add("bf16: " + $0) }
        try run32.run()
        try run16.run()
        // The run says it trains in mixed precision; the float32 run does not.
        #expect(lines.lines.contains("bf16: " + MixedPrecision.banner) && !lines.lines.contains("f32: " + MixedPrecision.banner))
        let a = try Demo.metrics(f32.outputDir).filter { $0["loss"] != nil }, b = try Demo.metrics(bf16.outputDir).filter { $0["loss"] != nil }
        #expect(a.count == 200 && b.count == 200)
        var worst = 0.0
        for (x, y) in zip(a, b) { worst = max(worst, Self.relative(y["loss"] ?? .nan, x["loss"] ?? .nan)) }
        #expect(worst < Self.tolerance, "bf16 SFT loss curve: worst relative difference \(worst)")
        #expect((b.last?["loss"] ?? 9) < (b.first?["loss"] ?? 0) / 2, "bf16 SFT did not learn")
        print("bf16 SFT, 200 steps: worst relative loss difference \(worst); last loss \(a.last?["loss"] ?? .nan) (f32) \(b.last?["loss"] ?? .nan) (bf16)")
    }

    /// 20 DPO steps with `bf16: true` (dpo_step_bf16, dpo_logps_bf16) follow the float32 run.
    @Test func dpoLossFollowsFloat32() throws {
        func args(_ bf16: Bool) throws -> TrainingArguments {
            try TrainingArguments.parse([
                "model_name_or_path": try #require(DPORunTests.sftModel), "output_dir": SharedFixtures.tempDir("dpo-bf16").path,
                "train_dataset_path": Demo.root + "/examples/data/dpo_train.jsonl",
                "per_device_train_batch_size": 4, "max_seq_len": 96, "max_steps": 20, "learning_rate": 3e-4, "logging_steps": 1, "seed": 5,
                "bf16": bf16,
            ], file: "dpo-args.json", task: .dpo)
        }
        let f32 = try args(false), bf16 = try args(true)
        try DPORun(args: f32).run()
        try DPORun(args: bf16).run()
        let a = try Demo.metrics(f32.outputDir).filter { $0["loss"] != nil }, b = try Demo.metrics(bf16.outputDir).filter { $0["loss"] != nil }
        #expect(a.count == 20 && b.count == 20)
        var worst = 0.0, margins = 0.0
        for (x, y) in zip(a, b) {
            worst = max(worst, Self.relative(y["loss"] ?? .nan, x["loss"] ?? .nan))
            margins = max(margins, abs((y["rewards/margins"] ?? .nan) - (x["rewards/margins"] ?? .nan)))
        }
        #expect(worst < Self.tolerance, "bf16 DPO loss: worst relative difference \(worst)")
        print("bf16 DPO, 20 steps: worst relative loss difference \(worst), worst reward-margin difference \(margins)")
    }

    /// LoRA (`lm_step_lora_bf16`): 60 SFT steps of the adapters follow the float32 run.
    @Test func loraLossCurveFollowsFloat32() throws {
        let worst = try Self.sftCurveDifference(["max_steps": 60, "learning_rate": 1e-3, "eval_steps": 0, "lora": true, "lora_rank": 4], steps: 60)
        #expect(worst < Self.tolerance, "bf16 LoRA loss curve: worst relative difference \(worst)")
        print("bf16 LoRA SFT, 60 steps: worst relative loss difference \(worst)")
    }

    /// LoRA with dropout (`lm_step_lora_dropout_bf16`: the same seed draws the same masks in
    /// both precisions) and prefix tuning (`lm_step_prefix_bf16`): 40 SFT steps follow float32.
    @Test func dropoutAndPrefixCurvesFollowFloat32() throws {
        let dropout = try Self.sftCurveDifference(["max_steps": 40, "learning_rate": 1e-3, "eval_steps": 0, "lora": true, "lora_rank": 4, "lora_dropout": 0.2], steps: 40)
        #expect(dropout < Self.tolerance, "bf16 LoRA-dropout loss curve: worst relative difference \(dropout)")
        let prefix = try Self.sftCurveDifference(["max_steps": 40, "learning_rate": 1e-2, "eval_steps": 0, "prefix_tuning": true, "num_prefix_tokens": 4], steps: 40)
        #expect(prefix < Self.tolerance, "bf16 prefix loss curve: worst relative difference \(prefix)")
        #expect(dropout > 0 && prefix > 0, "a bf16 run equal to float32 did not round its products")
        print("bf16 SFT, 40 steps: worst relative loss difference LoRA dropout \(dropout), prefix \(prefix)")
    }

    /// DPO with a prefix policy (`dpo_step_prefix_bf16`, `dpo_logps_prefix_bf16`): 10 steps follow float32.
    @Test func prefixDPOFollowsFloat32() throws {
        func args(_ bf16: Bool) throws -> TrainingArguments {
            try TrainingArguments.parse([
                "model_name_or_path": try #require(DPORunTests.sftModel), "output_dir": SharedFixtures.tempDir("dpo-prefix-bf16").path,
                "train_dataset_path": Demo.root + "/examples/data/dpo_train.jsonl", "prefix_tuning": true, "num_prefix_tokens": 4,
                "per_device_train_batch_size": 4, "max_seq_len": 96, "max_steps": 10, "learning_rate": 1e-2, "logging_steps": 1, "seed": 5,
                "bf16": bf16,
            ], file: "dpo-args.json", task: .dpo)
        }
        let f32 = try args(false), bf16 = try args(true)
        #expect(bf16.bf16 && bf16.ignoredKeys.isEmpty)
        try DPORun(args: f32).run()
        try DPORun(args: bf16).run()
        let worst = try Self.worstDifference(f32.outputDir, bf16.outputDir, steps: 10)
        #expect(worst < Self.tolerance && worst > 0, "bf16 prefix DPO loss: worst relative difference \(worst)")
        print("bf16 prefix DPO, 10 steps: worst relative loss difference \(worst)")
    }

    /// The worst relative loss difference between an SFT run with `extra` in float32 and in bf16.
    static func sftCurveDifference(_ extra: [String: Any], steps: Int) throws -> Double {
        let f32 = try Demo.args(.sft, extra)
        var on = extra; on["bf16"] = true
        let bf16 = try Demo.args(.sft, on)
        #expect(bf16.bf16 && bf16.ignoredKeys.isEmpty)
        try TrainingRun(args: f32, task: .sft).run()
        try TrainingRun(args: bf16, task: .sft).run()
        return try worstDifference(f32.outputDir, bf16.outputDir, steps: steps)
    }

    /// The worst relative difference of the logged losses of two runs (each must log `steps`).
    static func worstDifference(_ f32: String, _ bf16: String, steps: Int) throws -> Double {
        let a = try Demo.metrics(f32).filter { $0["loss"] != nil }, b = try Demo.metrics(bf16).filter { $0["loss"] != nil }
        #expect(a.count == steps && b.count == steps)
        var worst = 0.0
        for (x, y) in zip(a, b) { worst = max(worst, relative(y["loss"] ?? .nan, x["loss"] ?? .nan)) }
        return worst
    }
}

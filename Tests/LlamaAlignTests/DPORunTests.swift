import Foundation
import Testing
import GraphCompiler
import LlamaGraphs
@testable import Alignment

@Suite(.serialized) struct DPORunTests {
    /// Trains a tiny SFT model once for the DPO tests.
    static let sftModel: String? = {
        guard let pre = try? Demo.args(.pretrain, ["max_steps": 30]), (try? TrainingRun(args: pre, task: .pretrain).run()) != nil,
              let sft = try? Demo.args(.sft, ["max_steps": 30], model: pre.outputDir), (try? TrainingRun(args: sft, task: .sft).run()) != nil
        else { return nil }
        return sft.outputDir
    }()

    func dpoArgs(_ extra: [String: Any]) throws -> TrainingArguments {
        var obj: [String: Any] = [
            "model_name_or_path": DPORunTests.sftModel ?? "", "output_dir": SharedFixtures.tempDir("dpo").path,
            "train_dataset_path": Demo.root + "/examples/data/dpo_train.jsonl", "dev_dataset_path": Demo.root + "/examples/data/dpo_dev.jsonl",
            "per_device_train_batch_size": 4, "max_seq_len": 96, "max_steps": 6, "learning_rate": 3e-4, "logging_steps": 1, "seed": 5,
        ]
        for (k, v) in extra { obj[k] = v }
        return try TrainingArguments.parse(obj, file: "dpo-args.json", task: .dpo)
    }

    @Test func precomputedAndLiveReferenceRunsHaveTheSameMetrics() throws {
        let live = try dpoArgs([:]), pre = try dpoArgs(["precompute_ref_log_probs": true])
        let a = try DPORun(args: live).run(), b = try DPORun(args: pre).run()
        #expect(abs((a.evalBefore?["loss"] ?? 0) - log(2.0)) < 1e-6)
        let ma = try Demo.metrics(live.outputDir), mb = try Demo.metrics(pre.outputDir)
        #expect(ma.count == mb.count && !ma.isEmpty)
        for (x, y) in zip(ma, mb) {
            // Accuracy counts chosen > rejected; while the policy still equals the reference the
            // two rewards tie up to rounding and the two programs may round differently.
            let tied = abs(x["rewards/margins"] ?? 1) < 1e-4
            for (k, v) in x where k != "tokens_per_second" && !(tied && k == "rewards/accuracies") {
                #expect(abs(v - (y[k] ?? .nan)) <= 1e-5 * max(1, abs(v)), "\(k) at \(x["step"] ?? -1): \(v) vs \(y[k] ?? .nan)")
            }
        }
        #expect(b.steps == 6)
        // Every metric of formats.md is logged.
        for key in ["step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second", "rewards/chosen", "rewards/rejected",
                    "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected",
                    "sigmoid_loss", "sft_loss"] {
            #expect(ma.first?[key] != nil, "metrics.jsonl lacks \(key)")
        }
        // The cache is on disk, keyed by a hash, and reused by a second run.
        let files = try FileManager.default.contentsOfDirectory(atPath: pre.outputDir).filter { $0.hasPrefix("ref_logps-") }
        #expect(files.count == 1)
    }

    @Test func referenceUpdatesAndOtherReferenceModel() throws {
        let a = try dpoArgs(["ref_model_update_steps": 2, "save_steps": 2])
        try DPORun(args: a).run()
        #expect(FileManager.default.fileExists(atPath: a.outputDir + "/checkpoint-2/reference/model.safetensors"))
        let b = try dpoArgs(["ref_model_name_or_path": Demo.root + "/examples/tiny-model-missing"])
        #expect(throws: (any Error).self) { try DPORun(args: b).run() }
        let c = try dpoArgs(["reference_free": true, "loss_type": ["simpo"]])
        let s = try DPORun(args: c).run()
        #expect(s.lastTrain?["simpo_loss"].map { $0.isFinite } == true)
    }

    @Test func quickstartReachesHighHeldOutRewardAccuracy() throws {
        let out = SharedFixtures.tempDir("qs").path
        guard let r = try CLI.run(["quickstart", "--examples", Demo.root + "/examples", "--output", out]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.contains("reward accuracy") })
        let nums = line.split(separator: " ").compactMap { Double($0) }
        #expect(nums.count == 2 && nums[1] >= 0.9 && nums[1] > nums[0], "\(line)")
    }

    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin"), "needs ../shared"))
    func evalOnPreferenceDataReproducesTheInterpreter() throws {
        let model = try SharedFixtures.require("models/stories260K.bin")
        let w = try Llama2cCheckpoint.load(path: model)
        // A reference that differs: the same model with its final norm scaled.
        var r = w
        r.tensors["final_norm"] = r.tensors["final_norm"]?.map { $0 * 0.9 }
        let refPath = SharedFixtures.tempDir("ref").appendingPathComponent("ref.bin").path
        try Llama2cCheckpoint.write(r, to: refPath)
        let pairs = [PreferencePair(prompt: [1, 461, 401], chosen: [378, 455, 473, 2], rejected: [299, 2]),
                     PreferencePair(prompt: [1, 283, 264, 283], chosen: [13, 431], rejected: [409, 283, 264])]
        let path = try jsonlFile(pairs.map { "{\"prompt_ids\": \($0.prompt), \"chosen_ids\": \($0.chosen), \"rejected_ids\": \($0.rejected)}" })
        guard let out = try CLI.run(["eval", "--model", model, "--reference", refPath, "--data", path, "--beta", "0.2", "--json"]) else { return }
        #expect(out.status == 0, "\(out.stderr)")
        let got = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Double])
        // Double: both models' sequence log-probs through the interpreter, then the sigmoid loss.
        func logps(_ weights: LlamaWeights) throws -> (c: [Double], r: [Double]) {
            let b = PairBatch(pairs, pad: 2), c = weights.config
            var params: [String: HostTensor] = [:]
            for (n, shape) in c.parameterShapes { params[n] = HostTensor(shape: shape, data: (weights.tensors[n] ?? []).map(Double.init)) }
            params["lm_head"] = params["embed"]
            let given = b.programInputs
            let chunking = LlamaSizes(config: c, batch: b.batch, seq: b.seq, scored: given.scored).chunking
            func shape(_ name: String) -> [Int] { ["ids", "positions", "segments"].contains(name) ? [b.batch, b.seq] : [chunking.chunks, chunking.rows] }
            var inputs = given.ints.reduce(into: [String: HostTensor]()) { $0[$1.key] = HostTensor(shape: shape($1.key), data: $1.value.map(Double.init)) }
            for (n, v) in given.floats { inputs[n] = HostTensor(shape: shape(n), data: v.map(Double.init)) }
            inputs["norm_eps"] = HostTensor(shape: [], data: [Double(c.normEps)]); inputs["rope_theta"] = HostTensor(shape: [], data: [Double(c.ropeTheta)])
            let res = try ReferenceInterpreter.run(try LlamaDPOPrograms.sequenceLogps(),
                sizes: LlamaSizes(config: c, batch: b.batch, seq: b.seq, scored: given.scored).bindings,
                inputs: inputs, params: params)
            return (res.outputs["logps_chosen"]?.data ?? [], res.outputs["logps_rejected"]?.data ?? [])
        }
        let p = try logps(w), q = try logps(r)
        let beta = 0.2
        var loss = 0.0, rc = 0.0, rr = 0.0, acc = 0.0
        for i in 0..<pairs.count {
            let a = beta * (p.c[i] - q.c[i]), b = beta * (p.r[i] - q.r[i])
            loss += -DPOReference.logSigmoid(a - b); rc += a; rr += b; acc += a > b ? 1 : 0
        }
        let n = Double(pairs.count)
        let want = ["loss": loss / n, "rewards/chosen": rc / n, "rewards/rejected": rr / n, "rewards/accuracies": acc / n,
                    "logps/chosen": p.c.reduce(0, +) / n, "logps/rejected": p.r.reduce(0, +) / n]
        for (k, v) in want { #expect(abs((got[k] ?? .nan) - v) <= 1e-5 * max(1, abs(v)), "\(k): \(got[k] ?? .nan) vs \(v)") }
    }
}

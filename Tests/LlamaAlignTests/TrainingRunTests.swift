import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
@testable import Alignment

@Suite(.serialized) struct TrainingRunTests {
    @Test func pretrainHalvesTheLossThenSFTLowersEvalLoss() throws {
        let pre = try Demo.args(.pretrain)
        let s = try TrainingRun(args: pre, task: .pretrain).run()
        let first = try #require(s.firstLoss), last = try #require(s.lastLoss)
        #expect(last <= first / 2, "pretrain loss \(first) → \(last)")
        let sft = try Demo.args(.sft, model: pre.outputDir)
        let r = try TrainingRun(args: sft, task: .sft).run()
        let before = try #require(r.evalLossBefore), after = try #require(r.evalLoss)
        #expect(after < before, "eval loss \(before) → \(after)")
        // The final model and a loadable checkpoint are in place.
        #expect(FileManager.default.fileExists(atPath: sft.outputDir + "/model.safetensors"))
        #expect(TrainingCheckpoint.latest(in: sft.outputDir)?.hasSuffix("checkpoint-40") == true)
    }

    @Test func checkpointRoundTripIsBitExact() throws {
        let c = LlamaConfig(dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKVHeads: 2, vocabSize: 259, maxSeqLen: 32)
        let trainer = try LMTrainer(parameters: ParameterStore(weights: LlamaWeights.random(config: c, seed: 1)))
        _ = try trainer.trainStep([syntheticBatch(batch: 2, seq: 6, v: 259, seed: 1)], lr: 1e-3)
        let dir = SharedFixtures.tempDir("ckpt").path
        let state = TrainerState(step: 1, epoch: 0.5, seed: 3, loader: LoaderState(epoch: 0, position: 2))
        try TrainingCheckpoint.save(outputDir: dir, step: 1, weights: trainer.parameters.weights(), optimizer: trainer.optimizerState(),
                                    state: state, tokenizerFiles: [], keep: nil)
        let back = try TrainingCheckpoint.load(dir + "/checkpoint-1")
        #expect(back.weights?.tensors == trainer.parameters.weights().tensors)
        #expect(back.optimizer == trainer.optimizerState())
        #expect(back.state == state)
        // save_total_limit keeps the newest checkpoints only.
        for step in 2...4 {
            try TrainingCheckpoint.save(outputDir: dir, step: step, weights: trainer.parameters.weights(), optimizer: trainer.optimizerState(),
                                        state: state, tokenizerFiles: [], keep: 2)
        }
        #expect(TrainingCheckpoint.all(in: dir).map(\.step) == [3, 4])
    }

    @Test func interruptedRunResumesOnTheSameTrajectory() throws {
        try KernelThreadsLock.held {
            let extra: [String: Any] = ["max_steps": 16, "save_steps": 5, "eval_steps": 8]
            let whole = try Demo.args(.sft, extra)
            try TrainingRun(args: whole, task: .sft).run()
            var cut = try Demo.args(.sft, extra)
            var first = TrainingRun(args: cut, task: .sft)
            first.stopAfter = 12   // "killed" after step 12; the newest checkpoint is step 10
            try first.run()
            #expect(TrainingCheckpoint.latest(in: cut.outputDir)?.hasSuffix("checkpoint-10") == true)
            try TrainingRun(args: cut, task: .sft).run()
            let a = try Demo.metrics(whole.outputDir), b = try Demo.metrics(cut.outputDir)
            #expect(a.count == b.count)
            for (x, y) in zip(a, b) {
                for key in ["step", "loss", "grad_norm", "learning_rate", "epoch", "eval_loss"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
            }
            cut.outputDir = ""
        }
    }

    /// `num_threads` in the argument file sizes the kernels' OpenMP team (and OpenBLAS's pool,
    /// set in the same call); the same run with one thread gives the same losses.
    @Test func numThreadsSetsTheKernelThreads() throws {
        try KernelThreadsLock.held {
            let cores = KernelThreads.current
            defer { KernelThreads.set(cores) }
            let one = try Demo.args(.pretrain, ["max_steps": 3, "num_threads": 1])
            try TrainingRun(args: one, task: .pretrain).run()
            #expect(KernelThreads.current == 1)
            KernelThreads.set(cores)
            let all = try Demo.args(.pretrain, ["max_steps": 3])
            try TrainingRun(args: all, task: .pretrain).run()
            let a = try Demo.metrics(one.outputDir), b = try Demo.metrics(all.outputDir)
            #expect(a.count == 3 && a.count == b.count)
            for (x, y) in zip(a, b) { #expect(abs((x["loss"] ?? 0) - (y["loss"] ?? 1)) < 1e-4) }
        }
    }

    @Test func badInputsFailCleanlyAndLeaveNoCheckpoint() throws {
        // Malformed data: the error names file and line; nothing is written.
        let bad = try jsonlFile([#"{"src": "a", "tgt": "b"}"#, #"{"src": "a", "tgt": 5}"#])
        let a = try Demo.args(.sft, ["train_dataset_path": bad])
        do { try TrainingRun(args: a, task: .sft).run(); Issue.record("expected an error") } catch {
            #expect("\(error)".contains(bad + ":2") && "\(error)".contains("field 'tgt'"))
        }
        #expect(TrainingCheckpoint.all(in: a.outputDir).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: a.outputDir)) ?? []).allSatisfy { !$0.hasPrefix("checkpoint") && !$0.hasPrefix(".checkpoint") })
        // An output_dir that cannot be created.
        let b = try Demo.args(.sft, ["output_dir": "/dev/null/run"])
        do { try TrainingRun(args: b, task: .sft).run(); Issue.record("expected an error") } catch {
            #expect("\(error)".contains("/dev/null/run"))
        }
    }

    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin"), "needs ../shared"))
    func evalReproducesTheReferenceInterpreter() throws {
        let model = try SharedFixtures.require("models/stories260K.bin")
        let rows = [[1, 461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435], [1, 299, 362, 409, 283, 264, 283, 452, 288, 13, 431, 431]]
        let path = try jsonlFile(rows.map { "{\"input_ids\": \($0)}" }, name: "ids.jsonl")
        guard let r = try CLI.run(["eval", "--model", model, "--data", path, "--json"]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let got = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["loss"] as? Double)
        // The same mean next-token loss in Double through the interpreter.
        let w = try Llama2cCheckpoint.load(path: model)
        let c = w.config
        var params: [String: HostTensor] = [:]
        for (name, shape) in c.parameterShapes { params[name] = HostTensor(shape: shape, data: (w.tensors[name] ?? []).map(Double.init)) }
        params["lm_head"] = params["embed"]
        let b = rows.count, t = rows[0].count
        let ids = rows.flatMap { $0 }.map(Double.init)
        let targets = rows.flatMap { Array($0.dropFirst()) + [0] }.map(Double.init)
        // Every position scored, in one chunk.
        let out = try ReferenceInterpreter.run(try LlamaTrainingPrograms.evalLoss(),
            sizes: LlamaSizes(config: c, batch: b, seq: t, scored: b * t, chunkRows: b * t).bindings,
            inputs: ["ids": HostTensor(shape: [b, t], data: ids), "targets": HostTensor(shape: [1, b * t], data: targets),
                     "scored": HostTensor(shape: [1, b * t], data: (0 ..< b * t).map(Double.init)),
                     "nll": HostTensor(shape: [1, b * t], data: Array(repeating: 0, count: b * t)),
                     "norm_eps": HostTensor(shape: [], data: [Double(c.normEps)]), "rope_theta": HostTensor(shape: [], data: [Double(c.ropeTheta)])],
            params: params)
        let nll = try #require(out.mutated["nll"]).data
        var sum = 0.0, n = 0
        for row in 0..<b { for pos in 0..<(t - 1) { sum += nll[row * t + pos]; n += 1 } }
        #expect(abs(got - sum / Double(n)) <= 1e-5 * abs(sum / Double(n)), "\(got) vs \(sum / Double(n))")
    }
}

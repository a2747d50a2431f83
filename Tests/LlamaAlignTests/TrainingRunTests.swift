import Foundation
import Testing
import GraphCompiler
import KernelRuntime
import LlamaGraphs
@testable import Alignment

/// Argument files over the bundled demo (paths absolute, output in a fresh temp folder).
enum Demo {
    static let root = SharedFixtures.projectRoot.path

    static func args(_ task: TrainingArguments.Task, _ extra: [String: Any] = [:], model: String? = nil) throws -> TrainingArguments {
        var obj: [String: Any] = [
            "model_name_or_path": model ?? root + "/examples/tiny-model",
            "output_dir": SharedFixtures.tempDir("run").path,
            "per_device_train_batch_size": 8, "max_seq_len": 96, "seed": 3, "logging_steps": 1,
        ]
        switch task {
        case .pretrain:
            obj["train_dataset_path"] = root + "/examples/data/pretrain.jsonl"
            obj["learning_rate"] = 3e-3; obj["max_steps"] = 60; obj["warmup_steps"] = 5
        default:
            obj["train_dataset_path"] = root + "/examples/data/sft_train.jsonl"
            obj["dev_dataset_path"] = root + "/examples/data/sft_dev.jsonl"
            obj["learning_rate"] = 2e-3; obj["max_steps"] = 40
        }
        for (k, v) in extra { obj[k] = v }
        return try TrainingArguments.parse(obj, file: "test-args.json", task: task)
    }

    static func metrics(_ dir: String) throws -> [[String: Double]] {
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.doubleValue }
        }
    }
}

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
        #expect(back.weights.tensors == trainer.parameters.weights().tensors)
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

    /// `num_threads` in the argument file sizes the kernels' OpenMP team (and OpenBLAS's pool,
    /// set in the same call); the same run with one thread gives the same losses.
    @Test func numThreadsSetsTheKernelThreads() throws {
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

    @Test func evalReproducesTheReferenceInterpreter() throws {
        guard let model = SharedFixtures.path("models/stories260K.bin") else { return }
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
        let out = try ReferenceInterpreter.run(try LlamaTrainingPrograms.evalLoss(),
            sizes: ["B": b, "T": t, "L": c.nLayers, "KVH": c.nKVHeads, "REP": c.nHeads / c.nKVHeads, "HD2": c.headDim / 2, "F": c.hiddenDim, "V": c.vocabSize],
            inputs: ["ids": HostTensor(shape: [b, t], data: ids), "targets": HostTensor(shape: [b, t], data: targets),
                     "norm_eps": HostTensor(shape: [], data: [Double(c.normEps)]), "rope_theta": HostTensor(shape: [], data: [Double(c.ropeTheta)])],
            params: params)
        let nll = try #require(out.outputs["nll"]).data
        var sum = 0.0, n = 0
        for row in 0..<b { for pos in 0..<(t - 1) { sum += nll[row * t + pos]; n += 1 } }
        #expect(abs(got - sum / Double(n)) <= 1e-5 * abs(sum / Double(n)), "\(got) vs \(sum / Double(n))")
    }
}

@Suite struct TrainingCLITests {
    func argsFile(_ extra: [String: Any]) throws -> (path: String, output: String) {
        var obj: [String: Any] = [
            "model_name_or_path": Demo.root + "/examples/tiny-model",
            "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
            "output_dir": SharedFixtures.tempDir("cli-run").path,
            "per_device_train_batch_size": 4, "max_seq_len": 64, "max_steps": 240, "save_steps": 20,
            "learning_rate": 1e-3, "logging_steps": 1, "seed": 11,
        ]
        for (k, v) in extra { obj[k] = v }
        let url = SharedFixtures.tempDir("cli-args").appendingPathComponent("args.json")
        try JSONSerialization.data(withJSONObject: obj).write(to: url)
        return (url.path, obj["output_dir"] as? String ?? "")
    }

    @Test func killedRunResumesOnTheSameTrajectory() throws {
        guard let exe = CLI.executable else { print("note: skipping, llama-align is not built"); return }
        let whole = try argsFile([:]), cut = try argsFile([:])
        guard let r = try CLI.run(["sft", whole.path]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        // Start the same run, kill it with SIGKILL once a checkpoint exists, then run it again.
        let p = Process()
        p.executableURL = exe
        p.arguments = ["sft", cut.path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while TrainingCheckpoint.latest(in: cut.output) == nil && Date() < deadline && p.isRunning { usleep(20_000) }
        let killedMidway = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        guard let again = try CLI.run(["sft", cut.path]) else { return }
        #expect(again.status == 0, "\(again.stderr)")
        #expect(killedMidway, "the run finished before it could be killed")
        #expect(again.stderr.contains("resuming from"))
        let a = try Demo.metrics(whole.output), b = try Demo.metrics(cut.output)
        #expect(a.count == b.count && !a.isEmpty)
        for (x, y) in zip(a, b) {
            for key in ["step", "loss", "grad_norm", "learning_rate", "epoch"] { #expect(x[key] == y[key], "\(key) at step \(x["step"] ?? -1)") }
        }
    }

    @Test func unknownKeyIsOneLineWithASuggestion() throws {
        let f = try argsFile(["num_train_epoch": 2])
        guard let r = try CLI.run(["sft", f.path]) else { return }
        #expect(r.status != 0)
        #expect(r.stderr.contains("num_train_epoch") && r.stderr.contains("did you mean 'num_train_epochs'?"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: f.output + "/checkpoint-20"))
    }
}

@Suite struct ProfilerTests {
    @Test func profileWritesAValidChromeTraceWithOneEventPerKernelCall() throws {
        let dir = SharedFixtures.tempDir("prof")
        let args = dir.appendingPathComponent("args.json")
        let obj: [String: Any] = ["model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
                                  "output_dir": dir.appendingPathComponent("out").path, "per_device_train_batch_size": 4, "max_seq_len": 64]
        try JSONSerialization.data(withJSONObject: obj).write(to: args)
        let trace = dir.appendingPathComponent("trace.json").path, svg = dir.appendingPathComponent("top.svg").path
        guard let r = try CLI.run(["profile", args.path, "--steps", "2", "--trace", trace, "--svg", svg]) else { return }
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])
        let events = try #require(json["traceEvents"] as? [[String: Any]])
        // The table's calls add up to the number of trace events; every event is a complete span.
        let tableCalls = r.stdout.split(separator: "\n").filter { $0.contains("_k") }.compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }.reduce(0, +)
        #expect(events.count == tableCalls && tableCalls > 0, "\(events.count) events, \(tableCalls) calls in the table")
        #expect(events.allSatisfy { ($0["ph"] as? String) == "X" && (($0["dur"] as? Double) ?? -1) >= 0 && $0["name"] is String })
        // Every lm_step kernel of a layer appears once per layer and step (3 layers × 2 steps).
        let perKernel = Dictionary(grouping: events.compactMap { $0["name"] as? String }, by: { $0 }).mapValues(\.count)
        #expect(perKernel.filter { $0.key.contains("rmsnorm") && $0.key.hasPrefix("lm_step") }.values.contains(6))
        let chart = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(chart.hasPrefix("<svg") && chart.contains("<rect"))
    }
}

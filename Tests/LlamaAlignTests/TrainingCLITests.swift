import Foundation
import Testing
@testable import Alignment

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

/// Running again in a finished `output_dir` (the common "continue with more steps" flow) keeps
/// every file: the final save replaces the tokenizer by rename, never removing it first.
@Suite struct RerunTests {
    @Test func rerunningAFinishedRunKeepsTheTokenizerAndContinues() throws {
        let out = SharedFixtures.tempDir("rerun").path
        func args(_ steps: Int) throws -> String {
            let obj: [String: Any] = [
                "model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
                "output_dir": out, "per_device_train_batch_size": 2, "max_seq_len": 32, "max_steps": steps, "save_steps": 2,
                "logging_steps": 1, "seed": 5,
            ]
            let url = SharedFixtures.tempDir("rerun-args").appendingPathComponent("args.json")
            try JSONSerialization.data(withJSONObject: obj).write(to: url)
            return url.path
        }
        let three = try args(3), five = try args(5)
        guard let first = try CLI.run(["sft", three]) else { return }
        #expect(first.status == 0, "\(first.stderr)")
        let tokenizer = out + "/tokenizer.byte"
        let original = try Data(contentsOf: URL(fileURLWithPath: tokenizer))
        for file in [three, three, five] {
            guard let r = try CLI.run(["sft", file]) else { return }
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: tokenizer)) == original)
        }
        #expect(try Demo.metrics(out).compactMap { $0["step"] }.map(Int.init) == [1, 2, 3, 4, 5])
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: out)).contains { $0.contains(".tmp") })
        // What a save killed mid-rename leaves is removed at the next start, with a note.
        let stale = out + "/.checkpoint-7.tmp-0badf00d"
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: stale + "/model.safetensors"))
        guard let again = try CLI.run(["sft", five]) else { return }
        #expect(again.status == 0 && again.stderr.contains("removed \(stale)"), "\(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale))
    }
}

/// Two runs on one `output_dir` are kept apart: the second fails at once naming the first.
@Suite struct OutputDirLockTests {
    @Test func aSecondRunOnTheSameOutputDirFailsAtOnce() throws {
        guard let exe = CLI.executable else { return }
        let out = SharedFixtures.tempDir("locked").path
        let obj: [String: Any] = [
            "model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
            "output_dir": out, "per_device_train_batch_size": 2, "max_seq_len": 32, "max_steps": 100_000, "save_steps": 0,
            "logging_steps": 1, "seed": 5,
        ]
        let args = SharedFixtures.tempDir("locked-args").appendingPathComponent("args.json")
        try JSONSerialization.data(withJSONObject: obj).write(to: args)
        let first = Process()
        first.executableURL = exe
        first.arguments = ["sft", args.path]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out + "/metrics.jsonl") && Date() < deadline && first.isRunning { usleep(20_000) }
        #expect(first.isRunning, "the first run ended early")
        let t0 = Date()
        guard let second = try CLI.run(["sft", args.path]) else { return }
        #expect(second.status != 0)
        #expect(second.stderr.contains("in use by another run") && second.stderr.contains("pid \(first.processIdentifier)"), "\(second.stderr)")
        #expect(Date().timeIntervalSince(t0) < 10)
        // Every step in metrics.jsonl once: only the first run wrote it.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let steps = try Demo.metrics(out).compactMap { $0["step"] }
        #expect(steps == Array(1...steps.count).map(Double.init))
    }
}

/// SIGINT/SIGTERM: the run finishes its step, writes a checkpoint, says so and exits ≠ 0;
/// running again continues from that checkpoint.
@Suite struct SignalTests {
    @Test(arguments: [SIGINT, SIGTERM]) func aSignalStopsAfterTheStepWithACheckpoint(signal: Int32) throws {
        guard let exe = CLI.executable else { return }
        let out = SharedFixtures.tempDir("signal").path
        let obj: [String: Any] = [
            "model_name_or_path": Demo.root + "/examples/tiny-model", "train_dataset_path": Demo.root + "/examples/data/sft_train.jsonl",
            "output_dir": out, "per_device_train_batch_size": 2, "max_seq_len": 32, "max_steps": 100_000, "save_steps": 0,
            "logging_steps": 1, "seed": 5,
        ]
        let args = SharedFixtures.tempDir("signal-args").appendingPathComponent("args.json")
        try JSONSerialization.data(withJSONObject: obj).write(to: args)
        let p = Process()
        p.executableURL = exe
        p.arguments = ["sft", args.path]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while (try? Demo.metrics(out).count) ?? 0 < 2 && Date() < deadline && p.isRunning { usleep(20_000) }
        kill(p.processIdentifier, signal)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        #expect(stderr.contains("\(name) received: finished step"), "\(stderr)")
        let latest = try #require(TrainingCheckpoint.latest(in: out))
        let step = Int(latest.split(separator: "-").last ?? "") ?? 0
        let lastLogged = try Demo.metrics(out).last?["step"] ?? 0
        #expect(step >= 2 && Int(lastLogged) == step)
        let resumed = try TrainingCheckpoint.load(latest)
        #expect(resumed.state.step == step)
    }
}

/// Integers in user files are read exactly through every command: an id that does not fit is an
/// error naming the file, the line, the field and the value as written (never a wrapped id).
@Suite struct ExactIntegerCLITests {
    @Test func hugeTokenIdsAreErrorsThroughTheCLI() throws {
        let dir = SharedFixtures.tempDir("exact-ids").path
        let rows = dir + "/rows.jsonl"
        try "{\"input_ids\": [1, 5, 9]}\n{\"input_ids\": [1, 4294967301, 3]}\n".write(toFile: rows, atomically: true, encoding: .utf8)
        let pairs = dir + "/pairs.jsonl"
        try "{\"prompt_ids\": [1, 4], \"chosen_ids\": [5, 99999999999999999999], \"rejected_ids\": [6, 2]}\n"
            .write(toFile: pairs, atomically: true, encoding: .utf8)
        let model = dir + "/model"
        try HFCheckpoint.save(LlamaWeights.random(config: LlamaConfig(dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKVHeads: 1,
                                                                      vocabSize: 300, maxSeqLen: 64), seed: 1), to: model)
        try Data().write(to: URL(fileURLWithPath: model + "/tokenizer.byte"))
        func args(_ task: String, _ data: String) throws -> String {
            let obj: [String: Any] = ["model_name_or_path": model, "train_dataset_path": data, "output_dir": dir + "/out-\(task)",
                                      "max_steps": 1, "seed": 1, "max_seq_len": 32]
            let path = dir + "/\(task).json"
            try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: path))
            return path
        }
        let runs: [([String], String, String)] = [
            (["pretrain", try args("pretrain", rows)], rows, "4294967301"),
            (["sft", try args("sft", rows)], rows, "4294967301"),
            (["dpo", try args("dpo", pairs)], pairs, "99999999999999999999"),
        ]
        for (command, file, value) in runs {
            guard let r = try CLI.run(command) else { return }
            #expect(r.status != 0 && r.stderr.contains(file) && r.stderr.contains(value), "\(command[0]): \(r.stderr)")
        }
        let seed = dir + "/seed.json"
        try #"{"model_name_or_path": "m", "output_dir": "o", "seed": 1180591620717411303424}"#.write(toFile: seed, atomically: true, encoding: .utf8)
        guard let s = try CLI.run(["sft", seed]) else { return }
        #expect(s.status != 0 && s.stderr.contains("seed"), "\(s.stderr)")
    }
}

import Foundation
import Testing
@testable import Alignment

/// `mpirun -np 2 llama-align pretrain|sft|dpo` against one rank accumulating the same
/// micro-batches: same per-step metrics and final weights (to float rounding), bit-identical
/// reruns, resuming across rank counts, and a killed rank ending the job.
@Suite(.serialized, .enabled(if: MPIRun.available, "needs Open MPI (mpirun, libmpi.so.40) and the built executable"))
struct DataParallelTests {
    static let root = SharedFixtures.projectRoot.path

    /// Writes an argument file for `task` into a fresh folder and returns (file, output_dir).
    func argsFile(_ task: String, accumulation: Int, _ extra: [String: Any] = [:]) throws -> (file: String, out: String) {
        let dir = SharedFixtures.tempDir("dp-\(task)")
        let out = dir.appendingPathComponent("out").path
        var obj: [String: Any] = [
            "model_name_or_path": Self.root + "/examples/tiny-model", "output_dir": out,
            "per_device_train_batch_size": 4, "gradient_accumulation_steps": accumulation, "max_seq_len": 64,
            "max_steps": 4, "learning_rate": 2e-3, "lr_scheduler_type": "constant", "logging_steps": 1,
            "eval_steps": 2, "save_steps": 2, "seed": 5, "num_threads": 1,
        ]
        switch task {
        case "pretrain": obj["train_dataset_path"] = Self.root + "/examples/data/pretrain.jsonl"
        case "dpo":
            obj["train_dataset_path"] = Self.root + "/examples/data/dpo_train.jsonl"
            obj["dev_dataset_path"] = Self.root + "/examples/data/dpo_dev.jsonl"
            obj["max_seq_len"] = 96
        default:
            obj["train_dataset_path"] = Self.root + "/examples/data/sft_train.jsonl"
            obj["dev_dataset_path"] = Self.root + "/examples/data/sft_dev.jsonl"
        }
        for (k, v) in extra { obj[k] = v }
        let file = dir.appendingPathComponent("args.json").path
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: file))
        return (file, out)
    }

    /// Runs `task` with `np` ranks (np = 1 runs without mpirun) and returns its output_dir.
    @discardableResult
    func train(_ task: String, np: Int, accumulation: Int, _ extra: [String: Any] = [:]) throws -> String {
        let (file, out) = try argsFile(task, accumulation: accumulation, extra)
        let r = np == 1 ? try CLI.run([task, file]) : try MPIRun.run(np: np, [task, file])
        let status = r?.status ?? -1
        #expect(status == 0, "\(task) with \(np) ranks: \(r?.stderr ?? "")")
        return out
    }

    /// Metric rows without the wall-clock ones.
    func metrics(_ dir: String) throws -> [[String: Double]] {
        try Demo.metrics(dir).map { $0.filter { $0.key != "tokens_per_second" } }
    }

    /// Expects the same keys per row and values within `tolerance` relative (absolute near 0).
    func expectClose(_ a: [[String: Double]], _ b: [[String: Double]], tolerance: Double = 1e-6) {
        #expect(a.count == b.count && !a.isEmpty)
        for (x, y) in zip(a, b) {
            #expect(Set(x.keys) == Set(y.keys))
            for (k, v) in x {
                let w = y[k] ?? .nan
                #expect(abs(v - w) <= tolerance * max(1, abs(v)), "step \(x["step"] ?? -1) \(k): \(v) vs \(w)")
            }
        }
    }

    /// Largest |a − b| over every tensor, relative to the largest |a|.
    func weightDifference(_ a: String, _ b: String) throws -> Double {
        let x = try loadModel(path: a), y = try loadModel(path: b)
        var diff: Float = 0, scale: Float = 0
        for (name, t) in x.tensors {
            let u = try #require(y.tensors[name])
            for (p, q) in zip(t, u) { diff = max(diff, abs(p - q)); scale = max(scale, abs(p)) }
        }
        return Double(diff / max(scale, 1e-30))
    }

    @Test("SFT: 2 ranks × 1 micro-batch take one rank's steps over 2 accumulated micro-batches")
    func sftMatchesAccumulation() throws {
        let one = try train("sft", np: 1, accumulation: 2)
        let two = try train("sft", np: 2, accumulation: 1)
        expectClose(try metrics(one), try metrics(two))
        #expect(try weightDifference(one, two) <= 1e-6)
        // Rank 0 alone wrote the checkpoints.
        #expect(FileManager.default.fileExists(atPath: two + "/checkpoint-2/trainer_state.json"))
    }

    @Test("SFT with LoRA dropout and LoRA+: 2 ranks draw the masks one rank accumulating 2 draws")
    func loraDropoutMatchesAccumulation() throws {
        let lora: [String: Any] = ["lora": true, "lora_rank": 4, "lora_dropout": 0.3, "lora_plus_scale": 2]
        let one = try train("sft", np: 1, accumulation: 2, lora)
        let two = try train("sft", np: 2, accumulation: 1, lora)
        expectClose(try metrics(one), try metrics(two))
    }

    @Test("Pretraining: 2 ranks match one rank accumulating 2")
    func pretrainMatchesAccumulation() throws {
        let one = try train("pretrain", np: 1, accumulation: 2)
        let two = try train("pretrain", np: 2, accumulation: 1)
        expectClose(try metrics(one), try metrics(two))
        #expect(try weightDifference(one, two) <= 1e-6)
    }

    @Test("The same 2-rank run twice: bit-identical metrics and weights")
    func rerunIsBitIdentical() throws {
        let a = try train("sft", np: 2, accumulation: 1), b = try train("sft", np: 2, accumulation: 1)
        #expect(try metrics(a) == metrics(b))
        let wa = FileManager.default.contents(atPath: a + "/model.safetensors"), wb = FileManager.default.contents(atPath: b + "/model.safetensors")
        #expect(wa != nil && wa == wb)
    }

    @Test("A checkpoint written by 2 ranks resumes with 1 rank on the same trajectory")
    func resumeAcrossRankCounts() throws {
        let whole = try train("sft", np: 1, accumulation: 2)
        // 2 ranks stop after step 2 (max_steps 2 saves checkpoint-2); 1 rank continues to step 4.
        let (file2, out) = try argsFile("sft", accumulation: 1, ["max_steps": 2])
        let first = try MPIRun.run(np: 2, ["sft", file2])
        #expect(first.status == 0, "\(first.stderr)")
        var obj = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file2))) as? [String: Any])
        obj["gradient_accumulation_steps"] = 2; obj["max_steps"] = 4
        let file1 = (file2 as NSString).deletingLastPathComponent + "/resume.json"
        try JSONSerialization.data(withJSONObject: obj).write(to: URL(fileURLWithPath: file1))
        let second = try #require(try CLI.run(["sft", file1]))
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("resuming from"))
        expectClose(try metrics(whole).filter { ($0["step"] ?? 0) > 2 }, try metrics(out).filter { ($0["step"] ?? 0) > 2 })
        #expect(try weightDifference(whole, out) <= 1e-6)
    }

    @Test("DPO, live and precomputed reference: 2 ranks match one rank accumulating 2")
    func dpoMatchesAccumulation() throws {
        let sft = try train("sft", np: 1, accumulation: 1, ["max_steps": 2])
        for precompute in [false, true] {
            let extra: [String: Any] = ["model_name_or_path": sft, "precompute_ref_log_probs": precompute]
            let one = try train("dpo", np: 1, accumulation: 2, extra)
            let two = try train("dpo", np: 2, accumulation: 1, extra)
            let m1 = try metrics(one), m2 = try metrics(two)
            expectClose(m1, m2)
            #expect(m1.contains { $0["rewards/margins"] != nil } && m1.contains { $0["eval_rewards/accuracies"] != nil })
            #expect(try weightDifference(one, two) <= 1e-6)
            if precompute {
                // The reference log-probs, computed shard-wise and gathered, fill the same cache file.
                let files = { (d: String) in try FileManager.default.contentsOfDirectory(atPath: d).filter { $0.hasPrefix("ref_logps-") } }
                let (f1, f2) = (try files(one), try files(two))
                #expect(f1.count == 1 && f1 == f2)
                if let name = f1.first {
                    let read = { (d: String) in try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/" + name))) as? NSDictionary }
                    let (c1, c2) = (try read(one), try read(two))
                    #expect(c1 != nil && c1 == c2)
                }
            }
        }
    }

    /// A 2-rank SFT run far too long to finish, once rank 0 has logged a step: mpirun, its two
    /// ranks' process ids, the output folder and the pipes (the caller ends the job).
    func runningJob() throws -> (job: Process, ranks: [Int32], out: String, stdout: Pipe, stderr: Pipe) {
        let (file, out) = try argsFile("sft", accumulation: 1, ["max_steps": 100_000, "eval_steps": 0, "save_steps": 0])
        let stdout = Pipe(), stderr = Pipe()
        let job = try MPIRun.start(np: 2, ["sft", file], stdout: stdout, stderr: stderr)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.isEmpty ?? true { usleep(100_000) }
        return (job, try ranksOf(job.processIdentifier), out, stdout, stderr)
    }

    /// Waits up to 30 s for `job` to end; false if it is still running.
    func ends(_ job: Process) -> Bool {
        let since = Date()
        while job.isRunning, Date().timeIntervalSince(since) < 30 { usleep(100_000) }
        return !job.isRunning
    }

    @Test("A rank killed mid-run ends the job non-zero within 30 s, naming the rank")
    func killedRankEndsTheJob() throws {
        let (job, ranks, _, stdout, stderr) = try runningJob()
        defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }
        #expect(ranks.count == 2)
        kill(try #require(ranks.last), SIGKILL)
        guard ends(job) else { Issue.record("mpirun still running 30 s after a rank was killed"); return }
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            + String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(job.terminationStatus != 0)
        #expect(message.contains("rank") && message.contains("signal 9"), "\(message)")
    }

    @Test("SIGTERM to one rank: every rank stops at the same step, rank 0 saves it, the message is printed once")
    func sigtermSavesOneCheckpoint() throws {
        let (job, ranks, out, _, stderr) = try runningJob()
        defer { if job.isRunning { kill(job.processIdentifier, SIGKILL) } }
        // mpirun forwards a SIGTERM it gets to every rank; here only one rank gets one (Foundation's
        // Process starts mpirun with the signal blocked), which is the harder case.
        #expect(ranks.count == 2)
        kill(try #require(ranks.last), SIGTERM)
        guard ends(job) else { Issue.record("mpirun still running 30 s after SIGTERM"); return }
        let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(message.components(separatedBy: "SIGTERM received").count == 2, "\(message)")
        let saved = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("checkpoint-") }
        #expect(saved.count == 1)
        if let c = saved.first { #expect(FileManager.default.fileExists(atPath: out + "/" + c + "/trainer_state.json")) }
    }

    /// The llama-align processes mpirun started (its children, read from /proc).
    func ranksOf(_ pid: Int32) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let comm = stat.split(separator: "(").dropFirst().first.map(String.init) ?? ""
            return fields.count > 2 && Int32(fields[1]) == pid && comm.hasPrefix("llama-align")
        }.sorted()
    }
}

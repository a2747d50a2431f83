import Foundation
import Testing
@testable import Alignment

/// Saved folders are complete Hugging Face folders; `trainer_state.json` is in Hugging Face's
/// layout; `report_to: tensorboard` writes event files; `plot` draws the curves.
@Suite(.serialized) struct HFFolderTests {
    static let fixtures = SharedFixtures.projectRoot.appendingPathComponent("Tests/LlamaAlignTests/Fixtures/hf_folder").path

    /// A two-step SFT run of the byte-level demo model with a checkpoint each step, an eval and TensorBoard.
    func run() throws -> TrainingArguments {
        let args = try Demo.args(.sft, ["max_steps": 2, "save_steps": 1, "eval_steps": 1, "report_to": ["tensorboard", "wandb"]])
        var r = TrainingRun(args: args, task: .sft)
        let notes = NotesBox()
        r.log = { notes.add($0) }
        try r.run()
        #expect(notes.lines.contains { $0.contains("report_to 'wandb' is not supported") }, "\(notes.lines)")
        return args
    }

    func object(_ path: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: path), "\(path) is missing")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(path) is not a JSON object")
    }

    @Test func savedFoldersHoldEveryHuggingFaceFileAndField() throws {
        let args = try run()
        let required = try object(Self.fixtures + "/required.json")
        let model = try #require(required["model"] as? [String: [String]]), checkpoint = try #require(required["checkpoint"] as? [String: [String]])
        let folders = [args.outputDir, args.outputDir + "/checkpoint-1", args.outputDir + "/checkpoint-2"]
        for (i, dir) in folders.enumerated() {
            for (file, keys) in model.merging(i > 0 ? checkpoint : [:], uniquingKeysWith: { a, _ in a }) {
                let path = dir + "/" + file
                #expect(FileManager.default.fileExists(atPath: path), "\(path) is missing")
                guard file.hasSuffix(".json"), FileManager.default.fileExists(atPath: path) else { continue }
                let o = try object(path)
                for k in keys { #expect(o[k] != nil, "\(path) has no '\(k)'") }
            }
            // The values transformers needs to give llama-align's ids: the byte tokenizer's specials.
            let config = try object(dir + "/config.json")
            #expect(config["bos_token_id"] as? Int == 1 && config["eos_token_id"] as? Int == 2 && config["pad_token_id"] as? Int == 0)
            #expect(config["torch_dtype"] as? String == "float32")
            let tc = try object(dir + "/tokenizer_config.json")
            #expect(tc["bos_token"] as? String == "<s>" && tc["eos_token"] as? String == "</s>" && tc["pad_token"] as? String == "<pad>")
            #expect(tc["add_bos_token"] as? Bool == true && tc["add_eos_token"] as? Bool == false)
            // tokenizer.json describes the byte tokenizer exactly: read back alone, the same ids and text.
            let hf = try HFTokenizer(path: dir + "/tokenizer.json"), byte = ByteTokenizer()
            for text in ["What does the cow say?", "  two  spaces\nand ünïcödé 🦙", ""] {
                #expect(hf.encode(text) == byte.encode(text), "\(text)")
                #expect(hf.decode([1] + hf.encode(text) + [2]) == text)
            }
            #expect(hf.bosId == 1 && hf.eosId == 2 && hf.vocabSize == 259)
        }
    }

    @Test func trainerStateIsHuggingFacesLayoutWithTheResumeFieldsInside() throws {
        let args = try run()
        let o = try object(args.outputDir + "/checkpoint-2/trainer_state.json")
        // The dataclass fields transformers.TrainerState has, with their types; nothing else at the top
        // (load_from_json passes every key to the dataclass).
        let ints = ["global_step", "max_steps", "logging_steps", "eval_steps", "save_steps", "train_batch_size", "num_train_epochs",
                    "num_input_tokens_seen"]
        for k in ints { #expect(o[k] is Int, "\(k): \(String(describing: o[k]))") }
        #expect(o["global_step"] as? Int == 2 && o["max_steps"] as? Int == 2 && o["save_steps"] as? Int == 1 && o["eval_steps"] as? Int == 1)
        #expect(o["train_batch_size"] as? Int == args.perDeviceTrainBatchSize)
        #expect(o["epoch"] is NSNumber && o["total_flos"] is NSNumber)
        for k in ["best_metric", "best_global_step", "best_model_checkpoint", "trial_name", "trial_params"] { #expect(o.keys.contains(k), "\(k)") }
        let dataclassFields: Set<String> = [
            "epoch", "global_step", "max_steps", "logging_steps", "eval_steps", "save_steps", "train_batch_size", "num_train_epochs",
            "num_input_tokens_seen", "total_flos", "log_history", "best_metric", "best_global_step", "best_model_checkpoint",
            "is_local_process_zero", "is_world_process_zero", "is_hyper_param_search", "trial_name", "trial_params", "stateful_callbacks"]
        #expect(Set(o.keys).subtracting(dataclassFields).isEmpty, "keys transformers' TrainerState does not have: \(Set(o.keys).subtracting(dataclassFields))")
        // log_history: metrics.jsonl up to the step — two train lines and two evaluations.
        let history = try #require(o["log_history"] as? [[String: Any]])
        let lines = try Demo.metrics(args.outputDir)
        #expect(history.count == lines.count && history.count == 4, "\(history)")
        #expect(history.filter { $0["loss"] != nil }.map { ($0["step"] as? Int) ?? -1 } == [1, 2])
        #expect(history.filter { $0["eval_loss"] != nil }.count == 2)
        for (h, l) in zip(history, lines) { #expect((h["loss"] as? Double) == l["loss"]) }
        // Our resume fields live under stateful_callbacks and read back.
        let state = try TrainingCheckpoint.load(args.outputDir + "/checkpoint-1").state
        #expect(state.step == 1 && state.seed == args.seed && state.maxSteps == 2 && state.logHistory.count == 2)
        let again = try TrainerState(json: state.json(), path: "round trip")
        #expect(again.step == state.step && again.loader == state.loader && again.logHistory.count == 2)
        // TRL's num_tokens: tokens of the rows so far (no padding), kept in num_input_tokens_seen across a resume.
        let counts = lines.compactMap { $0["num_tokens"] }
        #expect(counts.count == 2 && counts[0] > 0 && counts[1] > counts[0], "\(counts)")
        #expect(o["num_input_tokens_seen"] as? Int == Int(counts[1]))
        var first = TrainingRun(args: try Demo.args(.sft, ["max_steps": 2, "save_steps": 1]), task: .sft)
        first.stopAfter = 1
        first.log = { _ in }
        try first.run()
        var second = TrainingRun(args: first.args, task: .sft)
        second.log = { _ in }
        try second.run()
        #expect(try Demo.metrics(first.args.outputDir).compactMap { $0["num_tokens"] } == counts)
        // This project's earlier layout still resumes.
        let old = try TrainerState(json: Data(#"{"step": 7, "epoch": 1.5, "seed": 3, "loader": {"epoch": 1, "position": 4}}"#.utf8), path: "old")
        #expect(old.step == 7 && old.seed == 3 && old.loader == LoaderState(epoch: 1, position: 4))
    }

    @Test func mergedAndLoRAFoldersAreComplete() throws {
        var base = TrainingRun(args: try Demo.args(.pretrain, ["max_steps": 1]), task: .pretrain)
        base.log = { _ in }
        try base.run()
        let args = try Demo.args(.sft, ["max_steps": 1, "lora": true, "lora_rank": 4], model: base.args.outputDir)
        var r = TrainingRun(args: args, task: .sft)
        r.log = { _ in }
        try r.run()
        // The adapter folder carries the tokenizer files; the merged model is a complete folder.
        for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
            #expect(FileManager.default.fileExists(atPath: args.outputDir + "/" + f), "\(f)")
        }
        let out = SharedFixtures.tempDir("merged").path
        try mergeAdapter(model: base.args.outputDir, lora: args.outputDir, out: out)
        let required = try #require(try object(Self.fixtures + "/required.json")["model"] as? [String: [String]])
        for (file, keys) in required {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
            guard file.hasSuffix(".json") else { continue }
            let o = try object(out + "/" + file)
            for k in keys { #expect(o[k] != nil, "\(file) has no '\(k)'") }
        }
    }

    @Test func crc32cMatchesTheKnownTestVectors() {
        // RFC 3720 (iSCSI) B.4 and the common "123456789" check value.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func tensorBoardEventFileDecodesToTheLoggedScalars() throws {
        let args = try run()
        let runs = args.outputDir + "/runs"
        let files = try FileManager.default.contentsOfDirectory(atPath: runs).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(files.count == 1)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: runs + "/" + (files.first ?? ""))))
        var at = 0, events: [[String: Any]] = []
        func le<T: FixedWidthInteger>(_ type: T.Type, _ i: Int) -> T { bytes[i..<(i + MemoryLayout<T>.size)].reversed().reduce(0) { $0 << 8 | T($1) } }
        while at < bytes.count {
            let n = Int(le(UInt64.self, at))
            #expect(le(UInt32.self, at + 8) == CRC32C.masked(Array(bytes[at..<(at + 8)])), "length CRC at \(at)")
            let record = Array(bytes[(at + 12)..<(at + 12 + n)])
            #expect(le(UInt32.self, at + 12 + n) == CRC32C.masked(record), "data CRC at \(at)")
            events.append(try decodeEvent(record))
            at += 12 + n + 4
        }
        #expect(at == bytes.count)
        #expect(events.first?["file_version"] as? String == "brain.Event:2")
        // One event per metrics.jsonl line, tags as transformers' TensorBoard callback names them.
        let lines = try Demo.metrics(args.outputDir)
        let scalarEvents = events.dropFirst()
        #expect(scalarEvents.count == lines.count)
        for (e, l) in zip(scalarEvents, lines) {
            let values = try #require(e["values"] as? [String: Float])
            #expect(e["step"] as? Int == Int(l["step"] ?? -1))
            if let loss = l["loss"] { #expect(values["train/loss"] == Float(loss) && values["train/learning_rate"] == Float(l["learning_rate"] ?? .nan)) }
            if let loss = l["eval_loss"] { #expect(values["eval/loss"] == Float(loss)) }
        }
    }

    /// Event { wall_time = 1 (double), step = 2 (varint), file_version = 3, summary = 5 { value = 1 { tag = 1, simple_value = 2 } } }.
    func decodeEvent(_ record: [UInt8]) throws -> [String: Any] {
        var r = ProtobufReader(record[...], path: "event"), out: [String: Any] = [:]
        while let (n, v) = try r.field() {
            switch (n, v) {
            case (1, .fixed64): out["wall_time"] = true
            case (2, .varint(let s)): out["step"] = Int(s)
            case (3, .bytes(let b)): out["file_version"] = String(decoding: b, as: UTF8.self)
            case (5, .bytes(let b)):
                var s = ProtobufReader(b, path: "summary"), values: [String: Float] = [:]
                while let (_, value) = try s.field() {
                    guard case .bytes(let vb) = value else { continue }
                    var vr = ProtobufReader(vb, path: "value"), tag = "", x = Float.nan
                    while let (k, f) = try vr.field() {
                        if k == 1, case .bytes(let t) = f { tag = String(decoding: t, as: UTF8.self) }
                        if k == 2, case .fixed32(let bits) = f { x = Float(bitPattern: bits) }
                    }
                    values[tag] = x
                }
                out["values"] = values
            default: Issue.record("unexpected field \(n) in an Event")
            }
        }
        return out
    }

    @Test func plotDrawsEveryQuantityTrainAndEval() throws {
        let dir = SharedFixtures.tempDir("plot").path
        // A DPO-like log: train lines every step, an evaluation every other step.
        var lines: [String] = []
        for s in 1...6 {
            lines.append(#"{"step": \#(s), "loss": \#(0.7 - 0.05 * Double(s)), "learning_rate": \#(1e-4 * Double(7 - s)), "grad_norm": 1.5, "# +
                         #""rewards/chosen": \#(0.1 * Double(s)), "rewards/rejected": \#(-0.1 * Double(s)), "rewards/margins": \#(0.2 * Double(s)), "# +
                         #""rewards/accuracies": 0.75}"#)
            if s % 2 == 0 {
                lines.append(#"{"step": \#(s), "eval_loss": 0.6, "eval_rewards/chosen": 0.1, "eval_rewards/rejected": -0.1, "# +
                             #""eval_rewards/margins": 0.2, "eval_rewards/accuracies": null}"#)
            }
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let (svgPath, htmlPath) = try CurvePlot.write(outputDir: dir)
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        for title in ["loss", "learning rate", "gradient norm", "rewards (DPO)", "reward margin (DPO)", "reward accuracy (DPO)"] {
            #expect(svg.contains(">\(title)</text>"), "\(title)")
        }
        // 1 loss + 1 eval_loss, lr, grad norm, 2 + 2 rewards, 1 + 1 margins, 1 accuracy (its eval is null): 11 lines.
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 11)
        #expect(svg.components(separatedBy: "stroke-dasharray").count - 1 == 2 * 4)   // eval lines and their legend entries
        let polyline = try #require(svg.components(separatedBy: "<polyline").dropFirst().first)
        #expect(polyline.components(separatedBy: ",").count - 1 == 6)   // six train points of the loss
        #expect(try String(contentsOfFile: htmlPath, encoding: .utf8).contains(svg))
        // A file with nothing to plot is an error naming it.
        let empty = SharedFixtures.tempDir("plot-empty").path
        try "{\"step\": 1}\n".write(toFile: empty + "/metrics.jsonl", atomically: true, encoding: .utf8)
        #expect(throws: RuntimeIOError.self) { try CurvePlot.write(outputDir: empty) }
    }
}

/// Collects a run's notes from its log closure.
final class NotesBox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

import Foundation
import Testing
@testable import Alignment

/// Inputs the fuzz targets (Tests/fuzz) found to crash, trap or be misread, kept as regression
/// tests: each must now give a clear error (file, key or field named) or the right value.
///
/// The minimized inputs themselves are in `Fixtures/fuzz/<target>/`; `replayedFuzzInputsGiveErrors`
/// feeds each one to its parser's file API. The tests below spell the same bugs out readably.
@Suite struct FuzzRegressionTests {
    // MARK: - Every saved input, through the file APIs

    /// The saved inputs of one fuzz target (`Fixtures/fuzz/TARGET/*`).
    static func inputs(_ target: String) -> [String] {
        let dir = SharedFixtures.projectRoot.appendingPathComponent("Tests/LlamaAlignTests/Fixtures/fuzz/\(target)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().map { dir.appendingPathComponent($0).path }
    }

    static let targets = ["sentencepiece_model", "llama2c_tokenizer", "arguments", "jsonl_sft", "jsonl_dpo", "jsonl_pretrain",
                          "safetensors", "llama2c_bin", "hf_config", "chat_template"]

    /// Each saved input is read by the file API of the parser it crashed: it must not trap, and
    /// when it is refused, the error is one line naming the file.
    @Test(arguments: targets)
    func replayedFuzzInputsGiveErrors(target: String) throws {
        for path in Self.inputs(target) {
            let error: (any Error)?
            do {
                switch target {
                case "sentencepiece_model": _ = try SentencePieceTokenizer(path: path)
                case "llama2c_tokenizer": _ = try Llama2cTokenizer(path: path)
                case "arguments":
                    for task in [TrainingArguments.Task.pretrain, .sft, .dpo] { _ = try TrainingArguments.load(path: path, task: task).schedule(rows: 10) }
                case "jsonl_sft": _ = try SFTDataset.load(path: path, tokenizer: ByteTokenizer(), maxSeqLen: 8, maxPromptLen: 4, template: .none)
                case "jsonl_dpo": _ = try PreferenceDataset.load(path: path, tokenizer: ByteTokenizer(), maxSeqLen: 8, maxPromptLen: 4, template: .none)
                case "jsonl_pretrain": _ = try PretrainDataset.load(path: path, tokenizer: ByteTokenizer(), maxSeqLen: 8)
                case "safetensors": _ = try Safetensors.read(path: path)
                case "llama2c_bin": _ = try Llama2cCheckpoint.load(path: path)
                case "hf_config": _ = try HFConfig.load(path: path)
                default: _ = try ChatTemplate.named(path)
                }
                error = nil
            } catch let e {
                error = e
            }
            if let error { #expect("\(error)".contains(path) && !"\(error)".contains("\n"), "\(path): \(error)") }
        }
    }

    // MARK: - SentencePiece tokenizer.model

    /// A protobuf ModelProto: `pieces` as (text, type), then a TrainerSpec with model_type BPE
    /// and the given unk/bos/eos ids.
    static func sentencePiece(_ pieces: [(String, UInt64)], unk: Int64 = 0, bos: Int64 = 1, eos: Int64 = 2) -> Data {
        func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        func field(_ n: UInt64, _ body: [UInt8]) -> [UInt8] { varint(n << 3 | 2) + varint(UInt64(body.count)) + body }
        var out: [UInt8] = []
        for (text, type) in pieces { out += field(1, field(1, Array(text.utf8)) + varint(3 << 3) + varint(type)) }
        out += field(2, varint(3 << 3) + varint(2) + varint(40 << 3) + varint(UInt64(bitPattern: unk))
                     + varint(41 << 3) + varint(UInt64(bitPattern: bos)) + varint(42 << 3) + varint(UInt64(bitPattern: eos)))
        return Data(out)
    }

    static let fourPieces: [(String, UInt64)] = [("<unk>", 2), ("<s>", 3), ("</s>", 3), ("▁a", 1)]

    /// Found by sentencepiece_model: a TrainerSpec's bos/eos/unk id outside the pieces was
    /// accepted, so every row began with an id past the embedding table (39 for 28 pieces).
    @Test(arguments: [(Int64(0), Int64(39), Int64(2), "bos_id 39"), (70, 1, 2, "unk_id 70"), (0, 1, -1, "eos_id -1")])
    func sentencePieceSpecialIdsOutsideTheVocabularyAreErrors(unk: Int64, bos: Int64, eos: Int64, named: String) {
        let data = Self.sentencePiece(Self.fourPieces, unk: unk, bos: bos, eos: eos)
        do { _ = try SentencePieceTokenizer(data: data, path: "t.model"); Issue.record("accepted \(named)") } catch {
            #expect("\(error)".hasPrefix("t.model: \(named) is outside the vocabulary (4 pieces)"), "\(error)")
        }
        #expect(throws: Never.self) { try SentencePieceTokenizer(data: Self.sentencePiece(Self.fourPieces), path: "t.model") }
    }

    /// Found by review (sentencepiece_model exercises it): a piece type varint of 2^63 or more
    /// trapped converting to Int; an unknown type is read as a normal piece, as before.
    @Test func sentencePieceTypeBeyondIntIsANormalPiece() throws {
        let tok = try SentencePieceTokenizer(data: Self.sentencePiece(Self.fourPieces + [("b", UInt64.max)]), path: "t.model")
        #expect(tok.vocabSize == 5 && tok.piece(4) == "b" && tok.encode("b").last == 4)
    }

    // MARK: - Argument files

    func argumentsError(_ json: String, task: TrainingArguments.Task = .sft) -> String {
        do { _ = try TrainingArguments.parse(Data(json.utf8), file: "args.json", task: task); return "" } catch { return "\(error)" }
    }

    /// Found by the arguments target: `num_train_epochs` 1e300 trapped converting the step
    /// count to Int. Epochs beyond Int.max steps now run "forever", as max_steps 2^63 − 1 does.
    @Test func hugeEpochCountDoesNotTrap() throws {
        let a = try TrainingArguments.parse(Data(#"{"output_dir": "o", "num_train_epochs": 1e300, "warmup_ratio": 1}"#.utf8), file: "a", task: .sft)
        let (steps, lr) = a.schedule(rows: 10)
        #expect(steps == Int.max && lr.warmupSteps == Int.max && lr.rate(at: 1) >= 0)
        #expect(try TrainingArguments.parse(Data(#"{"output_dir": "o", "num_train_epochs": 2.5}"#.utf8), file: "a", task: .sft)
            .schedule(rows: 10).steps == 8)   // ⌈3 steps an epoch × 2.5⌉, as before
    }

    /// Found by the arguments target: `warmup_ratio` 1e300 trapped (Int of ratio × steps).
    @Test func warmupRatioAboveOneIsAnError() {
        #expect(argumentsError(#"{"output_dir": "o", "warmup_ratio": 1e300}"#) == "args.json: key 'warmup_ratio': must be ≤ 1 (a fraction of the steps), got 1e+300")
        #expect(argumentsError(#"{"output_dir": "o", "warmup_ratio": 1.0}"#) == "")
    }

    /// Found by the arguments target: batch × accumulation overflowed Int in `schedule` (trap).
    @Test func rowsPerStepBeyondInt32IsAnError() {
        let e = argumentsError(#"{"output_dir": "o", "per_device_train_batch_size": 4611686018427387904, "gradient_accumulation_steps": 4}"#)
        #expect(e.hasPrefix("args.json: key 'gradient_accumulation_steps': 4 × per_device_train_batch_size 4611686018427387904 is more than"), "\(e)")
        #expect(argumentsError(#"{"output_dir": "o", "per_device_train_batch_size": 65536, "gradient_accumulation_steps": 32767}"#) == "")
    }

    /// Found by review: integers were read through `NSNumber.intValue`, which saturates or
    /// wraps: 1e20 was reported as −9223372036854775808, 2^64 − 1 as −1, and
    /// 99999999999999999999999 was accepted as 200376420520689663.
    @Test func integersOutsideInt64AreErrorsNamingTheWrittenValue() throws {
        #expect(argumentsError(#"{"output_dir": "o", "max_seq_len": 99999999999999999999999}"#).hasPrefix("args.json: key 'max_seq_len': 99999999999999999999999 does not fit"))
        #expect(argumentsError(#"{"output_dir": "o", "seed": 18446744073709551615}"#).hasPrefix("args.json: key 'seed': 18446744073709551615 does not fit"))
        #expect(argumentsError(#"{"output_dir": "o", "max_steps": 1e20}"#).contains("'max_steps': 1e+20 does not fit"))
        let a = try TrainingArguments.parse(Data(#"{"output_dir": "o", "seed": 9223372036854775807, "max_seq_len": 64.0}"#.utf8), file: "a", task: .sft)
        #expect(a.seed == Int.max && a.maxSeqLen == 64)
    }

    /// Found by review: `max_steps` 2^63 − 1 (accepted) made the progress line's ETA trap
    /// converting to Int once a step took time.
    @Test func progressOfAnEndlessRunDoesNotTrap() {
        let bar = ProgressBar(total: Int.max, label: "t", output: FileHandle.nullDevice, forceTerminal: false)
        Thread.sleep(forTimeInterval: 0.01)
        #expect(bar.line(step: 1, fields: []).hasSuffix("ETA >100h"))
        #expect(ProgressBar(total: 10, label: "t", output: FileHandle.nullDevice, forceTerminal: false).line(step: 0, fields: []).hasSuffix("ETA 00:00"))
    }

    /// Found by review (the arguments target ran slowly on long keys): the "did you mean"
    /// suggestion computed two edit distances per comparison over the whole unknown key, so a
    /// 20 KB key took seconds and a megabyte one minutes. Now a distance is computed once per
    /// known name over the key's first 64 characters (and a name that far from every known one
    /// gets no suggestion).
    @Test func suggestionsForHugeUnknownNamesAreCheap() throws {
        let long = "learning_rat" + String(repeating: "e", count: 1_200_000)
        let started = Date()
        let message = argumentsError(#"{"output_dir": "o", "\#(long)": 1}"#)
        #expect(message.hasPrefix("args.json: key 'learning_rateeeee") && message.hasSuffix("…': unknown argument (not a llama-align or PaddleNLP field; see README \"Coming from PaddleNLP\")"))
        #expect(message.count < 200)   // the key is shortened in the message
        let a = try TrainingArguments.parse(Data(#"{"output_dir": "o", "loss_type": "\#(long)"}"#.utf8), file: "a", task: .dpo)
        #expect(throws: (any Error).self) { try DPOSettings(arguments: a) }
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(closest(to: "sigmod", in: ["ipo", "sigmoid", "hinge"]) == "sigmoid" && closest(to: "x", in: []) == "")
        #expect(closest(to: "ab", in: ["aa", "bb"]) == "aa")   // the first on ties, as before
    }

    /// Found by review: `eval --max-seq-len 0` looped forever packing rows of 0 tokens, a
    /// negative one trapped, and `--batch-size 0` looped forever; both are now refused.
    @Test func evalRefusesLengthsItCannotUse() throws {
        for (option, value) in [("--max-seq-len", "0"), ("--max-seq-len", "-3"), ("--batch-size", "0")] {
            guard let r = try CLI.run(["eval", "--model", "m.bin", "--data", "d.jsonl", option, value]) else { return }
            #expect(r.status != 0 && r.stderr.contains(option), "\(r.stderr)")
        }
    }

    // MARK: - JSONL rows

    /// Found by review: token ids were read through `int32Value`, so 4294967299 became id 3
    /// and 1e20 became 0, both accepted; -4294967196 passed as the ignore label -100.
    @Test func tokenIdsBeyondInt32AreOutsideTheVocabulary() throws {
        for (row, shown) in [(#"{"input_ids": [1, 4294967299]}"#, "4294967299"), (#"{"input_ids": [1e20]}"#, "1e+20"),
                             (#"{"input_ids": [1, 2], "labels": [-4294967196, 5]}"#, "-4294967196")] {
            do {
                _ = try SFTDataset.load(data: Data(row.utf8), file: "d.jsonl", tokenizer: ByteTokenizer(), maxSeqLen: 8, maxPromptLen: 4, template: .none)
                Issue.record("accepted \(row)")
            } catch {
                #expect("\(error)".hasPrefix("d.jsonl:1: field '") && "\(error)".contains("id \(shown) at item"), "\(error)")
            }
        }
        let (rows, _) = try SFTDataset.load(data: Data(#"{"input_ids": [1, 7.0, 258], "labels": [-100, 7, 258]}"#.utf8), file: "d.jsonl",
                                            tokenizer: ByteTokenizer(), maxSeqLen: 8, maxPromptLen: 4, template: .none)
        #expect(rows == [TokenizedExample(inputIds: [1, 7, 258], labels: [-100, 7, 258])])
    }
}

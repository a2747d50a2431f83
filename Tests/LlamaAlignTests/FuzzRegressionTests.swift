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

import Alignment
import Foundation

/// What every fuzz target shares: turning libFuzzer's bytes into `Data`, checking the
/// invariants a parser's result must keep (a broken one aborts, so libFuzzer saves the input),
/// and writing seed inputs when `run.sh` asks for them.
public enum Fuzz {
    /// libFuzzer's input as `Data` (copied: the buffer is only valid during the call).
    public static func data(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Data {
        guard let bytes, size > 0 else { return Data() }
        return Data(bytes: bytes, count: size)
    }

    /// Aborts with `message` when `condition` is false: a parser returned something its
    /// callers cannot use, which counts as a crash.
    public static func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                               file: StaticString = #fileID, line: UInt = #line) {
        guard !condition() else { return }
        FileHandle.standardError.write(Data("invariant broken (\(file):\(line)): \(message())\n".utf8))
        abort()
    }

    /// The environment variable `run.sh` sets to a folder: the target writes its seeds there
    /// (from `seeds`) and exits instead of fuzzing.
    public static let seedDirVariable = "LLAMA_ALIGN_FUZZ_WRITE_SEEDS"

    /// Call from `LLVMFuzzerInitialize`: when `seedDirVariable` names a folder, writes each
    /// `(name, bytes)` of `seeds()` into it and exits the process.
    public static func writeSeedsIfAsked(_ seeds: () throws -> [(String, Data)]) {
        guard let dir = ProcessInfo.processInfo.environment[seedDirVariable], !dir.isEmpty else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let all = try seeds()
            for (name, bytes) in all {
                try bytes.write(to: URL(fileURLWithPath: dir).appendingPathComponent("seed-\(name)"))
            }
            print("wrote \(all.count) seeds to \(dir)")
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("cannot write seeds to \(dir): \(error)\n".utf8))
            exit(1)
        }
    }

    /// Text pieces every tokenizer target encodes: ASCII, spaces, control characters,
    /// combining marks, several UTF-8 lengths, a surrogate-free emoji, and token look-alikes.
    public static let sampleTexts = [
        "", " ", "hello world", "the cat sat on the mat", "  two  spaces ", "tab\there\nnewline",
        "é e\u{301} ñ", "日本語のテキスト", "🙂👍🏽", "<s> </s> <unk> <0x41>", "\u{0}\u{7F}\u{80}\u{FFFD}", "▁▁x",
    ]
}

/// Invariants of what the dataset readers return, checked on every input.
public enum DatasetChecks {
    /// Training rows: as many labels as ids, at least one id, every id in the vocabulary and
    /// every label an id or `-100`, and a batch of them collates.
    public static func check(_ examples: [TokenizedExample], summary: DatasetSummary, vocab: Int) {
        Fuzz.require(summary.examples == examples.count, "summary counts \(summary.examples) examples, got \(examples.count)")
        for e in examples {
            Fuzz.require(!e.inputIds.isEmpty && e.inputIds.count == e.labels.count,
                         "example with \(e.inputIds.count) ids and \(e.labels.count) labels")
            Fuzz.require(e.inputIds.allSatisfy { $0 >= 0 && Int($0) < vocab }, "id outside 0..<\(vocab): \(e.inputIds)")
            Fuzz.require(e.labels.allSatisfy { $0 == TokenizedExample.ignore || ($0 >= 0 && Int($0) < vocab) },
                         "label outside the vocabulary: \(e.labels)")
        }
        let batch = collate(Array(examples.prefix(4)), padId: 0)
        Fuzz.require(batch.ids.count == batch.batch * batch.seq && batch.mask.count == batch.ids.count, "collate's shapes disagree")
    }

    /// Preference pairs: scored flags as long as their ids, both answers non-empty, the row
    /// within `maxSeqLen`, every id in the vocabulary, and a batch of them lays out.
    public static func check(_ pairs: [PreferencePair], summary: PairDatasetSummary, vocab: Int, maxSeqLen: Int) {
        Fuzz.require(summary.pairs == pairs.count, "summary counts \(summary.pairs) pairs, got \(pairs.count)")
        for p in pairs {
            Fuzz.require(p.prompt.count == p.promptScored.count && p.chosen.count == p.chosenScored.count
                         && p.rejected.count == p.rejectedScored.count, "scored flags and ids differ in length")
            Fuzz.require(!p.chosen.isEmpty && !p.rejected.isEmpty, "a pair with an empty answer")
            Fuzz.require(p.rowLength <= maxSeqLen, "a row of \(p.rowLength) tokens for max_seq_len \(maxSeqLen)")
            Fuzz.require((p.prompt + p.chosen + p.rejected).allSatisfy { $0 >= 0 && Int($0) < vocab }, "id outside 0..<\(vocab)")
        }
        let batch = PairBatch(Array(pairs.prefix(4)), pad: 0)
        Fuzz.require(batch.ids.count == batch.batch * batch.seq, "PairBatch's shapes disagree")
        _ = batch.programInputs
        _ = batch.lengths
    }
}

/// Checks of a tokenizer read from a user's file.
public enum TokenizerChecks {
    /// BOS, EOS and every id `encode` gives lie in the vocabulary; decoding (whole and
    /// streamed) does not trap. Also encodes text made of the vocabulary's own pieces, so a
    /// fuzzed vocabulary's merges run.
    public static func exercise(_ tok: any Tokenizer) {
        let vocab = tok.vocabSize
        Fuzz.require(vocab > 0, "empty vocabulary")
        Fuzz.require(tok.bosId >= 0 && Int(tok.bosId) < vocab, "BOS id \(tok.bosId) outside 0..<\(vocab)")
        Fuzz.require(tok.eosId >= 0 && Int(tok.eosId) < vocab, "EOS id \(tok.eosId) outside 0..<\(vocab)")
        let fromPieces = (0..<min(vocab, 24)).map { tok.piece(Int32($0)) }.joined()
            .replacingOccurrences(of: "▁", with: " ")
        for text in Fuzz.sampleTexts + [fromPieces] {
            let ids = tok.encode(text)
            Fuzz.require(ids.allSatisfy { $0 >= 0 && Int($0) < vocab }, "encode(\(text.debugDescription)) gave an id outside 0..<\(vocab): \(ids)")
            _ = tok.decode(ids)
            var stream = StreamingDecoder(tokenizer: tok)
            for id in ids { _ = stream.push(id) }
            _ = stream.finish()
        }
        for id in [-1, 0, 1, 2, 3, Int32(clamping: vocab - 1), Int32(clamping: vocab), Int32.max, Int32.min] {
            _ = tok.piece(id)
            _ = tok.bytes(of: id, first: true)
        }
    }
}

import Foundation

/// `output_dir/checkpoint-STEP/` folders: the model in Hugging Face layout, the optimizer state,
/// the trainer state and the tokenizer. Written into a temporary folder and renamed into place,
/// so a failed or killed save leaves no partial checkpoint.
public enum TrainingCheckpoint {
    /// Creates `outputDir` if needed and proves it writable.
    public static func checkWritable(outputDir: String) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: outputDir, withIntermediateDirectories: true) } catch {
            throw RuntimeIOError("\(outputDir): output_dir cannot be created (\(error.localizedDescription))")
        }
        let probe = (outputDir as NSString).appendingPathComponent(".write-probe-\(UUID().uuidString)")
        guard fm.createFile(atPath: probe, contents: Data()) else { throw RuntimeIOError("\(outputDir): output_dir is not writable") }
        try? fm.removeItem(atPath: probe)
    }

    /// Writes `checkpoint-STEP/`: the model (`weights`), or with `adapter` only the LoRA
    /// adapter in PEFT's layout (the frozen base stays where the run read it).
    public static func save(outputDir: String, step: Int, weights: LlamaWeights, optimizer: [String: [Float]],
                            state: TrainerState, tokenizerFiles: [String], keep: Int?, adapter: AdapterSnapshot? = nil,
                            protect: Int? = nil) throws {
        let fm = FileManager.default
        let final = (outputDir as NSString).appendingPathComponent("checkpoint-\(step)")
        let temp = (outputDir as NSString).appendingPathComponent(".checkpoint-\(step).tmp-\(UUID().uuidString.prefix(8))")
        do {
            if let adapter { try adapter.save(to: temp) } else { try HFCheckpoint.save(weights, to: temp) }
            try Safetensors.write(optimizer.mapValues { Safetensors.Tensor(shape: [$0.count], values: $0) },
                                  to: (temp as NSString).appendingPathComponent("optimizer.safetensors"))
            try state.json().write(to: URL(fileURLWithPath: (temp as NSString).appendingPathComponent("trainer_state.json")))
            for f in tokenizerFiles { try fm.copyItem(atPath: f, toPath: (temp as NSString).appendingPathComponent((f as NSString).lastPathComponent)) }
            try HFFolder.complete(directory: temp)
            // Durable before visible: every file and the folder on disk, then the rename, then
            // the output folder that now names it.
            try BinaryIO.syncFolder(temp)
            if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
            try fm.moveItem(atPath: temp, toPath: final)
            try? BinaryIO.sync(outputDir)
        } catch {
            try? fm.removeItem(atPath: temp)
            throw error
        }
        if let keep { try rotate(outputDir: outputDir, keep: keep, protect: protect) }
    }

    /// Completed checkpoints, oldest first.
    public static func all(in outputDir: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outputDir)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("checkpoint-"), let s = Int(n.dropFirst("checkpoint-".count)) else { return nil }
            let p = (outputDir as NSString).appendingPathComponent(n)
            guard FileManager.default.fileExists(atPath: (p as NSString).appendingPathComponent("trainer_state.json")) else { return nil }
            return (s, p)
        }.sorted { $0.0 < $1.0 }
    }

    public static func latest(in outputDir: String) -> String? { all(in: outputDir).last?.path }

    /// `checkpoint-N` folders newer than the newest complete one that lack `trainer_state.json`
    /// (not written by this project, or damaged): resuming passes them over, and says so.
    public static func incompleteNewer(in outputDir: String) -> [String] {
        let newest = all(in: outputDir).last?.step ?? -1
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outputDir)) ?? []
        return names.filter { n in
            guard n.hasPrefix("checkpoint-"), let s = Int(n.dropFirst("checkpoint-".count)), s > newest else { return false }
            return !FileManager.default.fileExists(atPath: ((outputDir as NSString).appendingPathComponent(n) as NSString).appendingPathComponent("trainer_state.json"))
        }.sorted().map { (outputDir as NSString).appendingPathComponent($0) }
    }

    /// Removes all but the newest `keep` checkpoints, sparing `checkpoint-PROTECT` (the best model's).
    static func rotate(outputDir: String, keep: Int, protect: Int? = nil) throws {
        let list = all(in: outputDir)
        for old in list.dropLast(keep) where old.step != protect { try FileManager.default.removeItem(atPath: old.path) }
    }

    /// Reads a checkpoint; `weights` is nil for a LoRA checkpoint (adapter only: read it with
    /// `PEFTAdapter.load` against the base model's config).
    public static func load(_ dir: String) throws -> (weights: LlamaWeights?, optimizer: [String: [Float]], state: TrainerState) {
        let adapterOnly = FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(PEFTAdapter.configFile))
            && !FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("config.json"))
        let weights = adapterOnly ? nil : try HFCheckpoint.load(directory: dir)
        let opt = try Safetensors.read(path: (dir as NSString).appendingPathComponent("optimizer.safetensors")).mapValues(\.values)
        let path = (dir as NSString).appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw RuntimeIOError("\(path): missing") }
        return (weights, opt, try TrainerState(json: data, path: path))
    }

    /// The final model: Hugging Face layout plus the tokenizer, in `outputDir` itself; with
    /// `adapter`, the LoRA adapter in PEFT's layout instead of the model.
    public static func saveFinal(outputDir: String, weights: LlamaWeights, tokenizerFiles: [String], adapter: AdapterSnapshot? = nil) throws {
        if let adapter { try adapter.save(to: outputDir) } else { try HFCheckpoint.save(weights, to: outputDir) }
        for f in tokenizerFiles {
            let dest = (outputDir as NSString).appendingPathComponent((f as NSString).lastPathComponent)
            if URL(fileURLWithPath: dest).resolvingSymlinksInPath().path == URL(fileURLWithPath: f).resolvingSymlinksInPath().path { continue }
            // Read whole, then written beside the destination and renamed over it (rename(2)):
            // the old file stays until the new one is complete.
            let bytes = try BinaryIO.readFile(f)
            try BinaryIO.writeAtomically(bytes, to: dest)
        }
        try HFFolder.complete(directory: outputDir)
    }
}

import Foundation
import KernelRuntime
import LlamaGraphs

/// The model at `path` with the PEFT LoRA adapter in `lora` (nil: the model alone) folded into
/// its weights (`PEFTAdapter.merged`), for the programs that have no adapter path (generation).
public func loadModel(path: String, lora: String?) throws -> LlamaWeights {
    let weights = try loadModel(path: path)
    guard let lora else { return weights }
    let adapter = try PEFTAdapter.load(directory: lora, config: weights.config)
    return try PEFTAdapter.merged(weights, lora: adapter.lora, adapters: adapter.adapters)
}

/// The parameters of the model at `path` with the adapter in `lora` kept apart (the programs
/// run `W·x + s·B(A·x)`), or with the trained prefix in `prefix` (the `_prefix` programs), or
/// the model alone when both are nil.
public func loadParameters(path: String, lora: String?, prefix: String? = nil) throws -> ParameterStore {
    let weights = try loadModel(path: path)
    if let prefix {
        guard lora == nil else { throw RuntimeError("a LoRA adapter and a prefix together are not supported; give one") }
        let trained = try TrainedPrefix(directory: prefix, config: weights.config)
        return try ParameterStore(weights: weights, adapters: [Prefix.parameter: trained.table], prefix: trained.prefix)
    }
    guard let lora else { return try ParameterStore(weights: weights) }
    let adapter = try PEFTAdapter.load(directory: lora, config: weights.config)
    return try ParameterStore(weights: weights, lora: adapter.lora, adapters: adapter.adapters)
}

/// `llama-align merge`: the base model at `model` with the adapter in `lora` folded in, saved
/// as a Hugging Face directory in `out` with the base model's tokenizer files beside it, completed
/// by `HFFolder.complete` (token ids, generation config, Hugging Face tokenizer files).
public func mergeAdapter(model: String, lora: String, out: String) throws {
    try CheckpointOutput.checkDirectory(out, source: model)
    try HFCheckpoint.save(try loadModel(path: model, lora: lora), to: out)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir) else { return }
    let dir = isDir.boolValue ? model : (model as NSString).deletingLastPathComponent
    for name in tokenizerFileNames + HFFolder.tokenizerCompanions {
        let from = (dir as NSString).appendingPathComponent(name), to = (out as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: from), from != to else { continue }
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }
    try HFFolder.complete(directory: out)
}

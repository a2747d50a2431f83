import Alignment
import ArgumentParser
import Foundation
import KernelRuntime
import LlamaGraphs

/// `llama-align dpo ARGS.json`.
struct DPO: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dpo", abstract: "Direct Preference Optimization on prompt/chosen/rejected pairs.")
    @Argument(help: "PaddleNLP-style argument file.") var argsFile: String
    @Option(help: "OpenMP/BLAS threads (overrides num_threads).") var threads: Int?

    func validate() throws { try checkThreads(threads) }

    func run() throws {
        var args = try TrainingArguments.load(path: argsFile, task: .dpo)
        if let threads { args.numThreads = threads }
        applyThreads(args.numThreads)
        let s = try DPORun(args: args).run()
        guard World.isMain else { return }
        if let b = s.evalBefore, let a = s.evalAfter {
            print(String(format: "held-out: reward accuracy %.3f → %.3f, margin %.4f → %.4f, loss %.4f → %.4f",
                         b["rewards/accuracies"] ?? 0, a["rewards/accuracies"] ?? 0, b["rewards/margins"] ?? 0, a["rewards/margins"] ?? 0,
                         b["loss"] ?? 0, a["loss"] ?? 0))
        }
        print("dpo: \(s.steps) steps on \(s.data.pairs) pairs; saved to \(s.outputDir) (metrics in metrics.jsonl)")
    }
}

/// `llama-align eval` on preference data: the DPO loss and rewards of a policy against a reference.
/// With `lora`, the policy is the base model with the adapter folded in and the reference, unless
/// given, the base model alone (the adapters switched off, as DPO with LoRA trains against).
/// With `prefix`, the policy is the base model with that trained prefix and the default
/// reference the base model (the same weights without it).
func evalPreferences(model: String, lora: String? = nil, prefix: String? = nil, reference: String?, data: String, tokenizer: (any Tokenizer)?, maxSeqLen: Int,
                     lossTypes: [String], beta: Double, batchSize: Int) throws -> [String: Double] {
    let base = try loadModel(path: model)
    try base.checkFinite(source: model)
    let weights = try lora.map { try loadModel(path: model, lora: $0) } ?? base
    let tok: any Tokenizer = tokenizer ?? PassthroughTokenizer(vocabSize: weights.config.vocabSize)
    let (pairs, summary) = try PreferenceDataset.load(path: data, tokenizer: tok, maxSeqLen: maxSeqLen, maxPromptLen: maxSeqLen / 2, template: .none)
    if !summary.warnings.isEmpty { FileHandle.standardError.write(Data("data: \(summary.warnings)\n".utf8)) }
    var s = DPOSettings()
    s.beta = beta
    s.lossTypes = try lossTypes.map { n in
        guard let t = DPOLossType(name: n) else { throw CLIError("--loss-type '\(n)' is unknown (known: \(DPOLossType.allCases.map(\.rawValue).joined(separator: ", ")))") }
        return t
    }
    s.referenceFree = reference == nil && lora == nil && prefix == nil && s.lossTypes.allSatisfy(\.referenceFree)
    let trained = try prefix.map { try TrainedPrefix(directory: $0, config: base.config) }
    let store = try trained.map { try ParameterStore(weights: base, adapters: [Prefix.parameter: $0.table], prefix: $0.prefix) }
        ?? ParameterStore(weights: weights)
    let policy = try LMTrainer(parameters: store)
    // A prefix policy without a reference of its own is scored against its weights without the prefix.
    let ref = try reference.map { try ParameterStore(weights: loadModel(path: $0)) }
        ?? (lora != nil ? try ParameterStore(weights: base) : (s.needsReference && prefix == nil ? policy.parameters : nil))
    let trainer = try DPOTrainer(policy: policy, reference: ref, settings: s)
    let batches = stride(from: 0, to: pairs.count, by: batchSize).map { PairBatch(Array(pairs[$0..<min($0 + batchSize, pairs.count)]), pad: tok.eosId) }
    return try trainer.evaluate(batches)
}

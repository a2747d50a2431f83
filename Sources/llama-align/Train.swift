import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// Runs a pretraining or SFT argument file, printing a summary at the end.
func runTraining(_ path: String, _ task: TrainingArguments.Task, threads: Int?) throws {
    var args = try TrainingArguments.load(path: path, task: task)
    if let threads { args.numThreads = threads }
    applyThreads(args.numThreads)
    let s = try TrainingRun(args: args, task: task).run()
    guard World.isMain else { return }
    var line = "\(task.rawValue): \(s.steps) steps on \(s.train.examples) rows"
    if let f = s.firstLoss, let l = s.lastLoss { line += String(format: ", loss %.4f → %.4f", f, l) }
    if let e = s.evalLoss { line += String(format: ", eval loss %.4f", e) + (s.evalLossBefore.map { String(format: " (was %.4f)", $0) } ?? "") }
    if s.train.dropped > 0 { line += ", \(s.train.dropped) rows dropped \(s.train.droppedReasons)" }
    print(line)
    print("saved to \(s.outputDir) (metrics in metrics.jsonl)")
}

/// Threading for the generated kernels: `KMP_BLOCKTIME=0` (unless the user set it) before the
/// first parallel region starts libomp, so its idle threads do not spin beside OpenBLAS's own
/// threads during sgemm (measured with `bench train`: 839 → 910 tokens/s on 2 cores); and,
/// when `num_threads` / `--threads` is given, that many threads for OpenMP and OpenBLAS both.
/// Under `mpirun`, the default is the machine's cores shared out over the ranks started on it.
///
/// Decoding (`generate`, `bench generate`: `decoding` true) keeps libomp's default block time: a
/// token runs dozens of small parallel matrix-vector products, and threads that sleep at once pay
/// a wake-up in each (`bench generate --config small --threads 2`: 318 tok/s with 0, 807 without).
/// `--threads` out of range (0, negative, more than `KernelThreads.maximum`) is an error.
func checkThreads(_ n: Int?) throws {
    if let n, let problem = KernelThreads.problem(with: n) { throw ValidationError("--threads \(problem)") }
}

func applyThreads(_ n: Int?, decoding: Bool = false) {
    if !decoding { setenv("KMP_BLOCKTIME", "0", 0) }
    if let n, n > 0 {
        KernelThreads.set(n)
    } else if World.localSize > 1 {
        KernelThreads.set(max(1, ProcessInfo.processInfo.activeProcessorCount / World.localSize))
    }
}

/// `llama-align pretrain ARGS.json`.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pretrain on text (JSONL {\"text\"} or .txt, packed into rows).")
    @Argument(help: "PaddleNLP-style argument file.") var argsFile: String
    @Option(help: "OpenMP/BLAS threads (overrides num_threads).") var threads: Int?
    func validate() throws { try checkThreads(threads) }
    func run() throws { try runTraining(argsFile, .pretrain, threads: threads) }
}

/// `llama-align sft ARGS.json`.
struct SFT: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sft", abstract: "Supervised fine-tuning on {\"src\", \"tgt\"} rows.")
    @Argument(help: "PaddleNLP-style argument file.") var argsFile: String
    @Option(help: "OpenMP/BLAS threads (overrides num_threads).") var threads: Int?
    func validate() throws { try checkThreads(threads) }
    func run() throws { try runTraining(argsFile, .sft, threads: threads) }
}

/// `llama-align eval`: mean loss and perplexity over the supervised tokens of a file.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mean token loss and perplexity of a model on an SFT, pretraining or pre-tokenized file.")
    @Option(help: "Checkpoint (.bin or HF directory).") var model: String
    @Option(help: "JSONL file (src/tgt, text, or input_ids rows).") var data: String
    @Option(help: "Tokenizer (default: beside the model; not needed for input_ids rows).") var tokenizer: String?
    @Option(name: .customLong("max-seq-len"), help: "Longest row; longer rows are truncated per the SFT rules.") var maxSeqLen = 1024
    @Option(name: .customLong("batch-size")) var batchSize = 8
    @Option(help: "A PEFT LoRA adapter directory for the model: run unmerged on LM data; on preference data the policy is base + adapter and the default reference the base (adapters off).") var lora: String?
    @Option(help: "A PEFT prefix-tuning adapter directory for the model (on preference data the policy is base + prefix and the default reference the base).") var prefix: String?
    @Option(help: "Reference model for preference data (default: the policy itself, i.e. rewards start at 0; with --lora or --prefix, the base model).") var reference: String?
    @OptionGroup var quantization: QuantOptions
    @Option(name: .customLong("loss-type"), help: "DPO loss type(s) for preference data, comma-separated (default sigmoid).") var lossType: String?
    @Option(help: "DPO β for preference data (default 0.1).") var beta: Double?
    @Flag(help: "Print JSON.") var json = false

    /// Lengths the readers and the batching loop can work with (0 made them loop forever).
    func validate() throws {
        guard maxSeqLen >= 2 else { throw ValidationError("--max-seq-len must be at least 2, got \(maxSeqLen)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
        if lora != nil && prefix != nil { throw ValidationError("--lora and --prefix together are not supported; give one") }
        if let beta, !(beta.isFinite && beta > 0) { throw ValidationError("--beta must be a finite number > 0, got \(beta)") }
    }

    func run() throws {
        let rows = try JSONLines.read(data)
        let isPreference = rows.first.map { $0.has("chosen") || $0.has("chosen_ids") || $0.has("response") } ?? false
        let needsTokenizer = rows.contains { !$0.has("input_ids") && !$0.has("prompt_ids") }
        let found = try tokenizerFor(model: model, explicit: tokenizer, required: needsTokenizer)
        if isPreference, quantization.quant != nil || QuantizedCheckpoint.recorded(in: model) != nil {
            throw ValidationError("eval of a quantized model on preference data is not built (language-model data only)")
        }
        if isPreference {
            let m = try evalPreferences(model: model, lora: lora, prefix: prefix, reference: reference, data: data, tokenizer: found, maxSeqLen: maxSeqLen,
                                        lossTypes: (lossType ?? "sigmoid").split(separator: ",").map(String.init), beta: beta ?? 0.1,
                                        batchSize: batchSize)
            let keys = ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"]
            if json {
                try printJSON(Dictionary(uniqueKeysWithValues: keys.map { ($0, m[$0] ?? 0) }))
            } else {
                for k in keys { print(String(format: "%-20@ %.6f", k as NSString, m[k] ?? 0)) }
            }
            return
        }
        for (flag, given) in [("--reference", reference != nil), ("--beta", beta != nil), ("--loss-type", lossType != nil)] where given {
            throw CLIError("\(flag) is for preference data (prompt/chosen/rejected rows); \(data) holds language-model rows")
        }
        // A quantized model (a quantized checkpoint, or --quant) is evaluated on its dequantized
        // weights: exactly the quantized values, through the f32 loss program.
        let quantized = quantization.quant != nil || QuantizedCheckpoint.recorded(in: model) != nil
        if quantized, prefix != nil { throw CLIError("--prefix is not supported with a quantized model; evaluate the prefix on the f32 model") }
        let store = quantized
            ? try loadInferenceModel(path: model, lora: lora, quant: quantization.quant, groupSize: quantization.group.groupSize,
                                    head: quantization.head).parameters
            : try loadParameters(path: model, lora: lora, prefix: prefix)
        try store.weights().checkFinite(source: model)
        let tok: any Tokenizer = found ?? PassthroughTokenizer(vocabSize: store.config.vocabSize)
        try checkTokenizer(tok, fits: store.config, tokenizer: tokenizer ?? "the tokenizer beside \(model)", model: model)
        // Rows are scored up to the model's context (and --max-seq-len): longer ones are cut.
        let limit = min(maxSeqLen, store.config.maxSeqLen)
        var (examples, summary): ([TokenizedExample], DatasetSummary)
        if rows.first?.has("text") == true {
            (examples, summary) = try PretrainDataset.load(path: data, tokenizer: tok, maxSeqLen: limit)
        } else {
            (examples, summary) = try SFTDataset.load(path: data, tokenizer: tok, maxSeqLen: limit, maxPromptLen: limit / 2, template: .none)
        }
        let cut = examples.filter { $0.inputIds.count > limit }.count
        examples = examples.map { $0.inputIds.count > limit ? TokenizedExample(inputIds: Array($0.inputIds.prefix(limit)), labels: Array($0.labels.prefix(limit))) : $0 }
        summary.truncated += cut
        var notes: [String] = []
        if summary.truncated > 0 {
            notes.append("\(summary.truncated) rows cut to \(limit) tokens (" + (limit < maxSeqLen ? "the model's context" : "--max-seq-len") + ")")
        }
        if summary.dropped > 0 {
            let why = summary.droppedReasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            notes.append("\(summary.dropped) of \(summary.rows) rows dropped (\(why))")
        }
        for n in notes { FileHandle.standardError.write(Data("note: \(data): \(n)\n".utf8)) }
        let trainer = try LMTrainer(parameters: store)
        var sum = 0.0, n = 0
        var i = 0
        while i < examples.count {
            let chunk = Array(examples[i..<min(i + batchSize, examples.count)])
            let r = try trainer.evaluate(collate(chunk, padId: 0))
            sum += r.sum; n += r.tokens
            i += chunk.count
        }
        guard n > 0 else {
            throw CLIError("\(data): no tokens to score (\(summary.rows) rows, \(examples.count) kept; a row needs a supervised token after its first)")
        }
        let mean = sum / Double(n)
        if json {
            try printJSON(EvalReport(loss: mean, perplexity: exp(mean), tokens: n, rows: examples.count))
        } else {
            print(String(format: "loss %.6f  perplexity %.4f  over %d tokens in %d rows", mean, exp(mean), n, examples.count))
        }
    }
}

/// `eval --json` on language-model data (non-finite numbers as `JSONOutput` writes them).
struct EvalReport: Encodable {
    var loss: Double
    var perplexity: Double
    var tokens: Int
    var rows: Int
}

/// For pre-tokenized files with no tokenizer at hand: ids only.
struct PassthroughTokenizer: Tokenizer {
    let vocabSize: Int
    var bosId: Int32 { 1 }
    var eosId: Int32 { 2 }
    func encode(_ text: String) -> [Int32] { [] }
    func piece(_ id: Int32) -> String { "\(id)" }
    func bytes(of id: Int32, first: Bool) -> [UInt8] { [] }
}

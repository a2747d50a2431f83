import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align generate`: stream a continuation of a prompt.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text (or ids) from a prompt with a KV cache.")

    @Option(help: "A llama2.c .bin checkpoint or a Hugging Face LLaMA directory.") var model: String
    @Option(help: "tokenizer.model, tokenizer.bin, or a directory holding one (default: beside the model).") var tokenizer: String?
    @Option(help: "A PEFT LoRA adapter directory, folded into the model's weights.") var lora: String?
    @Option(help: "A PEFT prefix-tuning adapter directory: its keys and values go ahead of the prompt in every layer.") var prefix: String?
    @OptionGroup var quantization: QuantOptions
    @Option(help: "Prompt text (needs a tokenizer; BOS is added).") var prompt: String?
    @Option(name: .customLong("prompt-ids"), help: "Prompt as space-separated token ids, used as given.") var promptIds: String?
    // Unset sampling options come from the model's generation_config.json when it has one
    // (transformers' meaning: greedy unless do_sample), else from llama-align's defaults.
    @Option(name: .customLong("max-new-tokens"), parsing: .unconditional,
            help: "Tokens to generate at most (default: generation_config.json's max_new_tokens, else 256).") var maxNewTokens: Int?
    @Option(parsing: .unconditional, help: "Sampling temperature; 0 = greedy (default: generation_config.json, else 0.8).") var temperature: Float?
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Keep the k most likely tokens (0 = off; default: generation_config.json, else 0).") var topK: Int?
    @Option(name: .customLong("top-p"), parsing: .unconditional, help: "Nucleus sampling mass (1 = off; default: generation_config.json, else 0.9).") var topP: Float?
    @Option(name: .customLong("repetition-penalty"), parsing: .unconditional,
            help: "Penalty for tokens already present (1 = off; default: generation_config.json, else 1).") var repetitionPenalty: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Flag(name: .customLong("print-ids"), help: "Print the generated ids, space-separated, on one line.") var printIds = false
    @Flag(help: "Print the time per fused kernel (prefill and decode) to standard error afterwards.") var profile = false

    func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt or --prompt-ids") }
        if lora != nil && prefix != nil { throw ValidationError("--lora and --prefix together are not supported; give one") }
        if let maxNewTokens, maxNewTokens < 0 { throw ValidationError("--max-new-tokens must be ≥ 0, got \(maxNewTokens)") }
        // Written so that NaN fails every check.
        if let temperature, !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be a finite number ≥ 0, got \(temperature)") }
        if let topK, topK < 0 { throw ValidationError("--top-k must be ≥ 0 (0 = off), got \(topK)") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        if let repetitionPenalty, !(repetitionPenalty > 0 && repetitionPenalty.isFinite) {
            throw ValidationError("--repetition-penalty must be a finite number > 0 (1 = off), got \(repetitionPenalty)")
        }
    }

    func run() throws {
        if prefix != nil, quantization.quant != nil || QuantizedCheckpoint.recorded(in: model) != nil {
            throw CLIError("--prefix is not supported with a quantized model; generate with the prefix on the f32 model")
        }
        let m = try loadInferenceModel(path: model, lora: lora, quant: quantization.quant, groupSize: quantization.group.groupSize,
                                       head: quantization.head)
        let tok = try tokenizerFor(model: model, explicit: tokenizer, required: prompt != nil)
        if let tok { try checkTokenizer(tok, fits: m.config, tokenizer: tokenizer ?? "the tokenizer beside \(model)", model: model) }
        var ids: [Int32]
        if let promptIds {
            ids = try parseIds(promptIds)
        } else {
            ids = [tok?.bosId ?? 1] + (tok?.encode(prompt ?? "") ?? [])
        }
        if profile { for p in m.programs { p.setProfiling(true) } }
        let config = try GenerationConfig.beside(model: model)
        let base = (config ?? .llamaAlign).sampler(seed: seed)
        let settings = SamplerSettings(temperature: temperature ?? base.temperature, topK: topK ?? base.topK, topP: topP ?? base.topP,
                                       repetitionPenalty: repetitionPenalty ?? base.repetitionPenalty, seed: seed)
        try checkSampling(settings, from: config == nil ? nil : model)
        let stop = Set(config?.eosIds ?? []).union(tok.map { [$0.eosId] } ?? [])
        let maxNewTokens = self.maxNewTokens ?? config?.maxNewTokens ?? config?.maxLength.map { max($0 - ids.count, 0) } ?? 256
        // Refused before the prompt is echoed (the generator checks the same).
        if ids.count >= m.config.maxSeqLen && maxNewTokens > 0 {
            throw CLIError("the prompt has \(ids.count) tokens; the model's context is \(m.config.maxSeqLen)")
        }
        var gen = Generator(model: m, settings: settings, stopIds: stop)
        gen.prefix = try prefix.map { try TrainedPrefix(directory: $0, config: m.config) }
        var stream = tok.map { StreamingDecoder(tokenizer: $0) }
        let out = FileHandle.standardOutput
        if !printIds, let prompt { out.write(Data(prompt.utf8)) }
        let generated = try gen.generate(prompt: ids, maxNewTokens: maxNewTokens) { id in
            // Text streams as it is produced (a character is held back until complete).
            if !printIds, var s = stream {
                out.write(Data(s.push(id).utf8))
                stream = s
            }
        }
        if profile {
            var report = ProfileReport()
            for p in m.programs {
                let c = p.costs(sizes: m.sizes(batch: 1, seq: 1))
                let calls = p.kernelCalls
                report.add(p, flops: zip(c.flops, calls).map(*), bytes: zip(c.bytes, calls).map(*))
            }
            FileHandle.standardError.write(Data(report.table(top: 20).utf8))
        }
        if printIds || tok == nil {
            print(generated.map(String.init).joined(separator: " "))
        } else {
            if var s = stream { out.write(Data(s.finish().utf8)) }
            print()
        }
    }
}

/// A generation_config.json's values pass the checks the options pass.
func checkSampling(_ s: SamplerSettings, from model: String?) throws {
    guard let model else { return }
    let file = "\(model)/generation_config.json"
    if !(s.temperature >= 0 && s.temperature.isFinite) { throw CLIError("\(file): temperature must be a finite number ≥ 0, got \(s.temperature)") }
    if !(s.topP > 0 && s.topP <= 1) { throw CLIError("\(file): top_p must be in (0, 1], got \(s.topP)") }
    if !(s.repetitionPenalty > 0 && s.repetitionPenalty.isFinite) { throw CLIError("\(file): repetition_penalty must be > 0, got \(s.repetitionPenalty)") }
}

/// Parses "1 2 3" (spaces or commas) into ids, naming the bad token.
func parseIds(_ text: String) throws -> [Int32] {
    let parts = text.split(whereSeparator: { $0.isWhitespace || $0 == "," })
    guard !parts.isEmpty else { throw ValidationError("--prompt-ids is empty") }
    return try parts.map {
        guard let v = Int32($0) else { throw ValidationError("--prompt-ids: '\($0)' is not a token id") }
        return v
    }
}

/// The tokenizer given, or one found beside the model; nil when none is found and none is required.
func tokenizerFor(model: String, explicit: String?, required: Bool) throws -> (any Tokenizer)? {
    if let explicit { return try loadTokenizer(path: explicit) }
    if let tok = try tokenizerBeside(model: model) { return tok }
    if required { throw CLIError("no tokenizer found beside \(model); pass --tokenizer PATH") }
    return nil
}

/// A tokenizer with more pieces than the model has rows in its embedding belongs to another
/// model: its ids would fall outside the vocabulary (fewer pieces are fine: padded vocabularies).
func checkTokenizer(_ tok: any Tokenizer, fits config: LlamaConfig, tokenizer: String, model: String) throws {
    guard tok.vocabSize <= config.vocabSize else {
        throw CLIError("\(tokenizer) has \(tok.vocabSize) pieces but the model \(model) has a vocabulary of \(config.vocabSize); "
                       + "they do not belong together (pass the model's own tokenizer with --tokenizer)")
    }
}

/// A command-line failure: printed as one line, exit code 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

import Foundation

/// Makes a saved model folder a complete Hugging Face folder, so that transformers'
/// `AutoTokenizer`/`AutoModelForCausalLM.from_pretrained(folder)` see what this project sees:
/// `config.json` with the tokenizer's `bos_token_id`/`eos_token_id`/`pad_token_id`,
/// `generation_config.json`, and beside the tokenizer this project reads (`tokenizer.model`,
/// `tokenizer.bin`, `tokenizer.byte`) a `tokenizer.json`, `tokenizer_config.json` and
/// `special_tokens_map.json`. Files already there (copied from the model the run started
/// from) are kept; what is missing is written.
public enum HFFolder {
    /// Files carried over from the tokenizer's folder (normally the model's) besides the tokenizer.
    public static let tokenizerCompanions = ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]

    /// Completes `directory` (which holds `config.json` for a model, or only an adapter).
    public static func complete(directory: String) throws {
        let dir = directory as NSString
        let fm = FileManager.default
        let tok = try tokenizerBeside(model: directory)
        let configPath = dir.appendingPathComponent("config.json")
        var maxLength: Int?
        if fm.fileExists(atPath: configPath) {
            var (c, tied) = try HFConfig.load(path: configPath)
            c.tiedEmbeddings = tied ?? c.tiedEmbeddings
            maxLength = c.maxSeqLen
            if let tok {
                let tokens = (tok.bosId, tok.eosId, HFTokenizerFiles.padId(tok))
                try BinaryIO.writeAtomically(Data(try HFConfig.text(c, tokens: tokens).utf8), to: configPath)
            }
            let gen = dir.appendingPathComponent("generation_config.json")
            if !fm.fileExists(atPath: gen) {
                // What `llama-align generate` does without one (sampling at T 0.8, top-p 0.9).
                try write(GenerationConfig.llamaAlign.json(bos: tok?.bosId ?? 1, eos: tok?.eosId ?? 2, pad: tok.map(HFTokenizerFiles.padId)), to: gen)
            }
        }
        guard let tok else { return }
        let json = dir.appendingPathComponent("tokenizer.json")
        if !fm.fileExists(atPath: json), let data = try HFTokenizerFiles.tokenizerJSON(tok) {
            try BinaryIO.writeAtomically(data, to: json)
        }
        let config = dir.appendingPathComponent("tokenizer_config.json")
        if !fm.fileExists(atPath: config) { try write(HFTokenizerFiles.tokenizerConfig(tok, maxLength: maxLength), to: config) }
        let map = dir.appendingPathComponent("special_tokens_map.json")
        if !fm.fileExists(atPath: map) { try write(HFTokenizerFiles.specialTokens(tok), to: map) }
    }

    /// A JSON object, keys sorted, two-space indentation (as transformers writes these files).
    static func write(_ object: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try BinaryIO.writeAtomically(Data((HFConfig.pythonSpacing(String(decoding: data, as: UTF8.self)) + "\n").utf8), to: path)
    }
}

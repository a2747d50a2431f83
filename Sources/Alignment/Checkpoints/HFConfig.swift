import Foundation

/// The `config.json` of a Hugging Face `LlamaForCausalLM` directory, read and written with
/// `Codable` under Hugging Face's field names.
///
/// Reading ignores keys this project has no use for (`bos_token_id`, `transformers_version`, …)
/// and fields it only checks (`model_type`, `head_dim`, the biases) when they have an unexpected
/// type; a size that is not an integer, or a norm/RoPE value that is not a number, is an error
/// naming the field. Writing gives what `save_pretrained` gives: keys sorted, two-space
/// indentation, `"key": value`.
struct HFConfig: Codable, Equatable {
    var architectures: [String]?
    var modelType: String?
    var torchDtype: String?
    var hiddenAct: String?
    var hiddenSize: Int?
    var intermediateSize: Int?
    var numHiddenLayers: Int?
    var numAttentionHeads: Int?
    var numKeyValueHeads: Int?
    var vocabSize: Int?
    var maxPositionEmbeddings: Int?
    var rmsNormEps: Float?
    var ropeTheta: Float?
    var tieWordEmbeddings: Bool?
    var headDim: Int?
    var attentionBias: Bool?
    var mlpBias: Bool?
    /// transformers ≥ 5's home of θ (read only; `save` writes `rope_theta`).
    var ropeParameters: RopeParameters?
    /// `rope_scaling` is present and not null (any scaling is refused, so its value is not kept).
    var ropeScalingIsSet = false
    /// Written only (from the folder's tokenizer); reading takes them from the tokenizer itself.
    var bosTokenId: Int?
    var eosTokenId: Int?
    var padTokenId: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case architectures
        case modelType = "model_type"
        case torchDtype = "torch_dtype"
        case hiddenAct = "hidden_act"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case tieWordEmbeddings = "tie_word_embeddings"
        case headDim = "head_dim"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case ropeParameters = "rope_parameters"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
    }

    /// `rope_parameters`: `{"rope_type": "default", "rope_theta": 10000.0}`.
    struct RopeParameters: Codable, Equatable {
        var ropeType: String?
        var ropeTheta: Double?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type"
            case ropeTheta = "rope_theta"
        }
    }

    /// Read only: whether these are set is all that matters.
    private enum UnsupportedKeys: String, CodingKey {
        case ropeScaling = "rope_scaling"
    }

    /// The fields `LlamaConfig` is built from, with the kind of value each must hold.
    private static let integerKeys: Set<CodingKeys> = [.hiddenSize, .intermediateSize, .numHiddenLayers, .numAttentionHeads,
                                                        .numKeyValueHeads, .vocabSize, .maxPositionEmbeddings]
    private static let numberKeys: Set<CodingKeys> = [.rmsNormEps, .ropeTheta]

    /// The file `save` writes for `c`.
    init(_ c: LlamaConfig) {
        architectures = ["LlamaForCausalLM"]
        modelType = "llama"
        torchDtype = "float32"
        hiddenAct = "silu"
        hiddenSize = c.dim
        intermediateSize = c.hiddenDim
        numHiddenLayers = c.nLayers
        numAttentionHeads = c.nHeads
        numKeyValueHeads = c.nKVHeads
        vocabSize = c.vocabSize
        maxPositionEmbeddings = c.maxSeqLen
        rmsNormEps = c.normEps
        ropeTheta = c.ropeTheta
        tieWordEmbeddings = c.tiedEmbeddings
        bosTokenId = 1   // LLaMA's; `HFFolder.complete` writes the folder tokenizer's
        eosTokenId = 2
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Fields that are only checked: a value of another type is ignored, as an unknown key is.
        func lenient<T: Decodable>(_ type: T.Type, _ key: CodingKeys) -> T? {
            (try? c.decodeIfPresent(type, forKey: key)) ?? nil
        }
        architectures = lenient([String].self, .architectures)
        modelType = lenient(String.self, .modelType)
        torchDtype = lenient(String.self, .torchDtype)
        hiddenAct = lenient(String.self, .hiddenAct)
        headDim = lenient(Int.self, .headDim)
        tieWordEmbeddings = lenient(Bool.self, .tieWordEmbeddings)
        attentionBias = lenient(Bool.self, .attentionBias)
        mlpBias = lenient(Bool.self, .mlpBias)
        // Sizes must be integers (an integral number such as 64.0 is one) and norm/RoPE values
        // numbers (read as Double, then rounded once to Float); null counts as absent.
        func present(_ key: CodingKeys) throws -> Bool { try c.contains(key) && !c.decodeNil(forKey: key) }
        func wrongType(_ type: Any.Type, _ key: CodingKeys) -> DecodingError {
            .typeMismatch(type, DecodingError.Context(codingPath: c.codingPath + [key], debugDescription: "not a \(type)"))
        }
        func integer(_ key: CodingKeys) throws -> Int? {
            guard try present(key) else { return nil }
            if let i = try? c.decode(Int.self, forKey: key) { return i }
            if let d = try? c.decode(Double.self, forKey: key), d.rounded() == d, abs(d) < 0x1p62 { return Int(d) }
            throw wrongType(Int.self, key)
        }
        func number(_ key: CodingKeys) throws -> Float? {
            guard try present(key) else { return nil }
            guard let d = try? c.decode(Double.self, forKey: key) else { throw wrongType(Double.self, key) }
            return Float(d)
        }
        hiddenSize = try integer(.hiddenSize)
        intermediateSize = try integer(.intermediateSize)
        numHiddenLayers = try integer(.numHiddenLayers)
        numAttentionHeads = try integer(.numAttentionHeads)
        numKeyValueHeads = try integer(.numKeyValueHeads)
        vocabSize = try integer(.vocabSize)
        maxPositionEmbeddings = try integer(.maxPositionEmbeddings)
        rmsNormEps = try number(.rmsNormEps)
        ropeTheta = try number(.ropeTheta)
        ropeParameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        let unsupported = try decoder.container(keyedBy: UnsupportedKeys.self)
        ropeScalingIsSet = try unsupported.contains(.ropeScaling) && !unsupported.decodeNil(forKey: .ropeScaling)
    }

    /// Parses `config.json` at `path`. `tied` is `tie_word_embeddings` when the file says.
    static func load(path: String) throws -> (config: LlamaConfig, tied: Bool?) {
        try parse(BinaryIO.readFile(path), path: path)
    }

    /// Parses the contents `bytes` of a `config.json`; `path` names it in errors.
    static func parse(_ bytes: Data, path: String) throws -> (config: LlamaConfig, tied: Bool?) {
        let file: HFConfig
        do {
            file = try JSONDecoder().decode(HFConfig.self, from: bytes)
        } catch let error as DecodingError {
            throw CheckpointError(path, problem(error))
        }
        return try file.llamaConfig(source: path)
    }

    /// The one-line problem a decoding error stands for.
    private static func problem(_ error: DecodingError) -> String {
        let context: DecodingError.Context
        switch error {
        case .typeMismatch(_, let c) where c.codingPath.isEmpty: return "malformed config: the JSON is not an object"
        case .dataCorrupted(let c) where c.codingPath.isEmpty:
            return "malformed JSON: " + (c.underlyingError.map { "\($0)" } ?? c.debugDescription)
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c): context = c
        @unknown default: return "malformed config: \(error)"
        }
        let name = context.codingPath.first?.stringValue ?? ""
        switch CodingKeys(stringValue: name) {
        case let key? where integerKeys.contains(key): return "field '\(name)' is not an integer"
        case let key? where numberKeys.contains(key): return "field '\(name)' is not a number"
        default: return "field '\(name)': \(context.debugDescription)"
        }
    }

    /// The model these fields describe (Hugging Face's defaults for absent optional fields).
    func llamaConfig(source path: String) throws -> (config: LlamaConfig, tied: Bool?) {
        if let arch = modelType, arch != "llama" {
            throw CheckpointError(path, "model_type is '\(arch)'; only 'llama' models are supported")
        }
        if ropeScalingIsSet {
            throw CheckpointError(path, "rope_scaling is set; scaled RoPE is not supported")
        }
        for (key, value) in [(CodingKeys.attentionBias, attentionBias), (.mlpBias, mlpBias)] where value == true {
            throw CheckpointError(path, "\(key.rawValue) is true; LLaMA layers with biases are not supported")
        }
        func required(_ value: Int?, _ key: CodingKeys) throws -> Int {
            guard let value else { throw CheckpointError(path, "missing field '\(key.rawValue)'") }
            return value
        }
        let heads = try required(numAttentionHeads, .numAttentionHeads)
        let config = LlamaConfig(
            dim: try required(hiddenSize, .hiddenSize), hiddenDim: try required(intermediateSize, .intermediateSize),
            nLayers: try required(numHiddenLayers, .numHiddenLayers), nHeads: heads,
            nKVHeads: numKeyValueHeads ?? heads, vocabSize: try required(vocabSize, .vocabSize),
            maxSeqLen: maxPositionEmbeddings ?? 2048,
            normEps: rmsNormEps ?? 1e-6, ropeTheta: try theta(source: path))
        if let headDim, heads > 0, headDim != config.dim / heads {
            throw CheckpointError(path, "head_dim \(headDim) differs from hidden_size / num_attention_heads; not supported")
        }
        try LlamaWeights.checkConfig(config, source: path)
        return (config, tieWordEmbeddings)
    }

    /// RoPE's θ: `rope_theta` (transformers < 5), or `rope_parameters.rope_theta` (transformers ≥ 5
    /// writes it only there, with `rope_type`; any type but "default" is scaled RoPE, refused like
    /// `rope_scaling`). 10000 when neither says; an error when both do and disagree.
    func theta(source path: String) throws -> Float {
        if let type = ropeParameters?.ropeType, type != "default" {
            throw CheckpointError(path, "rope_parameters.rope_type is '\(type)'; scaled RoPE is not supported")
        }
        let nested = ropeParameters?.ropeTheta.map { Float($0) }
        if let top = ropeTheta, let nested, top != nested {
            throw CheckpointError(path, "rope_theta \(top) and rope_parameters.rope_theta \(nested) disagree")
        }
        return ropeTheta ?? nested ?? 10000
    }

    /// The `config.json` text for `c`: keys sorted, two-space indentation and `"key": value`, as
    /// transformers' `save_pretrained` writes it (`json.dumps(…, indent=2, sort_keys=True)`).
    /// Throws for a non-finite norm eps or RoPE theta (JSON has no such numbers; `validate` refuses them first).
    /// `tokens` (BOS, EOS, pad) replace LLaMA's default BOS 1 / EOS 2.
    static func text(_ c: LlamaConfig, tokens: (bos: Int32, eos: Int32, pad: Int32)? = nil) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var hf = HFConfig(c)
        if let tokens { (hf.bosTokenId, hf.eosTokenId, hf.padTokenId) = (Int(tokens.bos), Int(tokens.eos), Int(tokens.pad)) }
        return pythonSpacing(String(decoding: try encoder.encode(hf), as: UTF8.self)) + "\n"
    }

    /// Foundation's pretty JSON separates a key from its value with " : "; Python's json with ": ".
    /// A line that starts with a quoted name free of quotes and backslashes followed by " : " is a key.
    static func pythonSpacing(_ json: String) -> String {
        let key = #/^(\s*"[^"\\]*") : /#
        return json.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.replacing(key) { "\($0.output.1): " } }
            .joined(separator: "\n")
    }
}

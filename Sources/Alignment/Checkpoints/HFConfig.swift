import Foundation

/// Reading and writing the `config.json` of a Hugging Face `LlamaForCausalLM` directory.
enum HFConfig {
    /// Parses `config.json` at `path`. `tied` is `tie_word_embeddings` when the file says.
    static func load(path: String) throws -> (config: LlamaConfig, tied: Bool?) {
        let bytes = try BinaryIO.readFile(path)
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: bytes) as? [String: Any] else {
                throw CheckpointError(path, "malformed config: the JSON is not an object")
            }
            root = object
        } catch let e as CheckpointError {
            throw e
        } catch {
            throw CheckpointError(path, "malformed JSON: \(error.localizedDescription)")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            switch root[key] {
            case let i as Int: return i
            case let d as Double where d.rounded() == d && abs(d) < 0x1p62: return Int(d)
            case nil, is NSNull:
                if let value { return value }
                throw CheckpointError(path, "missing field '\(key)'")
            default: throw CheckpointError(path, "field '\(key)' is not an integer")
            }
        }
        func float(_ key: String, default value: Float) throws -> Float {
            switch root[key] {
            case let d as Double: return Float(d)
            case let i as Int: return Float(i)
            case nil, is NSNull: return value
            default: throw CheckpointError(path, "field '\(key)' is not a number")
            }
        }
        if let arch = root["model_type"] as? String, arch != "llama" {
            throw CheckpointError(path, "model_type is '\(arch)'; only 'llama' models are supported")
        }
        if let scaling = root["rope_scaling"], !(scaling is NSNull) {
            throw CheckpointError(path, "rope_scaling is set; scaled RoPE is not supported")
        }
        for key in ["attention_bias", "mlp_bias"] where (root[key] as? Bool) == true {
            throw CheckpointError(path, "\(key) is true; LLaMA layers with biases are not supported")
        }
        let theta = try ropeTheta(root, path: path)
        let heads = try int("num_attention_heads")
        let config = LlamaConfig(
            dim: try int("hidden_size"), hiddenDim: try int("intermediate_size"),
            nLayers: try int("num_hidden_layers"), nHeads: heads,
            nKVHeads: try int("num_key_value_heads", default: heads), vocabSize: try int("vocab_size"),
            maxSeqLen: try int("max_position_embeddings", default: 2048),
            normEps: try float("rms_norm_eps", default: 1e-6), ropeTheta: theta)
        if let headDim = root["head_dim"] as? Int, heads > 0, headDim != config.dim / heads {
            throw CheckpointError(path, "head_dim \(headDim) differs from hidden_size / num_attention_heads; not supported")
        }
        try LlamaWeights.checkConfig(config, source: path)
        return (config, root["tie_word_embeddings"] as? Bool)
    }

    /// RoPE's θ: `rope_theta` (transformers < 5), or `rope_parameters.rope_theta` (transformers ≥ 5
    /// writes it only there, with `rope_type`; any type but "default" is scaled RoPE, refused like
    /// `rope_scaling`). 10000 when neither says; an error when both do and disagree.
    private static func ropeTheta(_ root: [String: Any], path: String) throws -> Float {
        func number(_ value: Any?, _ key: String) throws -> Float? {
            switch value {
            case nil, is NSNull: return nil
            case let d as Double: return Float(d)
            case let i as Int: return Float(i)
            default: throw CheckpointError(path, "field '\(key)' is not a number")
            }
        }
        let top = try number(root["rope_theta"], "rope_theta")
        var nested: Float?
        switch root["rope_parameters"] {
        case nil, is NSNull: break
        case let p as [String: Any]:
            if let type = p["rope_type"], !(type is NSNull), (type as? String) != "default" {
                throw CheckpointError(path, "rope_parameters.rope_type is '\(type)'; scaled RoPE is not supported")
            }
            nested = try number(p["rope_theta"], "rope_parameters.rope_theta")
        default: throw CheckpointError(path, "field 'rope_parameters' is not an object")
        }
        if let top, let nested, top != nested {
            throw CheckpointError(path, "rope_theta \(top) and rope_parameters.rope_theta \(nested) disagree")
        }
        return top ?? nested ?? 10000
    }

    /// The `config.json` text for `c`.
    static func text(_ c: LlamaConfig) -> String {
        let fields: [(String, String)] = [
            ("architectures", "[\"LlamaForCausalLM\"]"),
            ("model_type", "\"llama\""),
            ("torch_dtype", "\"float32\""),
            ("hidden_act", "\"silu\""),
            ("hidden_size", "\(c.dim)"),
            ("intermediate_size", "\(c.hiddenDim)"),
            ("num_hidden_layers", "\(c.nLayers)"),
            ("num_attention_heads", "\(c.nHeads)"),
            ("num_key_value_heads", "\(c.nKVHeads)"),
            ("vocab_size", "\(c.vocabSize)"),
            ("max_position_embeddings", "\(c.maxSeqLen)"),
            ("rms_norm_eps", number(c.normEps)),
            ("rope_theta", number(c.ropeTheta)),
            ("tie_word_embeddings", c.tiedEmbeddings ? "true" : "false"),
        ]
        return "{\n" + fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    /// The shortest decimal that reads back as `x` (Swift's description is valid JSON for finite values).
    private static func number(_ x: Float) -> String {
        x.isFinite ? x.description : "0"
    }
}

import Foundation
import KernelRuntime
import LlamaGraphs

/// Prefix-tuning adapters in PEFT's layout: a directory with `adapter_config.json`
/// (`peft_type` `PREFIX_TUNING`, `num_virtual_tokens`, `num_layers`, `token_dim` = KVH·HD and
/// `num_attention_heads` = KVH for a GQA model, as PEFT sets them from `num_key_value_heads`)
/// and `adapter_model.safetensors` holding one tensor, `prompt_embeddings` `[P, L·2·KVH·HD]`:
/// the past keys and values PEFT passes to the model (`PrefixConfig` for the entry order).
public enum PEFTPrefix {
    /// The one tensor of the file.
    public static let tensorName = "prompt_embeddings"
    /// Beside the table, for a reparameterized prefix trained here: the MLP's tensors
    /// (`PrefixEncoderPrograms.parameters`, `prefix_w2`/`prefix_b2` rows in `prefix_kv`'s order),
    /// which PEFT does not save (it saves only the projected table); resuming and `prefix_path`
    /// with `prefix_projection` read them.
    public static let encoderFile = "prefix_encoder.safetensors"

    /// Reads the prefix in `directory` for a base model of `config`: its settings and
    /// `prefix_kv` in the programs' layout. Errors name the file and, for a prefix that does
    /// not fit the base, the tensor (or field) and both shapes.
    public static func load(directory: String, config: LlamaConfig) throws -> (prefix: PrefixConfig, table: [Float]) {
        let dir = URL(fileURLWithPath: directory)
        let configPath = try PEFTAdapter.existingConfigPath(directory)
        let json = try? JSONSerialization.jsonObject(with: try BinaryIO.readFile(configPath))
        guard let root = json as? [String: Any] else { throw CheckpointError(configPath, "expected a JSON object") }
        let type = root["peft_type"] as? String
        guard type == "PREFIX_TUNING" else {
            throw CheckpointError(configPath, "peft_type is \(type ?? "missing"); a prefix (--prefix, prefix_path) must be PREFIX_TUNING")
        }
        guard let tokens = root["num_virtual_tokens"] as? Int else { throw CheckpointError(configPath, "missing integer 'num_virtual_tokens'") }
        let prefix: PrefixConfig
        do { prefix = try PrefixConfig(tokens: tokens) } catch { throw CheckpointError(configPath, "num_virtual_tokens: \(error)") }
        if let sub = root["num_transformer_submodules"] as? Int, sub != 1 {
            throw CheckpointError(configPath, "num_transformer_submodules is \(sub); a decoder-only LLaMA has 1")
        }
        let want: [(String, Int)] = [("num_layers", config.nLayers), ("token_dim", config.kvDim), ("num_attention_heads", config.nKVHeads)]
        for (field, value) in want {
            if let got = root[field] as? Int, got != value {
                throw CheckpointError(configPath, "\(field) is \(got), but the base model needs \(value) (\(config.nLayers) layers, \(config.nKVHeads) KV heads of \(config.headDim))")
            }
        }
        let file = try Safetensors.open(path: dir.appendingPathComponent(PEFTAdapter.weightsFile).path)
        let shape = prefix.peftShape(config)
        guard let info = file.tensors[tensorName] else {
            throw CheckpointError(file.path, "missing tensor '\(tensorName)' (expected shape \(shape))")
        }
        guard info.shape == shape else {
            throw CheckpointError(file.path, "tensor '\(tensorName)' has shape \(info.shape), but the base model needs \(shape) ([num_virtual_tokens, layers·2·KV heads·head dim])")
        }
        if let extra = file.names.first(where: { $0 != tensorName }) {
            throw CheckpointError(file.path, "tensor '\(extra)' is not part of a prefix adapter (only '\(tensorName)')")
        }
        return (prefix, prefix.internalTable(peft: try file.floats(tensorName), config: config))
    }

    /// The MLP of a reparameterized prefix saved here (`encoderFile`), checked against
    /// `prefix` (whose `projection` is the hidden width) and `config`; nil when the file is absent.
    public static func loadEncoder(directory: String, prefix: PrefixConfig, config: LlamaConfig) throws -> [String: [Float]]? {
        let path = (directory as NSString).appendingPathComponent(encoderFile)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let file = try Safetensors.open(path: path)
        var out: [String: [Float]] = [:]
        for (name, shape) in prefix.tensorShapes(config) where name != Prefix.parameter {
            guard let info = file.tensors[name] else { throw CheckpointError(path, "missing tensor '\(name)' (expected shape \(shape))") }
            guard info.shape == shape else {
                throw CheckpointError(path, "tensor '\(name)' has shape \(info.shape), but this prefix needs \(shape) (num_prefix_tokens \(prefix.tokens), prefix_projection_hidden_size \(prefix.projection ?? 0))")
            }
            out[name] = try file.floats(name)
        }
        return out
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (F32) into `directory`
    /// (created if needed), and with `encoder` (a reparameterized prefix's MLP) `encoderFile`.
    /// `baseModel` is recorded as `base_model_name_or_path`.
    public static func save(prefix: PrefixConfig, table: [Float], config: LlamaConfig, to directory: String, baseModel: String? = nil,
                            encoder: [String: [Float]]? = nil) throws {
        let dir = URL(fileURLWithPath: directory)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError(directory, "cannot create directory (\(error.localizedDescription))")
        }
        guard table.count == prefix.shape(config).reduce(1, *) else {
            throw RuntimeError("prefix_kv has \(table.count) values, expected \(prefix.shape(config))")
        }
        let tensor = Safetensors.Tensor(shape: prefix.peftShape(config), values: prefix.peftTable(table, config: config))
        try Safetensors.write([tensorName: tensor], to: dir.appendingPathComponent(PEFTAdapter.weightsFile).path, metadata: ["format": "pt"])
        if let encoder {
            var tensors: [String: Safetensors.Tensor] = [:]
            for (name, shape) in prefix.tensorShapes(config) where name != Prefix.parameter {
                guard let v = encoder[name], v.count == shape.reduce(1, *) else { throw RuntimeError("the prefix encoder lacks or mis-sizes '\(name)'") }
                tensors[name] = Safetensors.Tensor(shape: shape, values: v)
            }
            try Safetensors.write(tensors, to: dir.appendingPathComponent(encoderFile).path)
        }
        let settings: [String: Any] = [
            "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": prefix.tokens,
            "num_layers": config.nLayers, "token_dim": config.kvDim, "num_attention_heads": config.nKVHeads,
            "encoder_hidden_size": prefix.projection ?? config.kvDim, "num_transformer_submodules": 1,
            "prefix_projection": prefix.projection != nil,
            "inference_mode": true, "base_model_name_or_path": baseModel ?? NSNull(), "revision": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted, .sortedKeys])
        try BinaryIO.writeAtomically(data, to: dir.appendingPathComponent(PEFTAdapter.configFile).path)
    }

    /// Whether `directory` holds a prefix adapter (its config says `PREFIX_TUNING`).
    public static func isPrefix(directory: String) -> Bool {
        let path = (directory as NSString).appendingPathComponent(PEFTAdapter.configFile)
        guard let data = FileManager.default.contents(atPath: path),
              let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return root["peft_type"] as? String == "PREFIX_TUNING"
    }
}

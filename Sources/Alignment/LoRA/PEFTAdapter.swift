import Foundation
import KernelRuntime
import LlamaGraphs

/// LoRA adapters in PEFT's layout: a directory with `adapter_config.json` and
/// `adapter_model.safetensors` whose keys are
/// `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
/// `….lora_B.weight` (`[out, r]`), in Hugging Face's row order. The q/k projections' rows are
/// RoPE-permuted at load like the weights they adapt (`HFCheckpoint`), so `B` of `wq`/`wk`
/// has its rows permuted the same way (`A` acts on the input and is not).
public enum PEFTAdapter {
    /// The config file's name.
    public static let configFile = "adapter_config.json"
    /// The tensor file's name.
    public static let weightsFile = "adapter_model.safetensors"

    /// The key of one layer's adapter tensor (`part` is `lora_A` or `lora_B`).
    static func key(layer: Int, module: String, part: String) -> String {
        "base_model.model.model.layers.\(layer).\(LoRAConfig.hfPath(module)).\(part).weight"
    }

    /// Reads the adapter in `directory` for a base model of `config`: its settings and every
    /// module's adapters (zero for modules it does not target). Errors name the file and, for a
    /// tensor that does not fit the base, the tensor and both shapes.
    /// `adapter_config.json` in `directory`, or an error saying why there is none (no such
    /// directory, a file given instead, a directory without one).
    static func existingConfigPath(_ directory: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            throw CheckpointError(directory, "no such file or directory (expected a PEFT adapter directory)")
        }
        guard isDir.boolValue else { throw CheckpointError(directory, "is a file; pass the PEFT adapter's directory (holding \(configFile))") }
        let path = (directory as NSString).appendingPathComponent(configFile)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError(directory, "holds no \(configFile) (not a PEFT adapter directory)")
        }
        return path
    }

    public static func load(directory: String, config: LlamaConfig) throws -> (lora: LoRAConfig, adapters: [String: [Float]]) {
        let dir = URL(fileURLWithPath: directory)
        let configPath = try existingConfigPath(directory)
        let json = try? JSONSerialization.jsonObject(with: try BinaryIO.readFile(configPath))
        guard let root = json as? [String: Any] else { throw CheckpointError(configPath, "expected a JSON object") }
        if let type = root["peft_type"] as? String, type != "LORA" {
            let hint = type == "PREFIX_TUNING" ? " (a prefix adapter: pass it as --prefix, or prefix_path with prefix_tuning)" : ""
            throw CheckpointError(configPath, "peft_type is \(type); only LORA adapters load here\(hint)")
        }
        for flag in ["use_dora", "fan_in_fan_out"] where (root[flag] as? Bool) == true {
            throw CheckpointError(configPath, "\(flag) is not supported")
        }
        for field in ["rank_pattern", "alpha_pattern"] {
            if let p = root[field] as? [String: Any], !p.isEmpty { throw CheckpointError(configPath, "\(field) (per-module ranks or alphas) is not supported") }
        }
        // Settings that would change the model in ways an adapter of `A`s and `B`s cannot carry
        // here: refused rather than silently dropped.
        for field in ["layers_to_transform", "modules_to_save", "trainable_token_indices"] {
            if let v = root[field], !(v is NSNull), !((v as? [Any])?.isEmpty ?? false) {
                throw CheckpointError(configPath, "\(field) is not supported (only lora_A/lora_B on every layer load here)")
            }
        }
        if let bias = root["bias"] as? String, bias != "none" { throw CheckpointError(configPath, "bias '\(bias)' is not supported (only \"none\")") }
        if (root["lora_bias"] as? Bool) == true { throw CheckpointError(configPath, "lora_bias is not supported") }
        guard let rank = root["r"] as? Int else { throw CheckpointError(configPath, "missing integer 'r'") }
        let alpha = (root["lora_alpha"] as? NSNumber)?.doubleValue
        let targets: [String]? = (root["target_modules"] as? [String]) ?? (root["target_modules"] as? String).map { [$0] }
        let lora: LoRAConfig
        do {
            lora = try LoRAConfig(rank: rank, alpha: alpha ?? 8, rslora: (root["use_rslora"] as? Bool) ?? false, targetModules: targets)
        } catch { throw CheckpointError(configPath, "\(error)") }

        let file = try Safetensors.open(path: dir.appendingPathComponent(weightsFile).path)
        var adapters: [String: [Float]] = [:]
        for (name, shape) in lora.adapterShapes(config) { adapters[name] = [Float](repeating: 0, count: shape.reduce(1, *)) }
        for module in lora.targets {
            let (out, inp) = LoRAConfig.projectionShape(module, config)
            var a: [Float] = [], b: [Float] = []
            for layer in 0 ..< config.nLayers {
                a += try tensor(file, key(layer: layer, module: module, part: "lora_A"), shape: [rank, inp])
                let up = try tensor(file, key(layer: layer, module: module, part: "lora_B"), shape: [out, rank])
                b += ropeRows(module, config).map { HFCheckpoint.permuteRows(up, heads: $0, headDim: config.headDim, width: rank, toHF: false) } ?? up
            }
            adapters[LoRA.aName(module)] = a
            adapters[LoRA.bName(module)] = b
        }
        let used = Set(lora.targets.flatMap { m in (0 ..< config.nLayers).flatMap { l in ["lora_A", "lora_B"].map { key(layer: l, module: m, part: $0) } } })
        if let extra = file.names.first(where: { !used.contains($0) }) {
            throw CheckpointError(file.path, "tensor '\(extra)' is not an adapter of this \(config.nLayers)-layer model's targets (\(lora.targets.compactMap { LoRAConfig.hfNames[$0] }.joined(separator: ", ")))")
        }
        return (lora, adapters)
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (F32) into `directory`
    /// (created if needed): the targets' adapters under PEFT's keys, q/k `B` rows in Hugging
    /// Face order. `baseModel` is recorded as `base_model_name_or_path`.
    public static func save(lora: LoRAConfig, adapters: [String: [Float]], config: LlamaConfig, to directory: String, baseModel: String? = nil) throws {
        let dir = URL(fileURLWithPath: directory)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CheckpointError(directory, "cannot create directory (\(error.localizedDescription))")
        }
        var out: [String: Safetensors.Tensor] = [:]
        for module in lora.targets {
            let (o, i) = LoRAConfig.projectionShape(module, config)
            let r = lora.rank
            guard let a = adapters[LoRA.aName(module)], a.count == config.nLayers * r * i,
                  let b = adapters[LoRA.bName(module)], b.count == config.nLayers * o * r else {
                throw RuntimeError("adapters lack or mis-size those of \(module)")
            }
            for layer in 0 ..< config.nLayers {
                out[key(layer: layer, module: module, part: "lora_A")] = .init(shape: [r, i], values: Array(a[layer * r * i ..< (layer + 1) * r * i]))
                let up = Array(b[layer * o * r ..< (layer + 1) * o * r])
                let hf = ropeRows(module, config).map { HFCheckpoint.permuteRows(up, heads: $0, headDim: config.headDim, width: r, toHF: true) } ?? up
                out[key(layer: layer, module: module, part: "lora_B")] = .init(shape: [o, r], values: hf)
            }
        }
        try Safetensors.write(out, to: dir.appendingPathComponent(weightsFile).path, metadata: ["format": "pt"])
        let settings: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": lora.rank, "lora_alpha": lora.alpha, "use_rslora": lora.rslora,
            "target_modules": lora.targets.compactMap { LoRAConfig.hfNames[$0] }, "lora_dropout": lora.dropout, "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "use_dora": false,
            "base_model_name_or_path": baseModel ?? NSNull(), "modules_to_save": NSNull(), "rank_pattern": [String: Any](),
            "alpha_pattern": [String: Any](),
        ]
        let data = try JSONSerialization.data(withJSONObject: settings, options: [.prettyPrinted, .sortedKeys])
        try BinaryIO.writeAtomically(data, to: dir.appendingPathComponent(configFile).path)
    }

    /// The head count whose rows RoPE permutes (q, k), nil for the other projections.
    static func ropeRows(_ module: String, _ c: LlamaConfig) -> Int? {
        module == "wq" ? c.nHeads : module == "wk" ? c.nKVHeads : nil
    }

    private static func tensor(_ file: Safetensors.File, _ name: String, shape: [Int]) throws -> [Float] {
        guard let info = file.tensors[name] else { throw CheckpointError(file.path, "missing tensor '\(name)' (expected shape \(shape))") }
        guard info.shape == shape else {
            throw CheckpointError(file.path, "tensor '\(name)' has shape \(info.shape), but the base model needs \(shape)")
        }
        return try file.floats(name)
    }

    /// The base weights with the adapters folded in: `W + s·B·A` for every target (what
    /// `PeftModel.merge_and_unload` computes), so the plain programs run the adapted model.
    public static func merged(_ weights: LlamaWeights, lora: LoRAConfig, adapters: [String: [Float]]) throws -> LlamaWeights {
        var w = weights
        let c = weights.config, r = lora.rank, s = Float(lora.scale)
        for module in lora.targets {
            let (o, i) = LoRAConfig.projectionShape(module, c)
            guard var base = w.tensors[module], let a = adapters[LoRA.aName(module)], let b = adapters[LoRA.bName(module)],
                  base.count == c.nLayers * o * i, a.count == c.nLayers * r * i, b.count == c.nLayers * o * r else {
                throw RuntimeError("cannot merge the adapters of \(module): missing or mis-sized")
            }
            for l in 0 ..< c.nLayers {
                for row in 0 ..< o {
                    for k in 0 ..< r {
                        let bk = s * b[(l * o + row) * r + k]
                        if bk == 0 { continue }
                        let aRow = (l * r + k) * i, wRow = (l * o + row) * i
                        for col in 0 ..< i { base[wRow + col] += bk * a[aRow + col] }
                    }
                }
            }
            w.tensors[module] = base
        }
        return w
    }
}

import LlamaGraphs

/// A LoRA or prefix-tuning run's adapters at one moment, as checkpoints write them
/// (`PEFTAdapter.save`, `PEFTPrefix.save`).
public struct AdapterSnapshot: Sendable {
    /// The LoRA setup (nil for a prefix).
    public var lora: LoRAConfig?
    /// The prefix setup (nil for LoRA).
    public var prefix: PrefixConfig?
    /// The adapter tensors by internal name (`lora_a_wq`, …, or `prefix_kv`).
    public var adapters: [String: [Float]]
    /// The base model's configuration.
    public var config: LlamaConfig
    /// Recorded as `base_model_name_or_path`.
    public var baseModel: String?

    public init(lora: LoRAConfig, adapters: [String: [Float]], config: LlamaConfig, baseModel: String? = nil) {
        self.lora = lora; self.adapters = adapters; self.config = config; self.baseModel = baseModel
    }

    public init(prefix: PrefixConfig, table: [Float], config: LlamaConfig, baseModel: String? = nil) {
        self.prefix = prefix; self.adapters = [Prefix.parameter: table]; self.config = config; self.baseModel = baseModel
    }

    /// What `store` holds beside the model (nil for the model alone).
    public init?(_ store: ParameterStore, baseModel: String?) {
        if let lora = store.lora {
            self.init(lora: lora, adapters: store.adapters(), config: store.config, baseModel: baseModel)
        } else if let prefix = store.prefix {
            // With a projection the MLP's tensors ride along (`PEFTPrefix.encoderFile`); the
            // table must have been encoded from them (`LMTrainer.encodePrefix`).
            self.init(prefix: prefix, table: [], config: store.config, baseModel: baseModel)
            adapters = store.adapters()
        } else {
            return nil
        }
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `directory`.
    public func save(to directory: String) throws {
        if let prefix {
            let encoder = prefix.projection == nil ? nil : adapters.filter { $0.key != Prefix.parameter }
            try PEFTPrefix.save(prefix: prefix, table: adapters[Prefix.parameter] ?? [], config: config, to: directory, baseModel: baseModel,
                                encoder: encoder)
        } else if let lora {
            try PEFTAdapter.save(lora: lora, adapters: adapters, config: config, to: directory, baseModel: baseModel)
        }
    }
}

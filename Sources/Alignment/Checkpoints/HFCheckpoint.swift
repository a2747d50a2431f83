import Foundation

/// A Hugging Face `LlamaForCausalLM` directory: `config.json` plus `model.safetensors`, or
/// shards listed by `model.safetensors.index.json`. Tensors may be F32, F16 or BF16.
///
/// Hugging Face stores the q/k projection rows permuted for rotate-half RoPE. Within each
/// head of size `hd`, HF row `i` (`i < hd/2`) is internal row `2i` and HF row `hd/2 + i` is
/// internal row `2i + 1`; `load` undoes this and `save` applies it, so the internal layout
/// (interleaved pairs, as in llama2.c) round-trips exactly.
public enum HFCheckpoint {
    /// Loads the model in `directory`.
    public static func load(directory: String) throws -> LlamaWeights {
        let dir = URL(fileURLWithPath: directory)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError(directory, "no such directory")
        }
        let loaded = try HFConfig.load(path: dir.appendingPathComponent("config.json").path)
        let source = try TensorSource(directory: dir)
        var config = loaded.config
        // An absent lm_head means tied whatever the config says; a present one is used only when untied.
        config.tiedEmbeddings = (loaded.tied ?? false) || !source.has("lm_head.weight")

        let c = config
        let (hd, d) = (c.headDim, c.dim)
        var tensors: [String: [Float]] = [:]
        tensors["embed"] = try source.floats("model.embed_tokens.weight", shape: [c.vocabSize, d])
        tensors["final_norm"] = try source.floats("model.norm.weight", shape: [d])
        if !c.tiedEmbeddings {
            tensors["lm_head"] = try source.floats("lm_head.weight", shape: [c.vocabSize, d])
        }
        for (name, hfName, shape, heads) in layerTensors(c) {
            var stacked: [Float] = []
            stacked.reserveCapacity(c.nLayers * shape.reduce(1, *))
            for layer in 0 ..< c.nLayers {
                let values = try source.floats("model.layers.\(layer).\(hfName).weight", shape: shape)
                if let heads {
                    stacked += permuteRows(values, heads: heads, headDim: hd, width: d, toHF: false)
                } else {
                    stacked += values
                }
            }
            tensors[name] = stacked
        }
        let weights = LlamaWeights(config: c, tensors: tensors)
        try weights.validate(source: directory)
        return weights
    }

    /// The model a Hugging Face `config.json`'s contents `data` describe (`path` names it in errors),
    /// and its `tie_word_embeddings` when set, validated as `load` validates it.
    public static func config(data: Data, path: String) throws -> (config: LlamaConfig, tied: Bool?) {
        try HFConfig.parse(data, path: path)
    }

    /// Writes `config.json` and `model.safetensors` (F32, `format: pt`) into `directory`
    /// (created if needed), each atomically. Other files there are left alone.
    public static func save(_ w: LlamaWeights, to directory: String) throws {
        try w.validate(source: directory)
        let c = w.config
        let dir = URL(fileURLWithPath: directory)
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError(directory, "cannot create directory (\(error.localizedDescription))")
        }
        let (hd, d) = (c.headDim, c.dim)
        var out: [String: Safetensors.Tensor] = [:]
        func put(_ name: String, _ shape: [Int], _ values: [Float]) {
            out[name] = Safetensors.Tensor(shape: shape, values: values)
        }
        func all(_ name: String) -> [Float] { w.tensors[name] ?? [] }  // present: validated above
        put("model.embed_tokens.weight", [c.vocabSize, d], all("embed"))
        put("model.norm.weight", [d], all("final_norm"))
        if !c.tiedEmbeddings { put("lm_head.weight", [c.vocabSize, d], all("lm_head")) }
        for (name, hfName, shape, heads) in layerTensors(c) {
            let stacked = all(name)
            let size = shape.reduce(1, *)
            for layer in 0 ..< c.nLayers {
                var values = Array(stacked[layer * size ..< (layer + 1) * size])
                if let heads { values = permuteRows(values, heads: heads, headDim: hd, width: d, toHF: true) }
                put("model.layers.\(layer).\(hfName).weight", shape, values)
            }
        }
        try Safetensors.write(out, to: dir.appendingPathComponent("model.safetensors").path, metadata: ["format": "pt"])
        try BinaryIO.writeAtomically(Data(try HFConfig.text(c).utf8), to: dir.appendingPathComponent("config.json").path)
    }

    /// The per-layer tensors: internal name, HF name inside `model.layers.N.`, the shape of
    /// one layer, and the head count when the rows are RoPE-permuted (q and k).
    static func layerTensors(_ c: LlamaConfig) -> [(name: String, hfName: String, shape: [Int], heads: Int?)] {
        let (d, kv, f) = (c.dim, c.kvDim, c.hiddenDim)
        return [
            ("attn_norm", "input_layernorm", [d], nil),
            ("wq", "self_attn.q_proj", [d, d], c.nHeads),
            ("wk", "self_attn.k_proj", [kv, d], c.nKVHeads),
            ("wv", "self_attn.v_proj", [kv, d], nil),
            ("wo", "self_attn.o_proj", [d, d], nil),
            ("ffn_norm", "post_attention_layernorm", [d], nil),
            ("w1", "mlp.gate_proj", [f, d], nil),
            ("w2", "mlp.down_proj", [d, f], nil),
            ("w3", "mlp.up_proj", [f, d], nil),
        ]
    }

    /// Reorders the rows of a `[heads·headDim, width]` q/k matrix between the internal
    /// interleaved layout and HF's rotate-half layout (`toHF` picks the direction).
    static func permuteRows(_ m: [Float], heads: Int, headDim hd: Int, width: Int, toHF: Bool) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        let half = hd / 2
        for h in 0 ..< heads {
            for i in 0 ..< half {
                for j in 0 ..< 2 {
                    let internalRow = h * hd + 2 * i + j
                    let hfRow = h * hd + j * half + i
                    let (from, to) = toHF ? (internalRow, hfRow) : (hfRow, internalRow)
                    out[to * width ..< (to + 1) * width] = m[from * width ..< (from + 1) * width]
                }
            }
        }
        return out
    }
}

/// Where each tensor of an HF directory lives: one safetensors file or shards by index.
struct TensorSource {
    let files: [String: Safetensors.File]  // by file name
    let location: [String: String]          // tensor name -> file name
    let describe: String                     // path used in "missing tensor" errors

    init(directory dir: URL) throws {
        let single = dir.appendingPathComponent("model.safetensors").path
        let index = dir.appendingPathComponent("model.safetensors.index.json").path
        let fm = FileManager.default
        if fm.fileExists(atPath: single) {
            let file = try Safetensors.open(path: single)
            files = ["model.safetensors": file]
            location = Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, "model.safetensors") })
            describe = single
        } else if fm.fileExists(atPath: index) {
            let map = try Self.weightMap(index)
            var opened: [String: Safetensors.File] = [:]
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/"), !shard.hasPrefix(".") else {
                    throw CheckpointError(index, "weight_map names a shard outside the directory: '\(shard)'")
                }
                opened[shard] = try Safetensors.open(path: dir.appendingPathComponent(shard).path)
            }
            files = opened
            location = map
            describe = index
        } else {
            let hasBin = fm.fileExists(atPath: dir.appendingPathComponent("pytorch_model.bin").path)
            throw CheckpointError(dir.path, hasBin
                ? "only pytorch_model.bin found; convert it to safetensors first"
                : "missing model.safetensors (or model.safetensors.index.json)")
        }
    }

    private static func weightMap(_ path: String) throws -> [String: String] {
        let bytes = try BinaryIO.readFile(path)
        let json = try? JSONSerialization.jsonObject(with: bytes)
        guard let root = json as? [String: Any], let map = root["weight_map"] as? [String: Any] else {
            throw CheckpointError(path, "malformed index: expected a JSON object with a 'weight_map' object")
        }
        var out: [String: String] = [:]
        for (name, file) in map {
            guard let file = file as? String else { throw CheckpointError(path, "weight_map entry '\(name)' is not a file name") }
            out[name] = file
        }
        return out
    }

    func has(_ name: String) -> Bool {
        guard let file = location[name] else { return false }
        return files[file]?.tensors[name] != nil
    }

    /// The values of `name`, which must have exactly `shape`.
    func floats(_ name: String, shape: [Int]) throws -> [Float] {
        guard let fileName = location[name], let file = files[fileName], let info = file.tensors[name] else {
            throw CheckpointError(describe, "missing tensor '\(name)' (expected shape \(shape))")
        }
        guard info.shape == shape else {
            throw CheckpointError(file.path, "tensor '\(name)' has shape \(info.shape), expected \(shape)")
        }
        return try file.floats(name)
    }
}

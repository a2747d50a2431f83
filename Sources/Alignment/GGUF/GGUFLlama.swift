import Foundation

/// LLaMA models in GGUF as llama.cpp reads and writes them: `general.architecture = llama`,
/// the `llama.*` hyper-parameters, and tensors named as llama.cpp's `convert_hf_to_gguf.py`
/// names them (`token_embd`, `blk.N.attn_q`, …, `output_norm`, `output`).
///
/// Tensor layout: a `[rows, cols]` matrix is stored with ggml sizes `[cols, rows]`. The q and k
/// rows are in the interleaved-pair RoPE order (the original LLaMA's, which llama.cpp's converter
/// restores from Hugging Face's rotate-half order), the order of LlamaAlign's internal layout, so
/// they are written and read unchanged.
public enum GGUFLlama {
    /// Internal per-layer parameter names and their GGUF names in `blk.N.<name>.weight`.
    public static let layerTensors: [(param: String, gguf: String)] = [
        ("attn_norm", "attn_norm"), ("wq", "attn_q"), ("wk", "attn_k"), ("wv", "attn_v"), ("wo", "attn_output"),
        ("ffn_norm", "ffn_norm"), ("w1", "ffn_gate"), ("w2", "ffn_down"), ("w3", "ffn_up"),
    ]

    /// The GGUF tensor name of internal parameter `name` (layer `layer` of a stacked one).
    public static func tensorName(_ name: String, layer: Int? = nil) -> String? {
        switch name {
        case "embed": return "token_embd.weight"
        case "final_norm": return "output_norm.weight"
        case "lm_head": return "output.weight"
        default:
            guard let layer, let g = layerTensors.first(where: { $0.param == name })?.gguf else { return nil }
            return "blk.\(layer).\(g).weight"
        }
    }

    /// The hyper-parameters of a GGUF LLaMA: `general.architecture` must be `llama`; sizes come
    /// from `llama.*` keys (the vocabulary from `token_embd`'s rows), with llama.cpp's defaults
    /// for `head_count_kv` (= head_count), `rope.freq_base` (10000) and the RMS epsilon (1e-5).
    /// What this model cannot run (scaled or partial RoPE, experts, other head sizes) is an error.
    public static func config(_ file: GGUFFile) throws -> LlamaConfig {
        let m = file.metadata
        func fail(_ s: String) -> CheckpointError { CheckpointError(file.path, s) }
        guard let archValue = m["general.architecture"] else { throw fail("general.architecture is missing (not a model file?)") }
        guard let arch = archValue.string else { throw fail("general.architecture is \(archValue.typeDescription), expected a string") }
        guard arch == "llama" else { throw fail("general.architecture is '\(arch)'; only 'llama' models are supported") }
        func int(_ key: String, _ fallback: Int? = nil) throws -> Int {
            guard let v = m["llama.\(key)"] else {
                if let fallback { return fallback }
                throw fail("llama.\(key) is missing")
            }
            guard let i = v.int else { throw fail("llama.\(key) is \(v.typeDescription), expected an integer") }
            return i
        }
        func float(_ key: String, _ fallback: Float) throws -> Float {
            guard let v = m["llama.\(key)"] else { return fallback }
            guard let f = v.float else { throw fail("llama.\(key) is \(v.typeDescription), expected a float") }
            return f
        }
        let heads = try int("attention.head_count")
        guard let embd = file.tensor("token_embd.weight") else { throw fail("no tensor 'token_embd.weight'") }
        guard embd.dims.count == 2 else { throw fail("tensor 'token_embd.weight' has sizes \(embd.dims), expected [embedding_length, vocab]") }
        let c = LlamaConfig(dim: try int("embedding_length"), hiddenDim: try int("feed_forward_length"), nLayers: try int("block_count"),
                            nHeads: heads, nKVHeads: try int("attention.head_count_kv", heads), vocabSize: embd.dims[1],
                            maxSeqLen: try int("context_length"), normEps: try float("attention.layer_norm_rms_epsilon", 1e-5),
                            ropeTheta: try float("rope.freq_base", 10000), tiedEmbeddings: file.tensor("output.weight") == nil)
        try LlamaWeights.checkConfig(c, source: file.path)
        try checkUnscaledRoPE(m, fail: fail)
        for (key, expected) in [("rope.dimension_count", c.headDim), ("attention.key_length", c.headDim), ("attention.value_length", c.headDim)] {
            let v = try int(key, expected)
            guard v == expected else { throw fail("llama.\(key) is \(v); only \(expected) (the head size, full RoPE) is supported") }
        }
        let experts = try int("expert_count", 0)
        guard experts == 0 else { throw fail("llama.expert_count is \(experts); mixture-of-experts models are not supported") }
        return c
    }

    /// Scaled RoPE is refused, however the file says it: `llama.rope.scaling.type` other than
    /// `none` (or not a string), or a `llama.rope.scaling.factor` / `llama.rope.scale_linear`
    /// other than 1 (llama.cpp applies a factor as linear scaling even without a type).
    static func checkUnscaledRoPE(_ m: [String: GGUFValue], fail: (String) -> CheckpointError) throws {
        var type = "none"
        if let v = m["llama.rope.scaling.type"] {
            guard let s = v.string else { throw fail("llama.rope.scaling.type is \(v.typeDescription), expected a string") }
            type = s
        }
        guard type == "none" else { throw fail("llama.rope.scaling.type is '\(type)'; scaled RoPE is not supported") }
        for key in ["llama.rope.scaling.factor", "llama.rope.scale_linear"] {
            guard let v = m[key] else { continue }
            guard let f = v.float else { throw fail("\(key) is \(v.typeDescription), expected a float") }
            if f != 1 && f != 0 { throw fail("\(key) is \(f); scaled RoPE is not supported (only 1)") }
        }
    }

    /// Reads the LLaMA model in the GGUF file at `path`, every tensor decoded to Float (Q8_0 and
    /// Q4_0 dequantized as ggml does).
    public static func load(path: String) throws -> LlamaWeights {
        try weights(GGUFFile.read(path: path))
    }

    /// The model in `file`: every tensor must be present with the sizes the configuration
    /// implies, and no other tensor may be there.
    public static func weights(_ file: GGUFFile) throws -> LlamaWeights {
        let w = LlamaWeights(config: try config(file), tensors: try tensors(file))
        try w.validate(source: file.path)
        return w
    }

    /// Checks that every tensor the configuration implies is present with its sizes and that no
    /// other is there, and decodes to f32 the parameters named in `decoding` (all when nil).
    static func tensors(_ file: GGUFFile, decoding: Set<String>? = nil) throws -> [String: [Float]] {
        let c = try config(file)
        var tensors: [String: [Float]] = [:]
        var used = Set<String>()
        for (name, shape) in c.parameterShapes {
            let stacked = layerTensors.contains { $0.param == name }
            let perLayer = stacked ? Array(shape.dropFirst()) : shape
            let decode = decoding?.contains(name) ?? true
            var values: [Float] = []  // not reserved: the sizes come from the file's metadata
            for layer in 0..<(stacked ? c.nLayers : 1) {
                guard let g = tensorName(name, layer: stacked ? layer : nil) else { continue }
                guard let t = file.tensor(g) else { throw CheckpointError(file.path, "no tensor '\(g)'") }
                let dims = Array(perLayer.reversed())
                guard t.dims == dims else {
                    throw CheckpointError(file.path, "tensor '\(g)' has sizes \(t.dims), expected \(dims) (ggml order)")
                }
                if decode { values += try file.floats(g) }
                used.insert(g)
            }
            if decode { tensors[name] = values }
        }
        if let extra = file.tensors.first(where: { !used.contains($0.name) }) {
            throw CheckpointError(file.path, "unexpected tensor '\(extra.name)' (\(extra.type), sizes \(extra.dims)); this LLaMA reader does not use it")
        }
        return tensors
    }
}

import Foundation

/// Loads a model for inference (`generate`, `eval`, `bench generate`): a quantized checkpoint
/// as it is, or an f32 model (with a LoRA adapter merged), quantized on load when `quant` names
/// a type. A quantized checkpoint with `quant` or `lora` is an error (it cannot be quantized
/// again; adapters need the f32 weights). A GGUF file with Q8_0 or Q4_0 projections runs on the
/// quantized kernels (`GGUFLlama.quantizedWeights`); other GGUF files are read as f32. `head`
/// is the output matrix's type when quantizing on load (the type's `defaultHead` when nil).
public func loadInferenceModel(path: String, lora: String? = nil, quant: String? = nil, groupSize: Int = 32,
                               head: QuantType? = nil) throws -> LlamaModel {
    if QuantizedCheckpoint.recorded(in: path) != nil {
        if let quant { throw QuantizationError("\(path) is already quantized; --quant \(quant) cannot quantize it again (give the f32 model)") }
        if lora != nil { throw QuantizationError("\(path) is quantized; --lora needs the f32 model (merge the adapter, then quantize)") }
        let w = try QuantizedCheckpoint.load(directory: path)
        try w.dequantized().checkFinite(source: path)
        return try LlamaModel(quantized: w)
    }
    if isGGUF(path), quant == nil, lora == nil {
        // A GGUF whose projections are Q8_0 or Q4_0 runs on the quantized kernels as it is.
        let file = try GGUFFile.read(path: path)
        var notes: [String] = []
        let q = try GGUFLlama.quantizedWeights(file, notes: &notes)
        for n in notes { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
        if let q {
            try q.dequantized().checkFinite(source: path)
            return try LlamaModel(quantized: q)
        }
    }
    if quant != nil { try refuseQuantizedGGUF(path, "--quant") }
    let weights = try loadModel(path: path, lora: lora)
    try weights.checkFinite(source: path)
    guard let quant else { return try LlamaModel(weights: weights) }
    guard let type = QuantType(name: quant) else {
        throw QuantizationError("--quant \(quant): expected \(QuantType.acceptedNames)")
    }
    return try LlamaModel(quantized: QuantizedWeights(quantizing: weights, type: type, groupSize: groupSize,
                                                      headType: head ?? type.defaultHead))
}

/// `llama-align quantize`: the model at `model` quantized to `type` with `groupSize`, written to
/// `out` as a `QuantizedCheckpoint` with the model's tokenizer files beside it; the output matrix
/// in `head` (the type's `defaultHead` when nil).
public func quantizeCheckpoint(model: String, type: QuantType, groupSize: Int, out: String, head: QuantType? = nil) throws -> QuantizedWeights {
    if let q = QuantizedCheckpoint.recorded(in: model) {
        throw QuantizationError("\(model) is already quantized (\(q.type), group \(q.groupSize)); quantize the f32 model it came from")
    }
    try refuseQuantizedGGUF(model, "quantize")
    try CheckpointOutput.checkDirectory(out, source: model)
    let weights = try loadModel(path: model)
    try weights.checkFinite(source: model)
    let q = try QuantizedWeights(quantizing: weights, type: type, groupSize: groupSize, headType: head ?? type.defaultHead)
    try QuantizedCheckpoint.save(q, to: out)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: model, isDirectory: &isDir) else { return q }
    let dir = isDir.boolValue ? model : (model as NSString).deletingLastPathComponent
    // The tokenizer and its companions (generation_config.json: EOS, sampling defaults) go along.
    for name in tokenizerFileNames + HFFolder.tokenizerCompanions {
        let from = (dir as NSString).appendingPathComponent(name), to = (out as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: from), from != to else { continue }
        try? FileManager.default.removeItem(atPath: to)
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }
    return q
}

/// The quantized GGML types (Q8_0, Q4_0) among a GGUF file's tensors, sorted by name; empty for
/// any other path.
public func ggufQuantizedTypes(_ path: String) throws -> [String] {
    guard isGGUF(path) else { return [] }
    let types = Set(try GGUFFile.read(path: path).tensors.map(\.type).filter { $0 == .q8_0 || $0 == .q4_0 })
    return types.map(\.description).sorted()
}

/// Quantizing the values of a quantized GGUF file again (`quantize`, `--quant`) is an error,
/// as it is for a quantized checkpoint directory.
func refuseQuantizedGGUF(_ path: String, _ what: String) throws {
    let types = try ggufQuantizedTypes(path)
    guard !types.isEmpty else { return }
    throw QuantizationError("\(path) is already quantized (\(types.joined(separator: ", ")) tensors); \(what) cannot quantize it again "
                            + "(give the f32 model, or run the file as it is)")
}

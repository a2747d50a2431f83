import Foundation

/// Loads a model from `path`: a directory is read as a Hugging Face checkpoint, a file
/// ending in `.bin` as a legacy llama2.c checkpoint, one ending in `.gguf` as GGUF (quantized
/// tensors dequantized); anything else is a `CheckpointError`.
public func loadModel(path: String) throws -> LlamaWeights {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw CheckpointError(path, "no such file or directory")
    }
    if isDir.boolValue {
        if let q = QuantizedCheckpoint.recorded(in: path) {
            throw CheckpointError(path, "is a quantized checkpoint (\(q.type), group \(q.groupSize)); only generate, eval and bench generate read it, "
                                  + "and it cannot be quantized again, trained or merged (use the f32 model it came from)")
        }
        return try HFCheckpoint.load(directory: path)
    }
    if path.lowercased().hasSuffix(".bin") { return try Llama2cCheckpoint.load(path: path) }
    if isGGUF(path) { return try GGUFLlama.load(path: path) }
    throw CheckpointError(path, "unrecognized model: expected a Hugging Face directory, a llama2.c .bin file or a .gguf file")
}

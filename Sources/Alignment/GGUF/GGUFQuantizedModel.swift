import Foundation

extension GGUFLlama {
    /// The model in `file` on the quantized kernels, when every layer projection (`attn_q` …
    /// `ffn_up` of every block) is Q8_0, or every one is Q4_0: the blocks' values and fp16 scales
    /// become `QuantizedMatrix`es unchanged (group 32), stacked over the layers. The output
    /// matrix runs as `q8_0` (as `QuantizedWeights` always has it): a Q8_0 `output` is taken as it
    /// is, any other type is re-quantized from its values (noted in `notes`). The embedding and
    /// the norms are read as f32. Nil when the projections mix types or are not quantized (the
    /// caller then runs the f32 model).
    public static func quantizedWeights(_ file: GGUFFile, notes: inout [String]) throws -> QuantizedWeights? {
        let c = try config(file)
        let ggml = Set(try (0..<c.nLayers).flatMap { layer in
            try QuantizedWeights.projections.map { name -> GGMLType in
                guard let g = tensorName(name, layer: layer), let t = file.tensor(g) else {
                    throw CheckpointError(file.path, "no tensor for '\(name)' of block \(layer)")
                }
                return t.type
            }
        })
        guard ggml.count == 1, let only = ggml.first, let type = quantType(only) else { return nil }
        var matrices: [String: QuantizedMatrix] = [:]
        for name in QuantizedWeights.projections {
            var scales: [Float] = [], values: [Int8] = [], rows = 0, cols = 0
            for layer in 0..<c.nLayers {
                guard let g = tensorName(name, layer: layer) else { continue }
                let q = try file.quantized(g)
                scales += q.scales; values += q.values; rows += q.rows; cols = q.cols
            }
            matrices[name] = try QuantizedMatrix(type: type, rows: rows, cols: cols, groupSize: GGUFBlocks.blockSize, scales: scales, values: values)
        }
        let headName = file.tensor("output.weight") == nil ? "token_embd.weight" : "output.weight"
        if let t = file.tensor(headName), t.type == .q8_0 {
            let q = try file.quantized(headName)
            matrices["lm_head"] = try QuantizedMatrix(type: .q8_0, rows: q.rows, cols: q.cols, groupSize: GGUFBlocks.blockSize, scales: q.scales, values: q.values)
        } else {
            notes.append("\(headName) (\(file.tensor(headName)?.type.description ?? "?")) runs as q8_0, re-quantized from its values: the quantized programs keep the output matrix at 8 bits")
            matrices["lm_head"] = try QuantizedMatrix(quantizing: try file.floats(headName), type: .q8_0, rows: c.vocabSize, cols: c.dim,
                                                      groupSize: GGUFBlocks.blockSize)
        }
        // The f32 tensors: the model's own reader checks every size and that nothing is left over.
        let dense = try weights(file).tensors.filter { QuantizedWeights.denseNames.contains($0.key) }
        return try QuantizedWeights(config: c, type: type, groupSize: GGUFBlocks.blockSize, dense: dense, matrices: matrices)
    }

    /// The quantized kernels' type for a GGUF block type.
    static func quantType(_ t: GGMLType) -> QuantType? {
        switch t {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        default: nil
        }
    }
}

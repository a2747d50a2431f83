import Foundation

extension GGUFLlama {
    /// The model in `file` on the quantized kernels, when every layer projection (`attn_q` …
    /// `ffn_up` of every block) is Q8_0, or every one is Q4_0: the blocks' values and fp16 scales
    /// become `QuantizedMatrix`es unchanged (group 32), stacked over the layers. The output
    /// matrix is taken as it is when Q8_0, or Q4_0 beside Q4_0 projections (the `_h4` programs);
    /// any other type is re-quantized to `q8_0` from its values (noted in `notes`). The embedding and
    /// the norms are read as f32. Nil when the projections mix types or are not quantized (the
    /// caller then runs the f32 model; `notes` says so when the file holds quantized tensors).
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
        guard ggml.count == 1, let only = ggml.first, let type = quantType(only) else {
            if file.tensors.contains(where: { quantType($0.type) != nil }) {
                notes.append("\(file.path): its layer projections are not all Q8_0 or all Q4_0; it runs in fp32 (quantized tensors dequantized on load)")
            }
            return nil
        }
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
        if let t = file.tensor(headName), t.type == .q8_0 || (t.type == .q4_0 && type == .q4_0), let headType = quantType(t.type) {
            let q = try file.quantized(headName)
            matrices["lm_head"] = try QuantizedMatrix(type: headType, rows: q.rows, cols: q.cols, groupSize: GGUFBlocks.blockSize, scales: q.scales, values: q.values)
        } else {
            notes.append("\(headName) (\(file.tensor(headName)?.type.description ?? "?")) runs as q8_0, re-quantized from its values: the quantized programs keep the output matrix at 8 bits (4 only beside Q4_0 projections)")
            matrices["lm_head"] = try QuantizedMatrix(quantizing: try file.floats(headName), type: .q8_0, rows: c.vocabSize, cols: c.dim,
                                                      groupSize: GGUFBlocks.blockSize)
        }
        // The f32 tensors (every tensor's sizes checked, nothing left over; only these decoded).
        let dense = try tensors(file, decoding: Set(QuantizedWeights.denseNames))
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

import Foundation

/// Karpathy's llama2.c checkpoint (`.bin`, legacy version 0): seven int32 header fields
/// `dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len` (a negative
/// vocab_size marks an unshared classifier), then float32 weights in `parameterShapes`
/// order, with the RoPE tables `freq_cis_real` and `freq_cis_imag` `[seq_len, head_size/2]`
/// after `rms_final` and the classifier `wcls [V,D]` last when unshared. The format has
/// no fields for the norm epsilon or RoPE theta; they are 1e-5 and 10000.
public enum Llama2cCheckpoint {
    static let headerBytes = 28
    static let normEps: Float = 1e-5
    static let ropeTheta: Float = 10000

    /// Loads the `.bin` file at `path`. The file length must match the header exactly.
    public static func load(path: String) throws -> LlamaWeights {
        try load(data: BinaryIO.readFile(path), path: path)
    }

    /// Loads a `.bin` checkpoint from its contents `bytes`; `path` names it in errors.
    public static func load(data bytes: Data, path: String) throws -> LlamaWeights {
        guard bytes.count >= headerBytes else {
            throw CheckpointError(path, "truncated: \(bytes.count) bytes, too short for the \(headerBytes)-byte llama2.c header")
        }
        let magic = BinaryIO.uint32(bytes, at: 0)
        if magic == 0x616B_3432 {  // "ak42": the newer llama2.c export versions
            let version = bytes.count >= 8 ? Int32(bitPattern: BinaryIO.uint32(bytes, at: 4)) : -1
            throw CheckpointError(path, "llama2.c export version \(version) is not supported; export with --version 0 (legacy)")
        }
        let h = (0 ..< 7).map { Int(Int32(bitPattern: BinaryIO.uint32(bytes, at: 4 * $0))) }
        let headerText = "dim \(h[0]), hidden_dim \(h[1]), n_layers \(h[2]), n_heads \(h[3]), n_kv_heads \(h[4]), vocab_size \(h[5]), seq_len \(h[6])"
        let config = LlamaConfig(dim: h[0], hiddenDim: h[1], nLayers: h[2], nHeads: h[3], nKVHeads: h[4],
                                 vocabSize: abs(h[5]), maxSeqLen: h[6], normEps: normEps, ropeTheta: ropeTheta,
                                 tiedEmbeddings: h[5] > 0)
        do {
            try LlamaWeights.checkConfig(config, source: path)
        } catch let e as CheckpointError {
            throw CheckpointError(path, "bad header (\(headerText)): \(e.problem)")
        }
        let ropeCount = 2 * config.maxSeqLen * (config.headDim / 2)
        guard let expected = fileSize(config) else {
            throw CheckpointError(path, "bad header (\(headerText)): the sizes are impossibly large")
        }
        guard expected == bytes.count else {
            throw CheckpointError(path, "size mismatch: the header (\(headerText)) expects \(expected) bytes, but the file has \(bytes.count) bytes")
        }
        var offset = headerBytes
        var tensors: [String: [Float]] = [:]
        for (name, shape) in config.parameterShapes {
            let count = shape.reduce(1, *)
            tensors[name] = BinaryIO.floats(bytes, at: offset, count: count)
            offset += 4 * count
            if name == "final_norm" { offset += 4 * ropeCount }  // skip freq_cis_real/imag
        }
        let weights = LlamaWeights(config: config, tensors: tensors)
        try weights.validate(source: path)
        return weights
    }

    /// Writes `weights` to `path` as a legacy llama2.c `.bin`, atomically. The RoPE tables
    /// are filled in as llama2.c's exporter computes them. Throws when the configuration
    /// cannot be expressed (norm eps other than 1e-5, RoPE theta other than 10000, or sizes
    /// beyond int32).
    public static func write(_ weights: LlamaWeights, to path: String) throws {
        try weights.validate(source: path)
        let c = weights.config
        guard c.normEps == normEps, c.ropeTheta == ropeTheta else {
            throw CheckpointError(path, "llama2.c files imply norm eps 1e-5 and rope theta 10000; this model has \(c.normEps) and \(c.ropeTheta)")
        }
        let header = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKVHeads, c.tiedEmbeddings ? c.vocabSize : -c.vocabSize, c.maxSeqLen]
        guard header.allSatisfy({ Int32(exactly: $0) != nil }) else {
            throw CheckpointError(path, "a size in \(header) does not fit the int32 header")
        }
        var data = Data()
        data.reserveCapacity(fileSize(c) ?? 0)
        BinaryIO.append(header.map { UInt32(bitPattern: Int32($0)) }, to: &data)
        for (name, _) in c.parameterShapes {
            BinaryIO.append(weights.tensors[name] ?? [], to: &data)
            if name == "final_norm" {
                let (real, imag) = ropeTables(config: c)
                BinaryIO.append(real, to: &data)
                BinaryIO.append(imag, to: &data)
            }
        }
        try BinaryIO.writeAtomically(data, to: path)
    }

    /// Bytes of a legacy `.bin` for `c` (header, weights, RoPE tables), or nil on overflow.
    static func fileSize(_ c: LlamaConfig) -> Int? {
        var floats = 2 * c.maxSeqLen * (c.headDim / 2)
        for (_, shape) in c.parameterShapes {
            guard let n = BinaryIO.elementCount(shape) else { return nil }
            let (sum, overflow) = floats.addingReportingOverflow(n)
            guard !overflow else { return nil }
            floats = sum
        }
        let (bytes, overflow) = floats.multipliedReportingOverflow(by: 4)
        return overflow ? nil : headerBytes + bytes
    }

    /// cos and sin of `t·θ^(-2i/head_size)` for `t < seq_len`, `i < head_size/2`, row-major.
    static func ropeTables(config c: LlamaConfig) -> (real: [Float], imag: [Float]) {
        let half = c.headDim / 2
        var real: [Float] = [], imag: [Float] = []
        real.reserveCapacity(c.maxSeqLen * half)
        imag.reserveCapacity(c.maxSeqLen * half)
        for t in 0 ..< c.maxSeqLen {
            for i in 0 ..< half {
                let freq = 1.0 / pow(Double(c.ropeTheta), Double(2 * i) / Double(c.headDim))
                let angle = Double(t) * freq
                real.append(Float(cos(angle)))
                imag.append(Float(sin(angle)))
            }
        }
        return (real, imag)
    }
}

import KernelRuntime
import LlamaGraphs

/// A prefix-tuning setup (PaddleNLP's `prefix_tuning`, `num_prefix_tokens`; PEFT's
/// `num_virtual_tokens`): `P` trained key/value positions ahead of every row in every layer.
///
/// The programs' parameter `prefix_kv` is `[L, 2, P, KVH, HD]` (per layer: keys, then values),
/// keys in the internal interleaved head-dim order of the RoPE'd `wk` rows. PEFT's table is
/// `[P, L·2·KVH·HD]`, entry `((l·2 + kv)·KVH + h)·HD + d` of row `p`, keys in Hugging Face's
/// rotate-half order; `peftTable`/`init(peftTable:)` convert between the two.
public struct PrefixConfig: Sendable, Equatable {
    /// `P` (> 0).
    public var tokens: Int
    /// With `prefix_projection`, the MLP's hidden width `E` (PEFT's `encoder_hidden_size`);
    /// nil when the table itself trains.
    public var projection: Int?

    /// Throws naming `num_prefix_tokens` for a count ≤ 0 (and the hidden size for one ≤ 0).
    public init(tokens: Int, projection: Int? = nil) throws {
        guard tokens > 0 else { throw RuntimeError("num_prefix_tokens must be positive, got \(tokens)") }
        if let e = projection, e <= 0 { throw RuntimeError("prefix_projection_hidden_size must be positive, got \(e)") }
        self.tokens = tokens
        self.projection = projection
    }

    /// `prefix_kv`'s shape for `config`: `[L, 2, P, KVH, HD]`.
    public func shape(_ config: LlamaConfig) -> [Int] { [config.nLayers, 2, tokens, config.nKVHeads, config.headDim] }

    /// The tensors a store holds for this prefix, by name: `prefix_kv`, after the MLP's
    /// (`PrefixEncoderPrograms.parameters`) with a projection.
    public func tensorShapes(_ config: LlamaConfig) -> [(name: String, shape: [Int])] {
        guard let e = projection else { return [(Prefix.parameter, shape(config))] }
        let kvd = config.kvDim, width = config.nLayers * 2 * kvd
        let mlp = zip(PrefixEncoderPrograms.parameters, [[tokens, kvd], [e, kvd], [e], [width, e], [width]]).map { ($0, $1) }
        return mlp + [(Prefix.parameter, shape(config))]
    }

    /// The tensors that train: `prefix_kv`, or with a projection the MLP's.
    public var trainableNames: [String] { projection == nil ? [Prefix.parameter] : PrefixEncoderPrograms.parameters }

    /// PEFT's table shape for `config`: `[P, L·2·KVH·HD]`.
    public func peftShape(_ config: LlamaConfig) -> [Int] { [tokens, config.nLayers * 2 * config.kvDim] }

    /// PEFT's initial prefix (`nn.Embedding`'s default): every entry N(0, 1), drawn from `seed`.
    public func initialTable(_ config: LlamaConfig, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0 ..< shape(config).reduce(1, *)).map { _ in Float(rng.nextGaussian()) }
    }

    /// PEFT's initial tensors: the table (`initialTable`), or with a projection the embedding
    /// N(0, 1) and each `Linear` as PyTorch initializes it (weight and bias uniform in ±1/√in),
    /// drawn from `seed` in `tensorShapes` order, with `prefix_kv` zero until encoded.
    public func initialTensors(_ config: LlamaConfig, seed: UInt64) -> [String: [Float]] {
        guard projection != nil else { return [Prefix.parameter: initialTable(config, seed: seed)] }
        var rng = SeededGenerator(seed: seed)
        var out: [String: [Float]] = [:]
        for (name, shape) in tensorShapes(config) {
            let n = shape.reduce(1, *)
            switch name {
            case "prefix_embed": out[name] = (0 ..< n).map { _ in Float(rng.nextGaussian()) }
            case Prefix.parameter: out[name] = [Float](repeating: 0, count: n)
            default:
                let fanIn = name.hasSuffix("1") ? config.kvDim : projection ?? 1
                let bound = 1 / Double(fanIn).squareRoot()
                out[name] = (0 ..< n).map { _ in Float((2 * rng.nextDouble() - 1) * bound) }
            }
        }
        return out
    }

    /// `prefix_kv` (`[L, 2, P, KVH, HD]`, internal key order) as PEFT's `[P, L·2·KVH·HD]` table.
    public func peftTable(_ internalTable: [Float], config c: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: internalTable.count)
        forEachEntry(c) { i, p in out[p] = internalTable[i] }
        return out
    }

    /// PEFT's `[P, L·2·KVH·HD]` table as `prefix_kv` (`[L, 2, P, KVH, HD]`, internal key order).
    public func internalTable(peft table: [Float], config c: LlamaConfig) -> [Float] {
        var out = [Float](repeating: 0, count: table.count)
        forEachEntry(c) { i, p in out[i] = table[p] }
        return out
    }

    /// Calls `body(internal, peft)` with the flat index of every entry in both layouts. A key's
    /// internal head dim `2i + j` is Hugging Face's `j·HD/2 + i` (`HFCheckpoint.permuteRows`);
    /// values keep their order.
    private func forEachEntry(_ c: LlamaConfig, _ body: (Int, Int) -> Void) {
        let (layers, kvh, hd, half) = (c.nLayers, c.nKVHeads, c.headDim, c.headDim / 2)
        var i = 0
        for l in 0 ..< layers {
            for kv in 0 ..< 2 {
                for p in 0 ..< tokens {
                    for h in 0 ..< kvh {
                        for d in 0 ..< hd {
                            let hfD = kv == 0 ? (d % 2) * half + d / 2 : d
                            body(i, p * layers * 2 * kvh * hd + ((l * 2 + kv) * kvh + h) * hd + hfD)
                            i += 1
                        }
                    }
                }
            }
        }
    }
}

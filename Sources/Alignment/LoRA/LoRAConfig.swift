import Foundation
import KernelRuntime
import LlamaGraphs
import TensorGraph

/// A LoRA setup (PaddleNLP's `lora_rank`, `lora_alpha`, `rslora`, `target_modules`): which
/// projections are adapted, the rank `r` and the scale `s` of `W·x + s·B(A·x)`.
///
/// The compiled programs adapt every projection (`LoRA.modules`); a module that is not a target
/// runs with scale 0 and zero adapters that are never trained or saved.
public struct LoRAConfig: Sendable, Equatable {
    /// The rank `r` (> 0).
    public var rank: Int
    /// α; the scale is α/r, or α/√r with `rslora`.
    public var alpha: Double
    /// rsLoRA's α/√r instead of α/r.
    public var rslora: Bool
    /// The adapted projections by internal name (`wq`, …, `w3`), in `LoRA.modules` order.
    public var targets: [String]
    /// PEFT's `lora_dropout`: the probability `p` (0 ≤ p < 1) that a training step drops an
    /// element of an adapter's input (`B(A·dropout(x))·s`); 0 in evaluation, generation and the
    /// DPO reference. A training setting: an adapter loaded from disk starts at 0.
    public var dropout: Double = 0
    /// LoRA+'s `lora_plus_scale`: the `B` matrices learn at `lr · plusScale` (default 1, plain
    /// LoRA). A training setting, not saved with the adapter.
    public var plusScale: Double = 1

    /// Hugging Face's (PEFT's) module name of each internal projection.
    public static let hfNames: [String: String] = [
        "wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj",
        "w1": "gate_proj", "w2": "down_proj", "w3": "up_proj",
    ]
    /// The module's path inside a layer (`self_attn.q_proj`, `mlp.gate_proj`).
    public static func hfPath(_ module: String) -> String {
        let name = hfNames[module] ?? module
        return (["wq", "wk", "wv", "wo"].contains(module) ? "self_attn." : "mlp.") + name
    }

    /// `alpha` nil or negative means 2·r (PaddleNLP's DPO default); `targetModules` nil or
    /// empty means every projection. Throws naming the field for a rank ≤ 0 or target
    /// patterns that match no module.
    /// `dropout` must lie in [0, 1) and `plusScale` be positive (errors name `lora_dropout`,
    /// `lora_plus_scale`).
    public init(rank: Int, alpha: Double? = nil, rslora: Bool = false, targetModules: [String]? = nil,
                dropout: Double = 0, plusScale: Double = 1) throws {
        guard rank > 0 else { throw RuntimeError("lora_rank must be positive, got \(rank)") }
        guard dropout >= 0, dropout < 1 else { throw RuntimeError("lora_dropout must be in [0, 1), got \(dropout)") }
        guard plusScale > 0, plusScale.isFinite else { throw RuntimeError("lora_plus_scale must be a positive number, got \(plusScale)") }
        self.dropout = dropout
        self.plusScale = plusScale
        self.rank = rank
        self.alpha = alpha.flatMap { $0 < 0 ? nil : $0 } ?? Double(2 * rank)
        self.rslora = rslora
        if let patterns = targetModules, !patterns.isEmpty {
            targets = try Self.match(patterns)
        } else {
            targets = LoRA.modules
        }
    }

    /// The scale `s`: α/r, or α/√r with rsLoRA.
    public var scale: Double { rslora ? alpha / Double(rank).squareRoot() : alpha / Double(rank) }

    /// The internal modules `patterns` select. A pattern is a plain module name (`q_proj`, or
    /// the internal `wq`), a suffix of its path (`self_attn.q_proj`), or a regular expression
    /// matched against the whole module path `model.layers.N.self_attn.q_proj` (PaddleNLP's
    /// `.*q_proj.*`); it must select a module in every layer alike.
    static func match(_ patterns: [String]) throws -> [String] {
        var chosen: Set<String> = []
        for pattern in patterns {
            let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$")
            for module in LoRA.modules {
                let path = hfPath(module)
                if pattern == module || pattern == hfNames[module] || pattern == path || path.hasSuffix("." + pattern) {
                    chosen.insert(module)
                    continue
                }
                guard let regex else { continue }
                let hits = [0, 1, 7, 31].map { layer -> Bool in
                    let name = "model.layers.\(layer).\(path)"
                    return regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
                }
                if hits.allSatisfy({ $0 }) { chosen.insert(module) }
                else if hits.contains(true) {
                    throw RuntimeError("target_modules pattern '\(pattern)' selects \(hfNames[module] ?? module) in some layers only; adapters apply to every layer")
                }
            }
        }
        guard !chosen.isEmpty else {
            let names = LoRA.modules.map { hfNames[$0] ?? $0 }.joined(separator: ", ")
            throw RuntimeError("target_modules \(patterns) matches no module; the modules are \(names) (paths model.layers.N.self_attn.q_proj, model.layers.N.mlp.gate_proj, …)")
        }
        return LoRA.modules.filter { chosen.contains($0) }
    }

    /// Every adapter tensor's shape for `config` (targets and not): `lora_a_<w>` `[L, r, in]`,
    /// `lora_b_<w>` `[L, out, r]`, in `LoRA.modules` order.
    public func adapterShapes(_ config: LlamaConfig) -> [(name: String, shape: [Int])] {
        LoRA.modules.flatMap { m -> [(name: String, shape: [Int])] in
            let (out, inp) = Self.projectionShape(m, config)
            return [(LoRA.aName(m), [config.nLayers, rank, inp]), (LoRA.bName(m), [config.nLayers, out, rank])]
        }
    }

    /// `(out, in)` of one layer's projection.
    static func projectionShape(_ module: String, _ c: LlamaConfig) -> (out: Int, in: Int) {
        switch module {
        case "wk", "wv": (c.kvDim, c.dim)
        case "w1", "w3": (c.hiddenDim, c.dim)
        case "w2": (c.dim, c.hiddenDim)
        default: (c.dim, c.dim)
        }
    }

    /// The trainable adapter tensors: `A` and `B` of every target.
    public var trainableNames: [String] { targets.flatMap { [LoRA.aName($0), LoRA.bName($0)] } }

    /// Each trainable adapter's learning-rate factor for the optimizer's parameter groups
    /// (LoRA+: `plusScale` for every target's `B`, 1 for its `A`).
    public var learningRateFactors: [String: Double] {
        Dictionary(uniqueKeysWithValues: targets.flatMap { [(LoRA.aName($0), 1.0), (LoRA.bName($0), plusScale)] })
    }

    /// The int32 keys `[L]` of every module's dropout mask (`lora_dropout_key_<w>`) for one
    /// micro-batch: a pure function of the run's `seed`, the optimizer step, the micro-batch's
    /// index in that step, the layer and the module, so a resumed run draws the same masks.
    public static func dropoutKeys(seed: UInt64, step: Int, micro: Int, layers: Int) -> [String: [Int32]] {
        var keys: [String: [Int32]] = [:]
        for (m, module) in LoRA.modules.enumerated() {
            keys[LoRA.dropoutKeyName(module)] = (0..<layers).map { l in
                Int32(bitPattern: CounterRandom.key([seed, UInt64(step), UInt64(micro), UInt64(l), UInt64(m)]))
            }
        }
        return keys
    }

    /// PEFT's initial adapters for `config`: every target's `A` Kaiming-uniform with a = √5
    /// (uniform in ±1/√in), drawn from `seed` layer by layer, and `B` zero, so the adapted model
    /// starts as the base model; the other modules' adapters are zero.
    public func initialAdapters(_ config: LlamaConfig, seed: UInt64) -> [String: [Float]] {
        var rng = SeededGenerator(seed: seed)
        var out: [String: [Float]] = [:]
        for (name, shape) in adapterShapes(config) {
            var v = [Float](repeating: 0, count: shape.reduce(1, *))
            if let m = targets.first(where: { LoRA.aName($0) == name }) {
                let bound = 1 / Double(Self.projectionShape(m, config).in).squareRoot()
                for i in v.indices { v[i] = Float((2 * rng.nextDouble() - 1) * bound) }
            }
            out[name] = v
        }
        return out
    }
}

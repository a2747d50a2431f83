import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// Prefixes made by PEFT itself (`Fixtures/make_peft_prefix.py`: a tiny GQA LLaMA, a 3-token
/// prefix with PEFT's own init, and one trained through PEFT's projection) load here and give
/// PEFT's logits, its token losses and its prefix gradient; ours save as PEFT's file.
@Suite struct PEFTPrefixTests {
    struct Golden: Decodable {
        var ids: [[Int32]]
        var tokens: Int
        var base_logits: [Double]
        var logits: [Double]
        var projection_logits: [Double]
        /// PEFT's greedy continuation of `prompt` with `adapter`.
        var prompt: [Int32]
        var greedy: [Int32]
        /// The mean next-token loss of `adapter` on `ids` (float64, PyTorch).
        var loss: Double
        /// d(loss)/d(prompt_embeddings), PEFT's `[P, L·2·KVH·HD]` layout, flattened.
        var prefix_gradient: [Double]
    }

    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.appendingPathComponent("Fixtures/peft_prefix")
    }()

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
    }

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Next-token targets of the golden rows, every position but the last scored.
    static func batch(_ g: Golden) -> TokenBatch {
        let rows = g.ids.count, seq = g.ids[0].count
        let targets: [Int32] = g.ids.flatMap { (row: [Int32]) -> [Int32] in Array(row.dropFirst()) + [0] }
        let mask = (0..<(rows * seq)).map { Float($0 % seq == seq - 1 ? 0 : 1) }
        return TokenBatch(batch: rows, seq: seq, ids: g.ids.flatMap { $0 }, targets: targets, mask: mask)
    }

    /// Σ log p(ids[t+1] | ids[...t]) over `range` of golden row `row`, from logits `[rows, T, V]`.
    static func logProb(_ logits: [Double], row: Int, seq: Int, vocab v: Int, ids: [Int32], range: Range<Int>) -> Double {
        range.reduce(0.0) { acc, t in
            let o = (row * seq + t) * v, x = Array(logits[o..<(o + v)])
            let m = x.max() ?? 0
            return acc + x[Int(ids[t + 1])] - m - log(x.reduce(0.0) { $0 + exp($1 - m) })
        }
    }

    /// The prefix as the first positions of a KV cache (what `generate --prefix` runs): the
    /// plain prefill program then gives PEFT's logits, for both adapters.
    @Test(arguments: [("adapter", false), ("adapter_projection", true)])
    func prefixInTheCacheGivesPEFTsLogits(adapter: String, projection: Bool) throws {
        let g = try Self.golden()
        let base = try loadModel(path: Self.path("model"))
        let trained = try TrainedPrefix(directory: Self.path(adapter), config: base.config)
        #expect(trained.prefix.tokens == g.tokens)
        let model = try LlamaModel(weights: base)
        let cache = model.makeCache(batch: g.ids.count, capacity: g.tokens + g.ids[0].count)
        try trained.fill(cache, config: base.config)
        let logits = try model.prefill(ids: g.ids.flatMap { $0 }, cache: cache)
        let want = projection ? g.projection_logits : g.logits
        let err = relativeError(logits, want.map { Float($0) })
        #expect(err <= 1e-5, "\(adapter): logits differ from PEFT's by \(err)")
        // The prefix moves the logits far beyond that tolerance.
        #expect(relativeError(try model.forward(ids: g.ids.flatMap { $0 }, batch: g.ids.count), want.map { Float($0) }) > 1e-2)
    }

    /// The prefix in the graph (`eval_loss_prefix`) gives the NLL of PEFT's logits.
    @Test func prefixGraphGivesPEFTsTokenLosses() throws {
        let g = try Self.golden()
        let store = try loadParameters(path: Self.path("model"), lora: nil, prefix: Self.path("adapter"))
        let trainer = try LMTrainer(parameters: store)
        let b = Self.batch(g), v = store.config.vocabSize
        let (sum, tokens) = try trainer.evaluate(b)
        var want = 0.0
        for i in 0..<(b.batch * b.seq) where b.mask[i] > 0 {
            let row = Array(g.logits[(i * v)..<((i + 1) * v)])
            let m = row.max() ?? 0
            want += m + log(row.reduce(0.0) { $0 + exp($1 - m) }) - row[Int(b.targets[i])]
        }
        #expect(tokens == b.batch * (b.seq - 1))
        #expect(abs(sum - want) / want <= 1e-5, "NLL sum \(sum) vs PEFT's \(want)")
    }

    /// One step's prefix gradient (`lm_step_prefix`, float32) against PyTorch's through PEFT
    /// (float64), mapped to PEFT's table layout.
    @Test func prefixGradientMatchesPEFTs() throws {
        let g = try Self.golden()
        let store = try loadParameters(path: Self.path("model"), lora: nil, prefix: Self.path("adapter"))
        let trainer = try LMTrainer(parameters: store)
        trainer.zeroGradients()
        let (loss, tokens) = try trainer.accumulateGradients([Self.batch(g)])
        #expect(tokens == 14)
        #expect(abs(loss - g.loss) <= 1e-5 * g.loss, "loss \(loss) vs PEFT's \(g.loss)")
        let prefix = try #require(store.prefix)
        let got = prefix.peftTable(try #require(trainer.gradient(Prefix.parameter)), config: store.config)
        let err = relativeError(got, g.prefix_gradient.map { Float($0) })
        #expect(err <= 1e-4, "prefix gradient differs from PEFT's by \(err)")
        #expect(got.allSatisfy { $0 != 0 }, "every prefix entry is on the loss's path")
    }

    /// PEFT's reparameterization (`projection_encoder.safetensors`: its MLP as PEFT holds it)
    /// through `prefix_encode` gives the table PEFT saved for it (`adapter_projection`).
    @Test func projectionEncoderGivesPEFTsTable() throws {
        let base = try loadModel(path: Self.path("model"))
        let c = base.config
        let mlp = try Safetensors.read(path: Self.path("projection_encoder.safetensors")).mapValues(\.values)
        let prefix = try PrefixConfig(tokens: 3, projection: 24)
        // W2's rows and b2 from PEFT's table order to prefix_kv's (keys' head dims interleaved).
        let width = c.nLayers * 2 * c.kvDim, e = 24
        let rowOrder = Self.internalRows(c)
        let w2 = try #require(mlp["transform.2.weight"]), b2 = try #require(mlp["transform.2.bias"])
        let tensors: [String: [Float]] = [
            "prefix_embed": try #require(mlp["embedding.weight"]), "prefix_w1": try #require(mlp["transform.0.weight"]),
            "prefix_b1": try #require(mlp["transform.0.bias"]),
            "prefix_w2": rowOrder.flatMap { Array(w2[($0 * e)..<(($0 + 1) * e)]) }, "prefix_b2": rowOrder.map { b2[$0] },
            Prefix.parameter: [Float](repeating: 0, count: prefix.shape(c).reduce(1, *)),
        ]
        #expect(rowOrder.count == width)
        let store = try ParameterStore(weights: base, adapters: tensors, prefix: prefix)
        _ = try LMTrainer(parameters: store)   // encodes prefix_kv
        let table = prefix.peftTable(try #require(store.adapters()[Prefix.parameter]), config: c)
        let want = try Safetensors.read(path: Self.path("adapter_projection") + "/" + PEFTAdapter.weightsFile)[PEFTPrefix.tensorName]?.values ?? []
        let err = relativeError(table, want)
        #expect(err <= 1e-6, "encoded table differs from PEFT's by \(err)")
    }

    /// For each row of `prefix_kv`'s width (`[L, 2, KVH, HD]`, keys interleaved), the row of
    /// PEFT's width (keys in rotate-half order).
    static func internalRows(_ c: LlamaConfig) -> [Int] {
        let (kvh, hd, half) = (c.nKVHeads, c.headDim, c.headDim / 2)
        return (0 ..< c.nLayers * 2 * kvh * hd).map { i in
            let d = i % hd, rest = i / hd, kv = (rest / kvh) % 2
            return rest * hd + (kv == 0 ? (d % 2) * half + d / 2 : d)
        }
    }

    /// Saving writes PEFT's tensor bit for bit and a config PEFT reads; loading it again gives
    /// the same prefix.
    @Test func savedPrefixIsPEFTsFileAndRoundTrips() throws {
        let base = try loadModel(path: Self.path("model"))
        let trained = try TrainedPrefix(directory: Self.path("adapter"), config: base.config)
        let out = SharedFixtures.tempDir("prefix").path
        try PEFTPrefix.save(prefix: trained.prefix, table: trained.table, config: base.config, to: out)
        let theirs = try Safetensors.read(path: Self.path("adapter") + "/" + PEFTAdapter.weightsFile)
        let ours = try Safetensors.read(path: out + "/" + PEFTAdapter.weightsFile)
        #expect(ours == theirs, "saved tensors differ from PEFT's file")
        let settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/" + PEFTAdapter.configFile))) as? [String: Any])
        let peft = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.path("adapter") + "/" + PEFTAdapter.configFile))) as? [String: Any])
        for key in ["peft_type", "task_type", "num_virtual_tokens", "num_layers", "token_dim", "num_attention_heads", "num_transformer_submodules", "prefix_projection"] {
            #expect("\(settings[key] ?? "missing")" == "\(peft[key] ?? "missing")", "\(key)")
        }
        let again = try TrainedPrefix(directory: out, config: base.config)
        #expect(again.prefix == trained.prefix && again.table == trained.table)
    }

    /// A prefix that does not fit the base model: the error names the tensor (or field) and both shapes.
    @Test func prefixOfAnotherShapeIsAnError() throws {
        let base = try loadModel(path: Self.path("model"))
        let source = Self.path("adapter")
        let dir = SharedFixtures.tempDir("prefix").path
        try FileManager.default.copyItem(atPath: source + "/" + PEFTAdapter.configFile, toPath: dir + "/" + PEFTAdapter.configFile)
        let wrong = Safetensors.Tensor(shape: [3, 32], values: [Float](repeating: 0.5, count: 96))
        try Safetensors.write([PEFTPrefix.tensorName: wrong], to: dir + "/" + PEFTAdapter.weightsFile)
        #expect { try PEFTPrefix.load(directory: dir, config: base.config) } throws: {
            "\($0)".contains("prompt_embeddings") && "\($0)".contains("[3, 32]") && "\($0)".contains("[3, 64]")
        }
        var other = base.config
        other.nLayers = 3
        #expect { try PEFTPrefix.load(directory: source, config: other) } throws: { "\($0)".contains("num_layers is 2") && "\($0)".contains("needs 3") }
        // A LoRA adapter is not a prefix, and a prefix is not a LoRA adapter.
        #expect { try PEFTPrefix.load(directory: Self.path("../peft_lora/adapter"), config: base.config) } throws: { "\($0)".contains("PREFIX_TUNING") }
        #expect { try PEFTAdapter.load(directory: source, config: base.config) } throws: { "\($0)".contains("--prefix") }
    }
}

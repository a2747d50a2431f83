import Foundation
import Testing
import LlamaGraphs
@testable import Alignment

/// Adapters made by PEFT itself (`Fixtures/make_peft_lora.py`: a tiny GQA LLaMA, LoRA on every
/// projection with non-zero B, and an rsLoRA one on three) load here and give PEFT's logits.
@Suite struct PEFTLoRATests {
    struct Golden: Decodable {
        var ids: [[Int32]]
        var base_logits: [Double]
        var logits: [Double]
        var rslora_logits: [Double]
        /// The mean next-token loss of `adapter` on `ids` (float64, PyTorch).
        var loss: Double
    }

    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        url.deleteLastPathComponent()
        return url.appendingPathComponent("Fixtures/peft_lora")
    }()

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
    }

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The largest |ours − PEFT's| over all logits, relative to the largest |PEFT logit|.
    static func logitError(_ ours: [Float], _ want: [Double]) -> Float { relativeError(ours, want.map { Float($0) }) }

    @Test(arguments: [("adapter", false), ("adapter_rslora", true)])
    func mergedAdapterGivesPEFTsLogits(adapter: String, rslora: Bool) throws {
        let g = try Self.golden()
        let base = try loadModel(path: Self.path("model"))
        let (lora, adapters) = try PEFTAdapter.load(directory: Self.path(adapter), config: base.config)
        #expect(lora.rslora == rslora && lora.rank == 4 && lora.alpha == 8)
        #expect(lora.targets == (rslora ? ["wq", "wv", "w2"] : LoRA.modules))
        let ids = g.ids.flatMap { $0 }
        let baseLogits = try LlamaModel(weights: base).forward(ids: ids, batch: g.ids.count)
        #expect(Self.logitError(baseLogits, g.base_logits) <= 1e-5)
        let merged = try PEFTAdapter.merged(base, lora: lora, adapters: adapters)
        let logits = try LlamaModel(weights: merged).forward(ids: ids, batch: g.ids.count)
        let err = Self.logitError(logits, rslora ? g.rslora_logits : g.logits)
        #expect(err <= 1e-4, "merged \(adapter): logits differ from PEFT's by \(err)")
        // The adapter moves the logits far beyond that tolerance.
        #expect(Self.logitError(baseLogits, rslora ? g.rslora_logits : g.logits) > 1e-2)
    }

    /// The unmerged path (`eval_loss_lora`, adapters in the graph) gives the NLL of PEFT's logits.
    @Test func adaptedGraphGivesPEFTsTokenLosses() throws {
        let g = try Self.golden()
        let base = try loadModel(path: Self.path("model"))
        let (lora, adapters) = try PEFTAdapter.load(directory: Self.path("adapter"), config: base.config)
        let trainer = try LMTrainer(parameters: ParameterStore(weights: base, lora: lora, adapters: adapters))
        let rows = g.ids.count, seq = g.ids[0].count, v = base.config.vocabSize
        let ids = g.ids.flatMap { $0 }
        let targets: [Int32] = g.ids.flatMap { (row: [Int32]) -> [Int32] in Array(row.dropFirst()) + [0] }
        let mask = (0..<(rows * seq)).map { Float($0 % seq == seq - 1 ? 0 : 1) }
        let batch = TokenBatch(batch: rows, seq: seq, ids: ids, targets: targets, mask: mask)
        let (sum, tokens) = try trainer.evaluate(batch)
        var want = 0.0
        for i in 0..<(rows * seq) where mask[i] > 0 {
            let row = Array(g.logits[(i * v)..<((i + 1) * v)])
            let m = row.max() ?? 0
            let sumExp = row.reduce(0.0) { (acc: Double, x: Double) -> Double in acc + exp(x - m) }
            want += m + log(sumExp) - row[Int(targets[i])]
        }
        #expect(tokens == rows * (seq - 1))
        #expect(abs(sum - want) / want <= 1e-5, "NLL sum \(sum) vs PEFT's \(want)")
    }

    /// One step's adapter gradients (`lm_step_lora`, float32) against PyTorch's through PEFT
    /// (float64): every lora_A and lora_B of every layer, q/k B rows mapped like B itself.
    @Test func adapterGradientsMatchPEFTs() throws {
        let g = try Self.golden()
        let base = try loadModel(path: Self.path("model"))
        let c = base.config
        let (lora, adapters) = try PEFTAdapter.load(directory: Self.path("adapter"), config: c)
        let trainer = try LMTrainer(parameters: ParameterStore(weights: base, lora: lora, adapters: adapters))
        let rows = g.ids.count, seq = g.ids[0].count
        let targets: [Int32] = g.ids.flatMap { (row: [Int32]) -> [Int32] in Array(row.dropFirst()) + [0] }
        let mask = (0..<(rows * seq)).map { Float($0 % seq == seq - 1 ? 0 : 1) }
        trainer.zeroGradients()
        let (loss, tokens) = try trainer.accumulateGradients([TokenBatch(batch: rows, seq: seq, ids: g.ids.flatMap { $0 }, targets: targets, mask: mask)])
        #expect(tokens == rows * (seq - 1))
        #expect(abs(loss - g.loss) <= 1e-5 * g.loss, "loss \(loss) vs PEFT's \(g.loss)")
        let file = try Safetensors.open(path: Self.path("adapter_gradients.safetensors"))
        var worst: Float = 0
        for module in lora.targets {
            let (out, _) = LoRAConfig.projectionShape(module, c)
            var a: [Float] = [], b: [Float] = []
            for layer in 0 ..< c.nLayers {
                a += try file.floats(PEFTAdapter.key(layer: layer, module: module, part: "lora_A"))
                let up = try file.floats(PEFTAdapter.key(layer: layer, module: module, part: "lora_B"))
                b += PEFTAdapter.ropeRows(module, c).map { HFCheckpoint.permuteRows(up, heads: $0, headDim: c.headDim, width: lora.rank, toHF: false) } ?? up
                #expect(up.count == out * lora.rank)
            }
            for (name, want) in [(LoRA.aName(module), a), (LoRA.bName(module), b)] {
                let got = try #require(trainer.gradient(name))
                let err = relativeError(got, want)
                worst = max(worst, err)
                #expect(err <= 1e-4, "\(name): gradient differs from PEFT's by \(err)")
            }
        }
        #expect(worst > 0)
    }

    @Test func savedAdapterHasPEFTsKeysAndRoundTrips() throws {
        let base = try loadModel(path: Self.path("model"))
        let (lora, adapters) = try PEFTAdapter.load(directory: Self.path("adapter"), config: base.config)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("peft-roundtrip-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try PEFTAdapter.save(lora: lora, adapters: adapters, config: base.config, to: out)
        let theirs = try Safetensors.read(path: Self.path("adapter") + "/" + PEFTAdapter.weightsFile)
        let ours = try Safetensors.read(path: out + "/" + PEFTAdapter.weightsFile)
        #expect(ours == theirs, "saved tensors differ from PEFT's file")
        let again = try PEFTAdapter.load(directory: out, config: base.config)
        #expect(again.lora == lora && again.adapters == adapters)
    }

    /// Settings PEFT can save that this loader cannot honour are errors, never silently dropped.
    @Test func unsupportedAdapterSettingsAndStrayTensorsAreErrors() throws {
        let base = try loadModel(path: Self.path("model"))
        let source = Self.path("adapter")
        let settings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/" + PEFTAdapter.configFile))) as? [String: Any])
        let cases: [(String, Any, String)] = [("modules_to_save", ["lm_head"], "modules_to_save"), ("bias", "all", "bias"),
                                             ("layers_to_transform", [0], "layers_to_transform"), ("use_dora", true, "use_dora"),
                                             ("peft_type", "PREFIX_TUNING", "peft_type")]
        for (field, value, word) in cases {
            let dir = SharedFixtures.tempDir("adapter").path
            try FileManager.default.copyItem(atPath: source + "/" + PEFTAdapter.weightsFile, toPath: dir + "/" + PEFTAdapter.weightsFile)
            var edited = settings
            edited[field] = value
            try JSONSerialization.data(withJSONObject: edited).write(to: URL(fileURLWithPath: dir + "/" + PEFTAdapter.configFile))
            #expect { try PEFTAdapter.load(directory: dir, config: base.config) } throws: { "\($0)".contains(word) && "\($0)".contains(dir) }
        }
        // Tensors of modules the config does not target.
        let dir = SharedFixtures.tempDir("adapter").path
        try FileManager.default.copyItem(atPath: source + "/" + PEFTAdapter.weightsFile, toPath: dir + "/" + PEFTAdapter.weightsFile)
        var fewer = settings
        fewer["target_modules"] = ["q_proj"]
        try JSONSerialization.data(withJSONObject: fewer).write(to: URL(fileURLWithPath: dir + "/" + PEFTAdapter.configFile))
        #expect { try PEFTAdapter.load(directory: dir, config: base.config) } throws: { "\($0)".contains("k_proj.lora_A") || "\($0)".contains("is not an adapter") }
    }

    @Test func adapterThatDoesNotFitTheBaseNamesTheTensorAndBothShapes() throws {
        var config = try loadModel(path: Self.path("model")).config
        config.hiddenDim = 40
        #expect { try PEFTAdapter.load(directory: Self.path("adapter"), config: config) } throws: {
            let s = "\($0)"
            return s.contains("mlp.gate_proj.lora_B.weight") && s.contains("[48, 4]") && s.contains("[40, 4]")
        }
    }
}

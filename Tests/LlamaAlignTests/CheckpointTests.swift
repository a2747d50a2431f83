import Foundation
import Testing
@testable import Alignment

/// A small GQA configuration (8 heads of size 4, 2 KV heads).
private func smallConfig(tied: Bool, eps: Float = 1e-5, theta: Float = 10000) -> LlamaConfig {
    LlamaConfig(dim: 32, hiddenDim: 44, nLayers: 2, nHeads: 8, nKVHeads: 2, vocabSize: 37,
                maxSeqLen: 16, normEps: eps, ropeTheta: theta, tiedEmbeddings: tied)
}

/// Bit-exact equality of two weight sets.
private func expectBitExact(_ a: LlamaWeights, _ b: LlamaWeights) {
    #expect(a.config == b.config)
    #expect(Set(a.tensors.keys) == Set(b.tensors.keys))
    for (name, values) in a.tensors {
        #expect(values.map(\.bitPattern) == b.tensors[name]?.map(\.bitPattern), "tensor \(name)")
    }
}

/// The error `body` throws, as text (fails the test when it throws none).
private func errorText(_ body: () throws -> Void) -> String {
    do {
        try body()
        Issue.record("expected an error")
        return ""
    } catch {
        return "\(error)"
    }
}

/// A safetensors file from a raw header string and data bytes.
private func rawSafetensors(header: String, data: [UInt8]) -> Data {
    var bytes = Data()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(contentsOf: Array(header.utf8))
    bytes.append(contentsOf: data)
    return bytes
}

private func littleEndianBytes(_ words: [UInt16]) -> [UInt8] {
    words.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
}

@Suite struct CheckpointTests {
    @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin"), "needs ../shared"))
    func stories260KLoads() throws {
        let path = try SharedFixtures.require("models/stories260K.bin")
        let w = try loadModel(path: path)
        let c = w.config
        #expect(c == LlamaConfig(dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKVHeads: 4, vocabSize: 512,
                                 maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true))
        try w.validate()
        // The first embedding value is the first float after the 28-byte header.
        let raw = try Data(contentsOf: URL(fileURLWithPath: path))
        let first = raw.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 28, as: UInt32.self))) }
        #expect(w.tensors["embed"]?.first == first)
        // final_norm is the last weight before the RoPE tables; the norms should be near 1.
        let finalNorm = try #require(w.tensors["final_norm"])
        #expect(finalNorm.allSatisfy { $0.isFinite && $0 > 0 })
    }

    @Test(arguments: [true, false]) func binRoundTrip(tied: Bool) throws {
        let w = LlamaWeights.random(config: smallConfig(tied: tied), seed: 7)
        try w.validate()
        let path = SharedFixtures.tempDir("bin").appendingPathComponent("m.bin").path
        try Llama2cCheckpoint.write(w, to: path)
        let back = try loadModel(path: path)
        expectBitExact(w, back)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
        #expect(size == Llama2cCheckpoint.fileSize(w.config))
    }

    @Test func randomIsDeterministic() {
        let a = LlamaWeights.random(config: smallConfig(tied: true), seed: 3)
        let b = LlamaWeights.random(config: smallConfig(tied: true), seed: 3)
        let c = LlamaWeights.random(config: smallConfig(tied: true), seed: 4)
        #expect(a.tensors == b.tensors)
        #expect(a.tensors["wq"] != c.tensors["wq"])
        let norm = a.tensors["attn_norm"] ?? []
        #expect(norm.allSatisfy { abs($0 - 1) < 0.2 })
    }

    @Test(arguments: [true, false]) func hfRoundTrip(tied: Bool) throws {
        let w = LlamaWeights.random(config: smallConfig(tied: tied, eps: 1e-6, theta: 500000), seed: 11)
        let dir = SharedFixtures.tempDir("hf").path
        try HFCheckpoint.save(w, to: dir)
        let back = try loadModel(path: dir)
        expectBitExact(w, back)

        let file = try Safetensors.open(path: dir + "/model.safetensors")
        #expect(file.metadata["format"] == "pt")
        #expect((file.tensors["lm_head.weight"] != nil) == !tied)
        // By hand: layer 1, q head 3 (size 4): HF row 3·4 + 2 + 1 (second half, i = 1) is internal row 3·4 + 2·1 + 1.
        let (d, hd) = (w.config.dim, w.config.headDim)
        let hfQ = try file.floats("model.layers.1.self_attn.q_proj.weight")
        let wq = try #require(w.tensors["wq"])
        let layer = 1 * d * d
        let hfRow = 3 * hd + hd / 2 + 1, internalRow = 3 * hd + 2 * 1 + 1
        #expect(Array(hfQ[hfRow * d ..< (hfRow + 1) * d]) == Array(wq[layer + internalRow * d ..< layer + (internalRow + 1) * d]))
        // and for k (2 KV heads): HF row 1·4 + 0 is internal row 1·4 + 0; HF row 1 is internal row 2.
        let hfK = try file.floats("model.layers.0.self_attn.k_proj.weight")
        let wk = try #require(w.tensors["wk"])
        #expect(Array(hfK[1 * d ..< 2 * d]) == Array(wk[2 * d ..< 3 * d]))
        #expect(Array(hfK[4 * d ..< 5 * d]) == Array(wk[4 * d ..< 5 * d]))
        // v is not permuted.
        #expect(try file.floats("model.layers.0.self_attn.v_proj.weight") == Array((w.tensors["wv"] ?? [])[0 ..< 8 * d]))

        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        #expect(config.contains("\"LlamaForCausalLM\""))
        #expect(config.contains("\"rms_norm_eps\": 1e-06"))
    }

    @Test func hfAbsentLmHeadMeansTied() throws {
        let w = LlamaWeights.random(config: smallConfig(tied: true), seed: 5)
        let dir = SharedFixtures.tempDir("hf").path
        try HFCheckpoint.save(w, to: dir)
        let text = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        try text.replacingOccurrences(of: "\"tie_word_embeddings\": true", with: "\"tie_word_embeddings\": false")
            .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(try HFCheckpoint.load(directory: dir).config.tiedEmbeddings)
    }

    @Test func hfShardedLoads() throws {
        let w = LlamaWeights.random(config: smallConfig(tied: false), seed: 9)
        let dir = SharedFixtures.tempDir("hf").path
        try HFCheckpoint.save(w, to: dir)
        // Split model.safetensors into two shards plus an index.
        let all = try Safetensors.read(path: dir + "/model.safetensors")
        let names = all.keys.sorted()
        let halves = [Array(names.prefix(names.count / 2)), Array(names.dropFirst(names.count / 2))]
        var map: [String: String] = [:]
        for (i, part) in halves.enumerated() {
            let shard = "model-0000\(i + 1)-of-00002.safetensors"
            // The second shard as BF16 would lose bits; keep F32 for a bit-exact comparison.
            try Safetensors.write(all.filter { part.contains($0.key) }, to: dir + "/" + shard, metadata: ["format": "pt"])
            for n in part { map[n] = shard }
        }
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": map])
        try index.write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        expectBitExact(w, try HFCheckpoint.load(directory: dir))
    }

    @Test(arguments: [Safetensors.DType.f16, .bf16]) func hfHalfPrecisionLoads(dtype: Safetensors.DType) throws {
        let w = LlamaWeights.random(config: smallConfig(tied: false), seed: 13)
        let dir = SharedFixtures.tempDir("hf").path
        try HFCheckpoint.save(w, to: dir)
        let file = dir + "/model.safetensors"
        try Safetensors.write(try Safetensors.read(path: file), to: file, dtype: dtype, metadata: ["format": "pt"])
        let back = try HFCheckpoint.load(directory: dir)
        let round: (Float) -> Float = dtype == .f16
            ? { HalfFloat.floatFromF16(HalfFloat.f16FromFloat($0)) }
            : { HalfFloat.floatFromBF16(HalfFloat.bf16FromFloat($0)) }
        for (name, values) in w.tensors {
            #expect(back.tensors[name] == values.map(round), "tensor \(name)")
        }
    }

    @Test func halfPrecisionDecodes() throws {
        let f16: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00, 0xFC00, 0x8000, 0x03FF]
        let bf16: [UInt16] = [0x3F80, 0xC020, 0x477F, 0x0001, 0x7F80, 0xFF80, 0x8000, 0x7FC0]
        let header = """
        {"a":{"dtype":"F16","shape":[8],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[2,4],"data_offsets":[16,32]}}
        """
        let path = SharedFixtures.tempDir("st").appendingPathComponent("h.safetensors").path
        try rawSafetensors(header: header, data: littleEndianBytes(f16 + bf16)).write(to: URL(fileURLWithPath: path))
        let t = try Safetensors.read(path: path)
        let a = try #require(t["a"]?.values)
        #expect(a[0] == 1.0 && a[1] == -2.5 && a[2] == 65504)
        #expect(a[3] == 0x1p-24 && a[7] == 1023 * 0x1p-24)  // subnormals
        #expect(a[4] == .infinity && a[5] == -.infinity)
        #expect(a[6] == 0 && a[6].sign == .minus)
        let b = try #require(t["b"])
        #expect(b.shape == [2, 4])
        #expect(b.values[0] == 1.0 && b.values[1] == -2.5 && b.values[2] == 65280)
        #expect(b.values[3] == 0x1p-133 && b.values[4] == .infinity && b.values[5] == -.infinity)
        #expect(b.values[7].isNaN)
    }

    @Test func halfPrecisionEncodes() throws {
        // Every finite f16 value survives f16 -> Float -> f16.
        for bits in UInt16(0) ... UInt16.max where (bits >> 10) & 0x1F != 0x1F {
            #expect(HalfFloat.f16FromFloat(HalfFloat.floatFromF16(bits)) == bits)
        }
        #expect(HalfFloat.f16FromFloat(65520) == 0x7C00)         // rounds up to infinity
        #expect(HalfFloat.f16FromFloat(65519) == 0x7BFF)
        #expect(HalfFloat.f16FromFloat(0x1p-25) == 0)            // tie to even: zero
        #expect(HalfFloat.f16FromFloat(0x1.8p-25) == 1)          // above the tie
        #expect(HalfFloat.f16FromFloat(1 + 0x1p-11) == 0x3C00)   // tie to even
        #expect(HalfFloat.f16FromFloat(.nan) & 0x7E00 == 0x7E00)
        #expect(HalfFloat.bf16FromFloat(1 + 0x1p-8) == 0x3F80)   // tie to even
        #expect(HalfFloat.bf16FromFloat(1 + 0x1.8p-8) == 0x3F81)
        #expect(HalfFloat.floatFromBF16(HalfFloat.bf16FromFloat(.nan)).isNaN)

        let values: [Float] = [1, -2.5, 0.1, 3e-5, -7]
        let dir = SharedFixtures.tempDir("st")
        for dtype in Safetensors.DType.allCases {
            let path = dir.appendingPathComponent("\(dtype.rawValue).safetensors").path
            try Safetensors.write(["x": .init(shape: [5], values: values)], to: path, dtype: dtype, metadata: ["k": "v\"q"])
            let file = try Safetensors.open(path: path)
            #expect(file.metadata == ["k": "v\"q"])
            #expect(file.tensors["x"]?.dtype == dtype.rawValue)
            let back = try file.floats("x")
            for (x, y) in zip(values, back) { #expect(abs(x - y) <= abs(x) * (dtype == .bf16 ? 1.0 / 128 : 1.0 / 1024)) }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
            #expect(n % 8 == 0)
        }
    }

    @Test func largeFileIsQuick() throws {
        let count = 16 * 1024 * 1024  // 64 MiB of F32
        let values = [Float](repeating: 0.5, count: count)
        let path = SharedFixtures.tempDir("st").appendingPathComponent("big.safetensors").path
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            try Safetensors.write(["big": .init(shape: [4096, 4096], values: values)], to: path)
            let back = try Safetensors.open(path: path).floats("big")
            #expect(back.count == count && back[count - 1] == 0.5)
        }
        #expect(elapsed < .seconds(20))
        try? FileManager.default.removeItem(atPath: path)
    }

    // MARK: errors

    @Test func missingFile() {
        let path = SharedFixtures.tempDir("err").appendingPathComponent("nope.bin").path
        let text = errorText { _ = try loadModel(path: path) }
        #expect(text.contains(path) && text.contains("no such"))
    }

    @Test func truncatedBin() throws {
        let path = SharedFixtures.tempDir("err").appendingPathComponent("short.bin").path
        try Data([1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try Llama2cCheckpoint.load(path: path) }
        #expect(text.contains(path) && text.contains("truncated"))
    }

    @Test func binSizeMismatch() throws {
        let w = LlamaWeights.random(config: smallConfig(tied: false), seed: 1)
        let path = SharedFixtures.tempDir("err").appendingPathComponent("cut.bin").path
        try Llama2cCheckpoint.write(w, to: path)
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        try full.prefix(full.count - 12).write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try Llama2cCheckpoint.load(path: path) }
        #expect(text.contains(path) && text.contains("expects \(full.count) bytes") && text.contains("has \(full.count - 12) bytes"))
        #expect(!text.contains("\n"))
    }

    @Test func binBadHeader() throws {
        let path = SharedFixtures.tempDir("err").appendingPathComponent("bad.bin").path
        var header = Data()
        for v: Int32 in [64, 172, 5, 7, 4, 512, 512] { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        try header.write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try Llama2cCheckpoint.load(path: path) }
        #expect(text.contains(path) && text.contains("multiple"))
    }

    @Test func safetensorsLyingOffsets() throws {
        let dir = SharedFixtures.tempDir("err")
        let cases: [(String, [UInt8], String)] = [
            (#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}"#, Array(repeating: 0, count: 16), "out of range"),
            (#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#, Array(repeating: 0, count: 16), "needs 16 bytes"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
             Array(repeating: 0, count: 16), "overlap"),
            (#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#, Array(repeating: 0, count: 16), "F64"),
            (#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,16]}}"#, Array(repeating: 0, count: 16), "unknown dtype"),
            (#"{"a":{"dtype":"F32","shape":[2],"#, [], "malformed"),
        ]
        for (i, (header, data, word)) in cases.enumerated() {
            let path = dir.appendingPathComponent("c\(i).safetensors").path
            try rawSafetensors(header: header, data: data).write(to: URL(fileURLWithPath: path))
            let text = errorText { _ = try Safetensors.read(path: path) }
            #expect(text.contains(path) && text.contains(word), "\(text)")
            if i < 5 { #expect(text.contains("'a'") || text.contains("'b'"), "\(text)") }
        }
        // A header length beyond the end of the file.
        let path = dir.appendingPathComponent("long.safetensors").path
        var bytes = Data()
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array("{}".utf8))
        try bytes.write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try Safetensors.open(path: path) }
        #expect(text.contains(path) && text.contains("beyond"))
    }

    @Test func hfMissingTensor() throws {
        let w = LlamaWeights.random(config: smallConfig(tied: true), seed: 2)
        let dir = SharedFixtures.tempDir("err").path
        try HFCheckpoint.save(w, to: dir)
        let file = dir + "/model.safetensors"
        var all = try Safetensors.read(path: file)
        all["model.layers.1.mlp.up_proj.weight"] = nil
        try Safetensors.write(all, to: file)
        let text = errorText { _ = try loadModel(path: dir) }
        #expect(text.contains(file) && text.contains("missing") && text.contains("model.layers.1.mlp.up_proj.weight")
            && text.contains("[44, 32]"))

        all["model.layers.1.mlp.up_proj.weight"] = .init(shape: [32, 44], values: [Float](repeating: 0, count: 32 * 44))
        try Safetensors.write(all, to: file)
        let shapeText = errorText { _ = try loadModel(path: dir) }
        #expect(shapeText.contains(file) && shapeText.contains("[32, 44]") && shapeText.contains("expected [44, 32]"))

        try FileManager.default.removeItem(atPath: file)
        let noWeights = errorText { _ = try loadModel(path: dir) }
        #expect(noWeights.contains(dir) && noWeights.contains("missing model.safetensors"))
    }

    @Test func hfBadConfig() throws {
        let dir = SharedFixtures.tempDir("err").path
        try #"{"hidden_size": 32}"#.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let text = errorText { _ = try HFCheckpoint.load(directory: dir) }
        #expect(text.contains(dir + "/config.json") && text.contains("missing field"))
    }

    /// config.json: Hugging Face's names, unknown keys ignored, written as transformers writes it,
    /// and each unsupported or malformed field named.
    @Test func hfConfigFieldsAndProblems() throws {
        let path = SharedFixtures.tempDir("cfg").appendingPathComponent("config.json").path
        func load(_ json: String) throws -> (config: LlamaConfig, tied: Bool?) {
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            return try HFConfig.load(path: path)
        }
        // As transformers writes it, with keys this project does not use (an integral 172.0 is an integer).
        let real = #"{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 1, "eos_token_id": 2, "head_dim": 8, "#
            + #""hidden_size": 64, "intermediate_size": 172.0, "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 5, "#
            + #""num_key_value_heads": 4, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000, "tie_word_embeddings": false, "#
            + #""transformers_version": "4.46.0", "vocab_size": 512}"#
        let (c, tied) = try load(real)
        #expect(c == LlamaConfig(dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKVHeads: 4, vocabSize: 512, maxSeqLen: 2048,
                                 normEps: 1e-5, ropeTheta: 10000))
        #expect(tied == false)
        // Written with sorted keys and `"key": value`; it parses and reads back the same.
        let text = try HFConfig.text(c)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["num_key_value_heads"] as? Int == 4 && object["model_type"] as? String == "llama")
        #expect(text.contains("\n  \"hidden_size\": 64,\n") && !text.contains(" : "))
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys.count == object.count && keys == keys.sorted())
        #expect(try load(text).config == c)
        let problems: [(String, String)] = [
            (#"{"model_type": "mistral"}"#, "model_type is 'mistral'"),
            (#"{"rope_scaling": {"type": "linear", "factor": 2.0}}"#, "rope_scaling is set"),
            (#"{"mlp_bias": true}"#, "mlp_bias is true"),
            (real.replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": "64""#), "field 'hidden_size' is not an integer"),
            (real.replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": 64.5"#), "field 'hidden_size' is not an integer"),
            (real.replacingOccurrences(of: #""rope_theta": 10000"#, with: #""rope_theta": [1]"#), "field 'rope_theta' is not a number"),
            (real.replacingOccurrences(of: #""head_dim": 8"#, with: #""head_dim": 16"#), "head_dim 16 differs"),
            (real.replacingOccurrences(of: #""vocab_size": 512"#, with: #""vocab_size": null"#), "missing field 'vocab_size'"),
            ("[1, 2]", "the JSON is not an object"),
            (#"{"hidden_size": "#, "malformed JSON"),
        ]
        for (json, problem) in problems {
            let message = errorText { _ = try load(json) }
            #expect(message.contains(path) && message.contains(problem), "\(message)")
            #expect(!message.contains("\n"), "\(message)")
        }
    }

    /// transformers ≥ 5 writes θ (and any scaling) only inside `rope_parameters`.
    @Test func hfRopeParametersAreRead() throws {
        let dir = SharedFixtures.tempDir("rope").path
        try HFCheckpoint.save(LlamaWeights.random(config: smallConfig(tied: true), seed: 3), to: dir)
        let config = dir + "/config.json"
        let saved = try String(contentsOfFile: config, encoding: .utf8)
        func write(_ rope: String) throws {
            #expect(saved.contains(#""rope_theta": 10000,"#))
            try saved.replacingOccurrences(of: #""rope_theta": 10000,"#, with: rope + ",")
                .write(toFile: config, atomically: true, encoding: .utf8)
        }
        try write(#""rope_parameters": {"rope_theta": 5000.0, "rope_type": "default"}"#)
        #expect(try loadModel(path: dir).config.ropeTheta == 5000)
        try write(#""rope_parameters": {"rope_theta": 5000.0, "rope_type": "linear", "factor": 2.0}"#)
        let scaled = errorText { _ = try loadModel(path: dir) }
        #expect(scaled.contains(config) && scaled.contains("rope_type is 'linear'"))
        try write(#""rope_theta": 10000, "rope_parameters": {"rope_theta": 5000.0}"#)
        #expect(errorText { _ = try loadModel(path: dir) }.contains("disagree"))
    }

    @Test func unrecognizedPath() throws {
        let path = SharedFixtures.tempDir("err").appendingPathComponent("model.onnx").path
        try Data([0]).write(to: URL(fileURLWithPath: path))
        let text = errorText { _ = try loadModel(path: path) }
        #expect(text.contains(path) && text.contains("unrecognized"))
    }

    @Test func writeRefusesWhatBinCannotHold() {
        let w = LlamaWeights.random(config: smallConfig(tied: true, theta: 500000), seed: 1)
        let path = SharedFixtures.tempDir("err").appendingPathComponent("x.bin").path
        let text = errorText { try Llama2cCheckpoint.write(w, to: path) }
        #expect(text.contains(path) && text.contains("rope theta"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}

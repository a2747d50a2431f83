import Foundation

/// A quantized checkpoint: a directory with `config.json` (the Hugging Face config plus a
/// `quantization_config` entry) and `model.safetensors` holding the model under this project's
/// internal names (llama2.c order; q/k rows in the RoPE layout the kernels use):
///
/// | tensor | dtype | shape |
/// |---|---|---|
/// | `embed`, `final_norm`, `attn_norm`, `ffn_norm` | F32 | as in f32 (`[V, D]`, `[D]`, `[L, D]`) |
/// | `wq` `wk` `wv` `wo` `w1` `w2` `w3` (q8_0) | I8 | `[L·out, in]` |
/// | the same (q4_0) | U8 | `[L·out, in/2]`: two values a byte, `q + 8`, each run of 32 values in 16 bytes (value j low nibble, j + 16 high) |
/// | `<name>.scales` | F32 (fp16-exact) | `[L·out, ⌈in/G⌉]` |
/// | `lm_head` (q8_0, or q4_0 as the layers), `lm_head.scales` | I8 (U8), F32 | `[V, D]` (`[V, D/2]`), `[V, ⌈D/G⌉]` |
///
/// Rows are stored padded to `⌈in/G⌉·G` values (`in` above stands for that length; the padding
/// holds zeros), so a row `G` does not divide ends in a short group.
///
/// `quantization_config` = `{"quant_type": "q8_0"|"q4_0", "group_size": G, "lm_head": "q8_0"|"q4_0",
/// "format": "llama-align"}` (`lm_head` absent reads as `q8_0`).
public enum QuantizedCheckpoint {
    static let configKey = "quantization_config"

    /// The quantization recorded in `directory/config.json`, nil when it has none.
    public static func recorded(in directory: String) -> (type: String, groupSize: Int, head: String)? {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("config.json").path
        guard let data = FileManager.default.contents(atPath: path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let entry = json[configKey], !(entry is NSNull) else { return nil }
        // Present but not an object: recorded, with a type `load` names as wrong.
        guard let q = entry as? [String: Any] else { return ("not an object", 0, "q8_0") }
        // A group size that is not a JSON integer reads as 0 (`load` says what it expected).
        let group = (q["group_size"] as? NSNumber).flatMap { n in n.doubleValue == n.doubleValue.rounded() ? Int(exactly: n.doubleValue) : nil } ?? 0
        return ((q["quant_type"] as? String) ?? "missing", group, (q["lm_head"] as? String) ?? "q8_0")
    }

    /// Writes `w` into `directory` (created if needed).
    public static func save(_ w: QuantizedWeights, to directory: String) throws {
        let dir = URL(fileURLWithPath: directory)
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw QuantizationError("\(directory): cannot create directory (\(error.localizedDescription))")
        }
        var entries: [(name: String, dtype: String, shape: [Int], bytes: Data)] = []
        func floats(_ v: [Float]) -> Data { v.withUnsafeBufferPointer { Data(buffer: $0) } }
        for (name, shape) in w.config.parameterShapes where QuantizedWeights.denseNames.contains(name) {
            entries.append((name, "F32", shape, floats(w.dense[name] ?? [])))
        }
        for (name, m) in w.matrices.sorted(by: { $0.key < $1.key }) {
            let q4 = m.type == .q4_0
            entries.append((name, q4 ? "U8" : "I8", [m.rows, q4 ? m.paddedCols / 2 : m.paddedCols], Data(m.packed)))
            entries.append((name + ".scales", "F32", [m.rows, m.groupsPerRow], floats(m.scales)))
        }
        var header: [String] = ["\"__metadata__\":{\"format\":\"llama-align-quantized\"}"]
        var offset = 0
        for e in entries {
            header.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],"
                          + "\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        var h = Array("{\(header.joined(separator: ","))}".utf8)
        while h.count % 8 != 0 { h.append(UInt8(ascii: " ")) }
        var data = Data()
        var n = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(contentsOf: h)
        for e in entries { data.append(e.bytes) }
        try BinaryIO.writeAtomically(data, to: dir.appendingPathComponent("model.safetensors").path)
        guard var config = try JSONSerialization.jsonObject(with: Data(try HFConfig.text(w.config).utf8)) as? [String: Any] else {
            throw QuantizationError("\(directory): cannot write config.json")
        }
        config[configKey] = ["quant_type": w.type.rawValue, "group_size": w.groupSize, "lm_head": w.headType.rawValue, "format": "llama-align"] as [String: Any]
        let text = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try BinaryIO.writeAtomically(text, to: dir.appendingPathComponent("config.json").path)
    }

    /// Reads a directory `save` wrote.
    public static func load(directory: String) throws -> QuantizedWeights {
        let dir = URL(fileURLWithPath: directory)
        guard let (typeName, g, headName) = recorded(in: directory) else {
            throw QuantizationError("\(directory)/config.json: no \(configKey); not a quantized checkpoint")
        }
        if typeName == "not an object" { throw QuantizationError("\(directory)/config.json: \(configKey) is not an object (expected {\"quant_type\", \"group_size\", …})") }
        guard [32, 64, 128].contains(g) else {
            throw QuantizationError("\(directory)/config.json: \(configKey).group_size is \(g == 0 ? "missing or not an integer" : String(g)) (expected 32, 64 or 128)")
        }
        guard let type = QuantType(name: typeName) else {
            throw QuantizationError("\(directory)/config.json: \(configKey).quant_type '\(typeName)' (expected q8_0 or q4_0)")
        }
        guard let headType = QuantType(name: headName) else {
            throw QuantizationError("\(directory)/config.json: \(configKey).lm_head '\(headName)' (expected q8_0 or q4_0)")
        }
        var (config, tied) = try HFConfig.load(path: dir.appendingPathComponent("config.json").path)
        config.tiedEmbeddings = tied ?? config.tiedEmbeddings
        let path = dir.appendingPathComponent("model.safetensors").path
        let file = try Safetensors.open(path: path)
        var dense: [String: [Float]] = [:]
        for (name, shape) in config.parameterShapes where QuantizedWeights.denseNames.contains(name) {
            guard let info = file.tensors[name], info.shape == shape else {
                throw QuantizationError("\(path): tensor '\(name)' missing or not of shape \(shape)")
            }
            dense[name] = try file.floats(name)
        }
        var matrices: [String: QuantizedMatrix] = [:]
        var shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes.map { ($0.name, $0.shape) })
        shapes["lm_head"] = [1, config.vocabSize, config.dim]
        for name in QuantizedWeights.projections + ["lm_head"] {
            guard let s = shapes[name] else { continue }
            let t = name == "lm_head" ? headType : type
            let (rows, cols) = (s[0] * s[1], s[2])
            let groups = (cols + g - 1) / g
            let want = [rows, t == .q4_0 ? groups * g / 2 : groups * g], dtype = t == .q4_0 ? "U8" : "I8"
            guard let info = file.tensors[name], info.shape == want, info.dtype == dtype else {
                throw QuantizationError("\(path): tensor '\(name)' missing or not \(dtype) \(want) (\(t.rawValue), group \(g))")
            }
            guard let sinfo = file.tensors[name + ".scales"], sinfo.shape == [rows, groups] else {
                throw QuantizationError("\(path): tensor '\(name).scales' missing or not F32 [\(rows), \(groups)]")
            }
            let start = file.dataStart + info.byteRange.lowerBound
            let packed = [UInt8](file.bytes[start ..< start + info.byteRange.count])
            matrices[name] = try QuantizedMatrix(type: t, rows: rows, cols: cols, groupSize: g, scales: try file.floats(name + ".scales"), packed: packed)
        }
        return try QuantizedWeights(config: config, type: type, groupSize: g, dense: dense, matrices: matrices)
    }
}

import Foundation

/// A Hugging Face `generation_config.json`: the defaults of `llama-align generate` for a model
/// folder that has one. Read with transformers' meaning of absent keys: `do_sample` false
/// (greedy), temperature 1, top-p 1, top-k 50, repetition penalty 1; `max_new_tokens` (or
/// `max_length` less the prompt) bounds the length; `eos_token_id` (one id or a list) stops.
public struct GenerationConfig: Sendable, Equatable {
    public var doSample: Bool?
    public var temperature: Double?
    public var topP: Double?
    public var topK: Int?
    public var repetitionPenalty: Double?
    public var maxNewTokens: Int?
    public var maxLength: Int?
    public var eosIds: [Int32]?

    public init(doSample: Bool? = nil, temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil,
                repetitionPenalty: Double? = nil, maxNewTokens: Int? = nil, maxLength: Int? = nil, eosIds: [Int32]? = nil) {
        self.doSample = doSample; self.temperature = temperature; self.topP = topP; self.topK = topK
        self.repetitionPenalty = repetitionPenalty; self.maxNewTokens = maxNewTokens; self.maxLength = maxLength; self.eosIds = eosIds
    }

    /// What `llama-align generate` does with no generation config: sampling at temperature 0.8,
    /// top-p 0.9, top-k off (written into saved folders that came without one).
    public static let llamaAlign = GenerationConfig(doSample: true, temperature: 0.8, topP: 0.9, topK: 0)

    /// The `generation_config.json` in the folder of `model` (or the model folder); nil when there is none.
    public static func beside(model: String) throws -> GenerationConfig? {
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: model, isDirectory: &isDir)
        let dir = exists && isDir.boolValue ? model : (model as NSString).deletingLastPathComponent
        let path = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent("generation_config.json")
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try parse(data, path: path)
    }

    /// Parses a `generation_config.json`'s contents; a field of the wrong type is an error naming it.
    public static func parse(_ data: Data, path: String) throws -> GenerationConfig {
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw RuntimeIOError("\(path): not a JSON object (expected a generation config)")
        }
        func number(_ key: String) throws -> Double? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            guard !isJSONBool(v), let n = v as? NSNumber, n.doubleValue.isFinite else {
                throw RuntimeIOError("\(path): \(key) must be a number, got \(v)")
            }
            return n.doubleValue
        }
        func integer(_ key: String) throws -> Int? {
            guard let d = try number(key) else { return nil }
            guard d == d.rounded(), d >= 0, d < 1e12 else { throw RuntimeIOError("\(path): \(key) must be an integer ≥ 0, got \(d)") }
            return Int(d)
        }
        var g = GenerationConfig()
        if let v = o["do_sample"], !(v is NSNull) {
            guard isJSONBool(v), let b = v as? Bool else { throw RuntimeIOError("\(path): do_sample must be true or false, got \(v)") }
            g.doSample = b
        }
        g.temperature = try number("temperature")
        g.topP = try number("top_p")
        g.topK = try integer("top_k")
        g.repetitionPenalty = try number("repetition_penalty")
        g.maxNewTokens = try integer("max_new_tokens")
        g.maxLength = try integer("max_length")
        if let v = o["eos_token_id"], !(v is NSNull) {
            let list = (v as? [Any]) ?? [v]
            g.eosIds = try list.map { e in
                guard let n = e as? NSNumber, let i = Int32(exactly: n.doubleValue) else {
                    throw RuntimeIOError("\(path): eos_token_id must be an id or a list of ids, got \(v)")
                }
                return i
            }
        }
        return g
    }

    /// Sampler settings with transformers' defaults for absent keys; greedy unless `do_sample`.
    public func sampler(seed: UInt64) -> SamplerSettings {
        guard doSample ?? false else {
            return SamplerSettings(temperature: 0, topK: 0, topP: 1, repetitionPenalty: Float(repetitionPenalty ?? 1), seed: seed)
        }
        return SamplerSettings(temperature: Float(temperature ?? 1), topK: topK ?? 50, topP: Float(topP ?? 1),
                               repetitionPenalty: Float(repetitionPenalty ?? 1), seed: seed)
    }

    /// The JSON object written for this config with the tokenizer's ids.
    func json(bos: Int32, eos: Int32, pad: Int32?) -> [String: Any] {
        var o: [String: Any] = ["bos_token_id": Int(bos), "eos_token_id": Int(eos)]
        if let pad { o["pad_token_id"] = Int(pad) }
        if let doSample { o["do_sample"] = doSample }
        if let temperature { o["temperature"] = temperature }
        if let topP { o["top_p"] = topP }
        if let topK { o["top_k"] = topK }
        return o
    }
}

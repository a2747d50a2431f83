import KernelRuntime

extension LlamaWeights {
    /// The first tensor (in `config.parameterShapes` order) holding a NaN or an infinity, with
    /// the index of its first such value; nil when every value is finite.
    public func firstNonFinite() -> (tensor: String, index: Int)? {
        for (name, _) in config.parameterShapes {
            guard let values = tensors[name], let i = values.firstIndex(where: { !$0.isFinite }) else { continue }
            return (name, i)
        }
        return nil
    }

    /// Throws, naming the tensor, when a weight is not finite (a model that can only give NaN
    /// logits; `eval` and `generate` refuse it). `source` names where the weights came from.
    public func checkFinite(source: String) throws {
        guard let bad = firstNonFinite() else { return }
        let value = tensors[bad.tensor]?[bad.index] ?? .nan
        throw RuntimeError("\(source): tensor '\(bad.tensor)' holds a non-finite value (\(value) at index \(bad.index)); the model cannot give finite logits")
    }
}

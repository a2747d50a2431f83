import KernelRuntime

/// A step whose loss or gradient norm is not finite stops the run: nothing of it is logged or
/// saved (the last checkpoint stays the last good one) and the error names the step, the values
/// and the first parameter whose gradient is not finite.
struct NonFiniteStep: Error, CustomStringConvertible {
    var step: Int
    var metrics: [String: Double]
    var parameter: String?

    var description: String {
        let values = ["loss", "grad_norm"].compactMap { k in metrics[k].map { "\(k) \($0)" } }.joined(separator: ", ")
        let which = parameter.map { "; the first parameter with a non-finite gradient is '\($0)'" } ?? ""
        return "step \(step): \(values)\(which). Stopped without saving this step (the last checkpoint is kept); "
            + "lower learning_rate, set max_grad_norm, or check the data and the starting model for non-finite values"
    }

    /// The error for a step's metrics, or nil when its loss and gradient norm are finite.
    static func check(step: Int, metrics: [String: Double], optimizer: () -> AdamW?) -> NonFiniteStep? {
        guard ["loss", "grad_norm"].contains(where: { metrics[$0].map { !$0.isFinite } ?? false }) else { return nil }
        return NonFiniteStep(step: step, metrics: metrics, parameter: optimizer()?.firstNonFiniteGradient())
    }
}

extension AdamW {
    /// The first trainable parameter (in layout order) whose gradient holds a NaN or infinity.
    func firstNonFiniteGradient() -> String? {
        parameters.names.first { name in trainable.contains(name) && (gradient(name)?.contains { !$0.isFinite } ?? false) }
    }
}

/// The optimizer whose gradients a non-finite step is diagnosed from.
protocol HasOptimizer {
    var optimizerForDiagnosis: AdamW? { get }
}

extension LMJob: HasOptimizer {
    var optimizerForDiagnosis: AdamW? { trainer.optimizer }
}

extension DPOJob: HasOptimizer {
    var optimizerForDiagnosis: AdamW? { trainer.policy.optimizer }
}

import Foundation

/// Learning rate per optimizer step, as Hugging Face's schedulers compute it: linear warm-up
/// from 0, then linear decay to 0, a cosine half-cycle to 0, or constant. Step 0 is the first update.
public struct LRSchedule: Sendable, Equatable {
    public var kind: String
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(kind: String, peak: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind; self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        switch kind {
        case "constant": return peak
        case "cosine": return peak * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        default: return peak * max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
        }
    }
}

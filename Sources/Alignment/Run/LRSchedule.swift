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

extension TrainingArguments {
    /// Optimizer steps of the run (`max_steps`, else the epochs over `rows` examples) and the
    /// learning-rate schedule over them (`warmup_steps`, else `warmup_ratio` of the steps).
    /// With `ranks` data-parallel processes, a step consumes `ranks` times the rows.
    public func schedule(rows: Int, ranks: Int = 1) -> (steps: Int, lr: LRSchedule) {
        let perStep = perDeviceTrainBatchSize * gradientAccumulationSteps * max(ranks, 1)
        let stepsPerEpoch = max(1, (rows + perStep - 1) / perStep)
        // Epochs that ask for more steps than an Int holds run "forever", as max_steps = Int.max does.
        let epochSteps = (Double(stepsPerEpoch) * numTrainEpochs).rounded(.up)
        let steps = maxSteps > 0 ? maxSteps : max(1, epochSteps < 0x1p63 ? Int(epochSteps) : Int.max)
        let warmupFromRatio = min(warmupRatio, 1) * Double(steps)
        let warmup = warmupSteps > 0 ? warmupSteps : (warmupFromRatio < 0x1p63 ? Int(warmupFromRatio) : steps)
        return (steps, LRSchedule(kind: lrSchedulerType, peak: learningRate, warmupSteps: warmup, totalSteps: steps))
    }
}

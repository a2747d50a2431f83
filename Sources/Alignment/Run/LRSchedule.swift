import Foundation

/// Learning rate per optimizer step, as Hugging Face's schedulers compute it: linear warm-up
/// from 0, then linear decay, a cosine (`numCycles` waves; 0.5 is one half-cycle), or constant.
/// The decay goes from `peak` to `floor` (PaddleNLP's `min_learning_rate`, 0 by default) over
/// `decaySteps` steps after warm-up (the whole run when 0) and stays at `floor` after them.
/// Step 0 is the first update.
public struct LRSchedule: Sendable, Equatable {
    public var kind: String
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var floor = 0.0
    public var numCycles = 0.5
    public var decaySteps = 0

    public init(kind: String, peak: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind; self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        // The end of the decay: `decaySteps` (counted from step 0, as PaddleNLP's decay_steps) or the run.
        let end = decaySteps > 0 ? max(decaySteps, warmupSteps) : totalSteps
        let span = Double(max(1, end - warmupSteps))
        let progress = min(1, Double(step - warmupSteps) / span)
        switch kind {
        case "constant", "constant_with_warmup": return peak
        // min(peak, …): floor + (peak − floor) can round one ulp above the peak.
        case "cosine": return min(peak, floor + (peak - floor) * max(0, 0.5 * (1 + cos(Double.pi * 2 * numCycles * progress))))
        default: return min(peak, floor + (peak - floor) * max(0, 1 - progress))
        }
    }
}

extension TrainingArguments {
    /// Optimizer steps of the run (`max_steps`, else the epochs over `rows` examples) and the
    /// learning-rate schedule over them (`warmup_steps`, else `warmup_ratio` of the steps).
    /// With `ranks` data-parallel processes, a step consumes `ranks` times the rows.
    public func schedule(rows: Int, ranks: Int = 1) -> (steps: Int, lr: LRSchedule) {
        let stepsPerEpoch = stepsPerEpoch(rows: rows, ranks: ranks)
        // Epochs that ask for more steps than an Int holds run "forever", as max_steps = Int.max does.
        let epochSteps = (Double(stepsPerEpoch) * numTrainEpochs).rounded(.up)
        let steps = maxSteps > 0 ? maxSteps : max(1, epochSteps < 0x1p63 ? Int(epochSteps) : Int.max)
        let warmupFromRatio = min(warmupRatio, 1) * Double(steps)
        let warmup = warmupSteps > 0 ? warmupSteps : (warmupFromRatio < 0x1p63 ? Int(warmupFromRatio) : steps)
        var lr = LRSchedule(kind: lrSchedulerType, peak: learningRate, warmupSteps: warmup, totalSteps: steps)
        lr.floor = minLearningRate
        lr.numCycles = numCycles
        lr.decaySteps = decaySteps
        return (steps, lr)
    }

    /// Optimizer steps in one epoch over `rows` examples.
    public func stepsPerEpoch(rows: Int, ranks: Int = 1) -> Int {
        let perStep = perDeviceTrainBatchSize * gradientAccumulationSteps * max(ranks, 1)
        return max(1, (rows + perStep - 1) / perStep)
    }
}

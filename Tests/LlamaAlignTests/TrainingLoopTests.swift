import Foundation
import Testing
@testable import Alignment

/// The cadence `TrainingLoop` keeps for every job: metrics every `logging_steps` and at the end,
/// evaluations and checkpoints every `eval_steps` / `save_steps` but not at the last step
/// (the final ones follow), and a clean stop after `stopAfter` steps.
@Suite struct TrainingLoopTests {
    /// Records what the loop asked of it.
    struct RecordingJob: RunJob {
        var steps: [(micro: [[Int]], lr: Double)] = []
        var after: [Int] = []
        var evaluations = 0
        var saves: [Int] = []

        mutating func step(_ micro: [[Int]], lr: Double) throws -> RunStepReport {
            steps.append((micro, lr))
            return RunStepReport(metrics: ["loss": Double(steps.count)], tokens: 10, progress: [("loss", "\(steps.count)")])
        }
        mutating func afterStep(_ step: Int, metrics: [String: Double]) throws {
            #expect(metrics["step"] == Double(step) && metrics["loss"] == Double(steps.count) && metrics["learning_rate"] != nil)
            after.append(step)
        }
        mutating func evaluate() throws -> [String: Double]? {
            evaluations += 1
            return ["eval_loss": Double(evaluations)]
        }
        func save(step: Int, loader: LoaderState, epoch: Double, protect: Int?) throws {}
    }

    private func loop(_ dir: String, stopAfter: Int? = nil) throws -> TrainingLoop<Int> {
        var args = TrainingArguments(outputDir: dir)
        args.loggingSteps = 2; args.evalSteps = 3; args.saveSteps = 4; args.gradientAccumulationSteps = 2
        return TrainingLoop(args: args, loader: DataLoader(items: Array(0..<5), batchSize: 2, shuffle: false, seed: 0), maxSteps: 7,
                       schedule: LRSchedule(kind: "constant", peak: 0.5, warmupSteps: 0, totalSteps: 7),
                       metrics: try MetricsLogger(outputDir: dir), label: "test", stopAfter: stopAfter)
    }

    private func loggedSteps(_ dir: String) throws -> [(step: Int, eval: Bool)] {
        let text = try String(contentsOfFile: (dir as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return ((obj["step"] as? NSNumber)?.intValue ?? -1, obj["eval_loss"] != nil)
        }
    }

    @Test func keepsTheCadenceOfTheArgumentFile() throws {
        let dir = SharedFixtures.tempDir("runloop").path
        var l = try loop(dir)
        var job = RecordingJob()
        let outcome = try l.run(&job, from: 0)
        #expect(outcome.finished && outcome.steps == 7)
        #expect(job.steps.count == 7 && job.steps.allSatisfy { $0.micro.count == 2 && $0.lr == 0.5 })
        #expect(job.steps[0].micro == [[0, 1], [2, 3]] && job.steps[1].micro == [[4], [0, 1]])
        #expect(job.after == Array(1...7))
        let logged = try loggedSteps(dir)
        #expect(logged.map(\.step) == [2, 3, 4, 6, 6, 7, 7] && logged.map(\.eval) == [false, true, false, false, true, false, true])
    }

    @Test func stopsAfterTheGivenStepsWithoutTheFinalEvaluation() throws {
        let dir = SharedFixtures.tempDir("runloop").path
        var l = try loop(dir, stopAfter: 2)
        var job = RecordingJob()
        let outcome = try l.run(&job, from: 3)
        #expect(!outcome.finished && outcome.steps == 5)
        #expect(job.after == [4, 5] && job.evaluations == 0)
        #expect(try loggedSteps(dir).map(\.step) == [4])
    }
}

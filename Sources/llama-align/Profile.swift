import Alignment
import ArgumentParser
import Foundation
import KernelRuntime

/// `llama-align profile ARGS.json --steps N`: where a training step's time goes, per fused kernel.
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Profile training steps of a pretraining/SFT argument file per fused kernel; writes a Chrome trace and an SVG chart.")

    @Argument(help: "A pretraining or SFT argument file.") var argsFile: String
    @Option(help: "Steps to profile (after one warm-up step).") var steps = 3
    @Option(help: "pretrain or sft (how the data is read).") var task = "sft"
    @Option(help: "Chrome trace output (chrome://tracing or Perfetto).") var trace = "profile_trace.json"
    @Option(help: "SVG bar chart output.") var svg = "profile_top_kernels.svg"

    func run() throws {
        guard let t = TrainingArguments.Task(rawValue: task), t != .dpo else { throw CLIError("--task must be pretrain or sft") }
        let args = try TrainingArguments.load(path: argsFile, task: t)
        applyThreads(args.numThreads)
        // Under mpirun each rank profiles its share of a global batch of `size` micro-batches.
        try World.start()
        let run = TrainingRun(args: args, task: t)
        let (tok, _) = try run.tokenizer()
        guard let trainPath = args.trainDatasetPath else { throw CLIError("\(argsFile): train_dataset_path is required") }
        let (examples, _) = try run.read(try JSONLines.resolve(trainPath).train, tok)
        let trainer = try LMTrainer(parameters: run.startingParameters(), bf16: args.bf16)
        var loader = DataLoader(items: examples, batchSize: args.perDeviceTrainBatchSize, shuffle: false, seed: 0)
        var tokens = 0, lastRows = 0
        func step() throws -> TokenBatch {
            let batches = (0..<World.size).map { _ in collate(loader.next(), padId: tok.eosId) }
            _ = try trainer.trainStep(batches, lr: 0)
            tokens += batches.reduce(0) { $0 + $1.batch * $1.seq }
            lastRows = batches[0].batch * batches[0].seq
            return World.share(batches)[0]
        }
        _ = try step()
        let programs = trainer.programs
        var calls = 0
        for p in programs { p.setProfiling(true, events: 200_000) }
        var flops = programs.map { [Double](repeating: 0, count: $0.kernelCount) }, bytes = flops
        tokens = 0
        let reduced0 = World.allReduceSeconds
        let t0 = Date()
        for _ in 0..<steps {
            let before = programs.map(\.kernelCalls)
            let b = try step()
            // Costs per call at this step's sizes, times the calls each kernel made in it.
            for (i, p) in programs.enumerated() {
                let sizes = p === trainer.optimizer.program ? trainer.optimizer.sizes : trainer.sizes(b)
                let c = p.costs(sizes: sizes), now = p.kernelCalls
                for k in 0..<p.kernelCount {
                    let n = now[k] - before[i][k]
                    flops[i][k] += c.flops[k] * n; bytes[i][k] += c.bytes[k] * n
                }
            }
        }
        let wall = Date().timeIntervalSince(t0) * 1e3
        var report = ProfileReport()
        for (i, p) in programs.enumerated() { report.add(p, flops: flops[i], bytes: bytes[i]); calls += p.events.count }
        if World.size > 1 {
            let ms: Double = (World.allReduceSeconds - reduced0) * 1e3
            let bytes = Double(4 * trainer.optimizer.trainableFloats * steps)
            report.rows.append(ProfileReport.Row(program: "open_mpi", kernel: "allreduce_gradients", calls: steps, ms: ms, flops: 0, bytes: bytes, scopes: []))
        }
        guard World.isMain else { return }
        print(report.table(top: Int.max))
        print(String(format: "%d steps in %.1f ms of wall time; kernels %.1f%% of it", steps, wall, 100 * report.totalMs / wall))
        if args.bf16 {
            // The bf16 products against a bf16 product alone of a step's FFN shape, measured now.
            let c = trainer.parameters.config
            print(report.bf16ProductsLine(ceiling: try sgemmGFLOPs(m: lastRows, n: c.hiddenDim, k: c.dim, program: "bench.sgemm_bf16")))
        }
        print(String(format: "%.0f tokens/s (%d rank%@ × %d thread%@)", Double(tokens) / (wall / 1e3), World.size, World.size == 1 ? "" : "s",
                     KernelThreads.current, KernelThreads.current == 1 ? "" : "s"))
        try report.chromeTrace().write(to: URL(fileURLWithPath: trace))
        try report.svg().write(toFile: svg, atomically: true, encoding: .utf8)
        print("wrote \(trace) (\(calls) kernel calls) and \(svg)")
        for p in programs { p.setProfiling(false) }
    }
}

import ArgumentParser
import Foundation
import GraphCompiler
import LlamaGraphs

/// `llama-align bench compile`: a cold compile of every program — graph building, fusion and
/// C emission in this process, then the C compiler on the emitted files with the flags the
/// `Kernels` target uses, as many at a time as the machine has cores (as SwiftPM does).
struct BenchCompile: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compile", abstract: "Seconds to emit every program's C and to compile it.")

    @Option(help: "The C compiler.") var cc = "clang"
    @Option(help: "Parallel compiler processes (default: the cores).") var jobs = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print one JSON object instead of the text report.") var json = false

    /// The flags of the `Kernels` target in Package.swift.
    static let flags = ["-O3", "-fopenmp", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fveclib=libmvec", "-Wno-pass-failed"]

    /// The checked-in runtime headers the emitted C includes (`la_runtime.h`), in the source tree
    /// this binary was built from.
    static let runtimeInclude = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Kernels/include").path

    struct Result: Encodable {
        var job = "compile", codegen_seconds: Double, c_compile_seconds: Double, total_seconds: Double, files: Int, jobs: Int
        var c_seconds_per_file: [String: Double]
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: BenchCompile.runtimeInclude + "/la_runtime.h") else {
            throw CLIError("bench compile needs the source tree this binary was built from: no \(BenchCompile.runtimeInclude)/la_runtime.h")
        }
        let t0 = Date()
        let sources = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        let codegen = Date().timeIntervalSince(t0)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llama-align-compile-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try CCompiler.write(sources, to: dir)
        let files = sources.files.keys.filter { $0.hasSuffix(".c") }.sorted {
            (sources.files[$0]?.utf8.count ?? 0) > (sources.files[$1]?.utf8.count ?? 0)
        }
        // Largest first, `jobs` at a time.
        var pending = files[...], running: [(String, Process, Date)] = [], perFile: [String: Double] = [:]
        let t1 = Date()
        while !pending.isEmpty || !running.isEmpty {
            while running.count < max(1, jobs), let f = pending.popFirst() {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = [cc] + BenchCompile.flags + ["-I", dir + "/include", "-I", BenchCompile.runtimeInclude, "-c", dir + "/" + f, "-o", dir + "/" + f + ".o"]
                try p.run()
                running.append((f, p, Date()))
            }
            if let i = running.firstIndex(where: { !$0.1.isRunning }) {
                let (f, p, start) = running.remove(at: i)
                guard p.terminationStatus == 0 else { throw CLIError("\(cc) failed on \(f) (exit \(p.terminationStatus))") }
                perFile[f] = Date().timeIntervalSince(start)
            } else {
                usleep(5_000)
            }
        }
        let compile = Date().timeIntervalSince(t1)
        let r = Result(codegen_seconds: codegen, c_compile_seconds: compile, total_seconds: codegen + compile, files: files.count,
                       jobs: jobs, c_seconds_per_file: perFile)
        if json { try printJSON(r); return }
        print(String(format: "codegen (build graphs, autodiff, fuse, emit): %.2f s", codegen))
        print(String(format: "C compile (%d files, %d at a time, %@): %.2f s", files.count, jobs, BenchCompile.flags.joined(separator: " ") as NSString, compile))
        for f in files { print(String(format: "  %-14@ %.2f s", f as NSString, perFile[f] ?? 0)) }
        print(String(format: "total: %.2f s", codegen + compile))
    }
}

import Foundation

/// Runs the built `llama-align` under Open MPI's `mpirun` (for the data-parallel tests).
enum MPIRun {
    /// `mpirun` on PATH, or nil (the tests report as skipped).
    static let mpirun: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }()

    /// Whether `mpirun`, Open MPI's library and the executable are all present.
    static var available: Bool {
        mpirun != nil && CLI.executable != nil && dlopen("libmpi.so.40", RTLD_LAZY) != nil
    }

    /// The command line: `np` ranks on this machine, root allowed (CI runs as root), more ranks
    /// than cores allowed, no core binding (each rank runs its own threads).
    static func arguments(np: Int, _ args: [String]) -> [String] {
        ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", String(np), CLI.executable?.path ?? "llama-align"] + args
    }

    /// Starts `mpirun -np np llama-align args` and returns the process (output to the pipes).
    static func start(np: Int, _ args: [String], stdout: Pipe, stderr: Pipe) throws -> Process {
        let p = Process()
        p.executableURL = mpirun
        p.arguments = arguments(np: np, args)
        p.standardOutput = stdout
        p.standardError = stderr
        try p.run()
        return p
    }

    /// Runs `mpirun -np np llama-align args` to the end.
    static func run(np: Int, _ args: [String]) throws -> CLI.Result {
        let out = Pipe(), err = Pipe()
        let p = try start(np: np, args, stdout: out, stderr: err)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLI.Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

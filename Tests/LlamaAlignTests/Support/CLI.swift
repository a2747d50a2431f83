import Foundation

/// Runs the built `llama-align` executable (beside the test bundle) and captures its output.
enum CLI {
    static var executable: URL? {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("llama-align")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        let fallback = SharedFixtures.projectRoot.appendingPathComponent(".build/debug/llama-align")
        return FileManager.default.isExecutableFile(atPath: fallback.path) ? fallback : nil
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs `llama-align args`; `environment` entries replace (a value) or remove (nil) variables.
    static func run(_ args: [String], environment: [String: String?] = [:]) throws -> Result? {
        guard let exe = executable else {
            print("note: skipping, the llama-align executable is not built")
            return nil
        }
        let p = Process()
        p.executableURL = exe
        p.arguments = args
        if !environment.isEmpty {
            var env = ProcessInfo.processInfo.environment
            for (k, v) in environment { env[k] = v }
            p.environment = env
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

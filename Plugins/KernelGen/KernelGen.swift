import Foundation
import PackagePlugin

/// Runs the `graphs` executable, which builds every program with the DSL and emits C
/// into the plugin's work directory; SwiftPM then compiles that C as the `Kernels` target.
@main
struct KernelGen: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL
        let tool = try context.tool(named: "graphs")
        // The outputs are the files of the committed snapshot (`generated/`, kept equal to the
        // emission by CompilerTests.generatedSnapshotIsCurrent), not a list written here.
        let files = try Self.emittedFiles(in: context.package.directoryURL.appending(path: "generated"))
        return [
            .buildCommand(
                displayName: "Emitting fused C kernels for \(target.name)",
                executable: tool.url,
                arguments: ["--out", out.path()],
                outputFiles: files.map { out.appending(path: $0) }
            )
        ]
    }

    /// `*.c` and `include/*.h` of a snapshot directory, relative to it, sorted.
    static func emittedFiles(in snapshot: URL) throws -> [String] {
        let fm = FileManager.default
        let sources = try fm.contentsOfDirectory(atPath: snapshot.path()).filter { $0.hasSuffix(".c") }
        let headers = try fm.contentsOfDirectory(atPath: snapshot.appending(path: "include").path()).filter { $0.hasSuffix(".h") }
        let files = (sources + headers.map { "include/" + $0 }).sorted()
        guard !files.isEmpty else { throw PluginError("no emitted C in \(snapshot.path()): run `swift run llama-align compile --out generated`") }
        return files
    }
}

struct PluginError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

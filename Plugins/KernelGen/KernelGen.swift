import PackagePlugin

/// Runs the `graphs` executable, which builds every program with the DSL and emits C
/// into the plugin's work directory; SwiftPM then compiles that C as the `Kernels` target.
@main
struct KernelGen: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL
        let tool = try context.tool(named: "graphs")
        // Must match CCompiler.outputFiles(families: GraphFamilies.names).
        let files = ["include/la_programs.h", "registry.c", "llama.c", "include/llama.h", "llama_train.c", "include/llama_train.h",
                     "llama_dpo.c", "include/llama_dpo.h",
                     "bench.c", "include/bench.h"]
        return [
            .buildCommand(
                displayName: "Emitting fused C kernels for \(target.name)",
                executable: tool.url,
                arguments: ["--out", out.path()],
                outputFiles: files.map { out.appending(path: $0) }
            )
        ]
    }
}

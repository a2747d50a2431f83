import PackagePlugin

/// Runs the `graphs` executable, which builds every program with the DSL and emits C
/// into the plugin's work directory; SwiftPM then compiles that C as the `Kernels` target.
@main
struct KernelGen: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL
        let tool = try context.tool(named: "graphs")
        let files = ["llama_kernels.c", "include/llama_kernels.h"]
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

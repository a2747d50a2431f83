import ArgumentParser
import GraphCompiler
import LlamaGraphs

/// `llama-align compile`: emit the C of every graph into a directory for inspection.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Emit the fused C kernels and manifest of every program in graphs/ into a directory.")

    @Option(help: "Directory to write into (created if missing).") var out = "generated"

    func run() throws {
        let sources = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        try CCompiler.write(sources, to: out)
        for name in sources.files.keys.sorted() + ["manifest.json"] { print("wrote \(out)/\(name)") }
    }
}

// The tool the KernelGen build plugin runs: builds every program in graphs/ with the DSL
// and emits their C. Also `graphs --out generated/` refreshes the committed snapshot.
import Foundation
import GraphCompiler
import LlamaGraphs

let args = CommandLine.arguments
guard args.count == 3, args[1] == "--out" else {
    FileHandle.standardError.write(Data("usage: graphs --out DIRECTORY\n".utf8))
    exit(2)
}
do {
    let sources = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
    try CCompiler.write(sources, to: args[2])
} catch {
    FileHandle.standardError.write(Data("graphs: \(error)\n".utf8))
    exit(1)
}

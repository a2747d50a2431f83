// swift-tools-version: 6.3;(experimentalCGen)
import PackageDescription

/// Where Debian's libomp-dev puts libomp.so (design §1).
let ompLibDir = "/usr/lib/llvm-14/lib"

let package = Package(
    name: "LlamaAlign",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "llama-align", targets: ["llama-align"]),
        .library(name: "Alignment", targets: ["Alignment"]),
        .library(name: "TensorGraph", targets: ["TensorGraph"]),
        .library(name: "GraphCompiler", targets: ["GraphCompiler"]),
        .library(name: "KernelRuntime", targets: ["KernelRuntime"]),
        .library(name: "ProgramABI", targets: ["ProgramABI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "TensorGraph"),
        // The compiler ↔ runtime contract: the manifest of every compiled program.
        .target(name: "ProgramABI"),
        .target(name: "GraphCompiler", dependencies: ["TensorGraph", "ProgramABI"]),
        // graphs/: the model definitions (library) and the tool the plugin runs to emit C.
        .target(name: "LlamaGraphs", dependencies: ["TensorGraph"], path: "graphs/Models"),
        .executableTarget(name: "graphs", dependencies: ["TensorGraph", "GraphCompiler", "LlamaGraphs"],
                          path: "graphs", exclude: ["Models"], sources: ["Emit"]),
        .plugin(name: "KernelGen", capability: .buildTool(), dependencies: ["graphs"]),
        .target(
            name: "Kernels",
            cSettings: [.unsafeFlags(["-O3", "-fopenmp", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fveclib=libmvec", "-Wno-pass-failed"])],
            linkerSettings: [
                // OpenBLAS is not linked: la_blas.c loads it after choosing its kernels for this CPU.
                .linkedLibrary("dl"),
                .unsafeFlags(["-L\(ompLibDir)", "-Xlinker", "-rpath", "-Xlinker", ompLibDir]),
                .linkedLibrary("omp"),
                .linkedLibrary("mvec"),   // glibc's vector math (expf/logf over SIMD lanes)
            ],
            plugins: ["KernelGen"]
        ),
        .target(name: "KernelRuntime", dependencies: ["Kernels", "ProgramABI"]),
        .target(name: "Alignment", dependencies: ["KernelRuntime", "TensorGraph", "LlamaGraphs"]),
        .executableTarget(
            name: "llama-align",
            dependencies: ["Alignment", "GraphCompiler", "LlamaGraphs", "KernelRuntime",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Fixtures/: data the tests read by path (the PyTorch golden and the script that wrote it).
        .testTarget(name: "LlamaAlignTests", dependencies: ["Alignment", "KernelRuntime", "ProgramABI", "TensorGraph", "GraphCompiler", "LlamaGraphs"],
                    exclude: ["Fixtures"]),
    ]
)

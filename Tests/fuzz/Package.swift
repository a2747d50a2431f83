// swift-tools-version: 5.4
import PackageDescription

// libFuzzer targets for the parsers a user's file reaches (issue 13). Not part of the main
// package: a normal `swift build` / `swift test` at the root never sees them. Build and run
// them with `bash Tests/fuzz/run.sh [SECONDS]`.
//
// How they are built (what works with SwiftPM 6.3 on Linux):
// - run.sh passes `-sanitize=address -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp`
//   (what `-sanitize=fuzzer` instruments) to every Swift target with -Xswiftc, the main package's
//   included. `-sanitize=fuzzer` itself cannot go there: -Xswiftc also reaches the build plugin's
//   `graphs` tool, and linking libFuzzer's `main` into it fails.
// - Only the fuzz executables link libFuzzer (`-sanitize=fuzzer` below), which supplies `main`.
// - Tools version 5.4 on purpose: from 5.5 on SwiftPM renames an executable's entry point and
//   points `main` at it (`--defsym main=<module>_main`), which collides with libFuzzer's `main`.

/// One executable per parser: `Targets/<name>/Fuzz.swift` defines `LLVMFuzzerTestOneInput`
/// (libFuzzer supplies `main`).
let fuzzTargets = [
    "jsonl_pretrain", "jsonl_sft", "jsonl_dpo", "arguments", "chat_template",
    "safetensors", "hf_config", "llama2c_bin", "sentencepiece_model", "llama2c_tokenizer", "tokenizer_json",
]

let package = Package(
    name: "LlamaAlignFuzz",
    dependencies: [.package(name: "LlamaAlign", path: "../..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "Alignment", package: "LlamaAlign")]),
    ] + fuzzTargets.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: "Alignment", package: "LlamaAlign")],
                          path: "Targets/\(name)",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])],
                          linkerSettings: [.unsafeFlags(["-sanitize=fuzzer"])])
    }
)

import Foundation
import Testing
@testable import GraphCompiler
import LlamaGraphs
import TensorGraph

/// What the compiler leaves out of an adapter program's step: the backward layer loop skips, in
/// its last iteration (layer 0), the kernels that only feed the gradient at the embedding's
/// output (nothing reads it: the embedding is frozen); the full program keeps them (its
/// embedding gradient reads it). The adapters' scaled down projections `s·(x·Aᵀ)` are kept by
/// the forward, so the backward runs no `x · Aᵀ` product. `EveryProgramTests` checks the
/// numbers of every program against the interpreter.
@Suite struct AdapterStepPlanTests {
    func emitter(lora: Bool) throws -> ProgramEmitter {
        try ProgramEmitter(family: "llama_train", program: Simplify.run(try LlamaTrainingPrograms.lmStep(lora: lora)),
                           sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
    }

    @Test func layerZerosInputGradientIsSkippedOnlyWhenNothingReadsIt() throws {
        let lora = try emitter(lora: true)
        let backward = try #require(lora.plan.program.stages.firstIndex { $0.name == "layer_backward" })
        let skipped = lora.plan.kernelsSkippedInLastIteration(stage: backward).map { lora.plan.kernels[$0].name }
        // The input gradients of the projections that read the layer's input (q, k, v).
        for w in ["wq", "wk", "wv"] { #expect(skipped.contains { $0.hasSuffix("_\(w)_grad_in") }, "\(w): \(skipped)") }
        // Never a kernel that adds into an adapter's gradient.
        #expect(!skipped.contains { $0.contains("grad_lora") }, "\(skipped)")
        let full = try emitter(lora: false)
        let fullBackward = try #require(full.plan.program.stages.firstIndex { $0.name == "layer_backward" })
        #expect(full.plan.kernelsSkippedInLastIteration(stage: fullBackward).isEmpty)
    }

    @Test func theBackwardReadsTheKeptAdapterProjections() throws {
        let lora = try emitter(lora: true)
        let backward = try #require(lora.plan.program.stages.firstIndex { $0.name == "layer_backward" })
        let names = lora.plan.kernels.filter { $0.stage == backward }.map(\.name)
        // No `x · Aᵀ` down projection is recomputed (only `grad_lora_a_*` and `*_grad_in` remain).
        let recomputed = names.filter { $0.contains("_lora_a_") && !$0.hasSuffix("_grad_in") && !$0.contains("grad_lora_a") }
        #expect(recomputed.isEmpty, "\(recomputed)")
        let kept = lora.plan.program.inputs.map(\.name).filter { $0.hasPrefix("saved_lora_") }
        #expect(Set(kept) == Set(LoRA.modules.map { "saved_lora_\($0)" }))
    }
}

import Foundation
import Testing
@testable import GraphCompiler
import LlamaGraphs
import TensorGraph

/// The memory planner's in-place rule: the vocabulary gradient of `lm_step` and `lm_step_lora`
/// is written over the chunk's logits it reads (one `[CR, V]` slot, not two); that kernel's pointers
/// lose `restrict`; a kernel whose reduction reads the value is never given its slot. The
/// numbers of every such program are checked by `EveryProgramTests` (fused ≡ interpreter).
@Suite struct InPlacePlanTests {
    @Test(arguments: [false, true])
    func logitsGradientOverwritesTheLogits(lora: Bool) throws {
        let emitter = try ProgramEmitter(family: "llama_train", program: Simplify.run(try LlamaTrainingPrograms.lmStep(lora: lora)),
                                         sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        let (plan, memory) = (emitter.plan, emitter.memory)
        let grad = try #require(plan.kernels.first { $0.name.hasSuffix("log_softmax_grad") })
        #expect(memory.inPlace.contains(grad.root))
        let logits = try #require(grad.reads.first { plan.node($0).shape == plan.node(grad.root).shape })
        guard case .arena(let g) = plan.storage[grad.root], case .arena(let l) = plan.storage[logits] else {
            Issue.record("the gradient or the logits are not in the arena"); return
        }
        #expect(memory.slotOf[g] == memory.slotOf[l])
        // The vocabulary loss runs a chunk of `CR` scored rows at a time.
        let vocab = Dim.sym("CR") * Dim.sym("V")
        #expect(memory.slotSizes.filter { $0.contains(vocab) }.count == 1, "more than one [CR, V] slot")
        let text = try emitter.kernelFunction(grad).text
        #expect(!text.contains("restrict"))
    }

    /// `y = exp(x − max(x)) · x` reads `x` in its row reduction too: not written in place.
    @Test func aKernelWhoseReductionReadsTheValueKeepsItsOwnSlot() throws {
        let b = GraphBuilder("t")
        let a = b.input("a", [.sym("M"), .sym("K")]), w = b.input("w", [.sym("N"), .sym("K")])
        let x = a.matmul(w, transB: true)
        b.output("y", (x - x.max(axis: -1)).exp() * x + x.sum(axis: -1))
        let emitter = try ProgramEmitter(family: "t", program: Simplify.run(try b.build()))
        let (plan, memory) = (emitter.plan, emitter.memory)
        var checked = 0
        for k in plan.kernels where k.kind == .pointwise && k.reads.contains(where: { plan.node($0).op.name == "matmul" }) {
            let reducesX = k.covered.contains { plan.node($0).op.isReduction && plan.node($0).inputs.contains { plan.node($0).op.name == "matmul" } }
            if reducesX {
                checked += 1
                #expect(!memory.inPlace.contains(k.root), "\(k.name) overwrites a value its reduction reads")
            }
        }
        #expect(checked > 0, "no kernel both reduces and reads x: the case is not exercised")
    }
}

import Foundation
import Testing
@testable import GraphCompiler
import LlamaGraphs
import TensorGraph

@Suite struct CompilerTests {
    struct ManifestRoot: Decodable {
        struct P: Decodable {
            struct K: Decodable { var name: String; var kind: String; var ops: [String]; var scopes: [String]; var stage: String }
            struct Arena: Decodable { var slots: Int; var planned_floats: String; var intermediates_floats: String }
            var name: String
            var kernels: [K]
            var arena: Arena
        }
        var programs: [P]
    }

    func manifest() throws -> ManifestRoot {
        let s = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        return try JSONDecoder().decode(ManifestRoot.self, from: Data(s.manifestJSON.utf8))
    }

    @Test func rmsNormAndSoftmaxAreSingleKernels() throws {
        for p in try manifest().programs where p.name.hasPrefix("llama.") {
            // Each RMSNorm (two per layer + the final one) is exactly one fused kernel that
            // contains its reduction, its rsqrt and both multiplies.
            let norms = p.kernels.filter { $0.scopes.contains { $0.hasSuffix("rmsnorm") } }
            #expect(norms.count == 3, "\(p.name): \(norms.map(\.name))")
            for k in norms {
                #expect(k.kind == "fused_loop")
                #expect(k.ops.contains("reduce_sum") && k.ops.contains("rsqrt") && k.ops.filter { $0 == "mul" }.count >= 3, "\(k.name): \(k.ops)")
                // The residual add feeding a norm is recomputed inside it, nothing else joins.
                #expect(k.scopes.allSatisfy { $0.hasSuffix("rmsnorm") || $0 == "lm_head" || $0 == "layer" || $0 == "layer/attention" },
                        "\(k.name) mixes \(k.scopes)")
            }
            // Attention (scores, mask, softmax, product with V) is one fused kernel; no softmax
            // over a stored score tensor is left.
            let attention = p.kernels.filter { $0.kind == "attention" }
            #expect(attention.count == 1 && attention[0].name.hasSuffix("causal_attention_forward"), "\(p.name): \(attention.map(\.name))")
            #expect(!p.kernels.contains { $0.scopes.contains { $0.hasSuffix("softmax") } })
            // SiLU and the up projection's product are one kernel.
            let silu = p.kernels.filter { $0.scopes.contains { $0.hasSuffix("silu") } }
            #expect(silu.count == 1 && silu[0].ops.contains("exp") && silu[0].ops.contains("mul"))
            // Every matmul goes to BLAS.
            #expect(p.kernels.filter { $0.ops == ["matmul"] }.allSatisfy { $0.kind == "sgemm" })
        }
    }

    /// No kernel of the training, DPO or decode steps only moves data: permutes of attention
    /// outputs are written by their matmul, per-layer saves hold the carry itself, detached
    /// outputs and in-place updates need no copy. The arena plan is reported.
    @Test func trainingStepsHaveNoCopyKernels() throws {
        let movement: Set<String> = ["reshape", "permute", "expand", "slice", "concat", "write_slice", "stop_gradient"]
        let programs = try manifest().programs
        for name in ["llama_train.lm_step", "llama_train.adamw_step", "llama_dpo.dpo_step", "llama.forward", "llama.decode"] {
            let p = try #require(programs.first { $0.name == name })
            let copies = p.kernels.filter { Set($0.ops).isSubset(of: movement) }
            #expect(copies.isEmpty, "\(name) copies data in \(copies.map { "\($0.name): \($0.ops)" })")
            if name != "llama_train.adamw_step" {
                #expect(p.arena.slots > 0 && !p.arena.planned_floats.isEmpty && !p.arena.intermediates_floats.isEmpty)
            }
        }
        // The fused attention kernel writes its output and row log-sum-exp straight into the
        // kept buffers.
        let lm = try #require(programs.first { $0.name == "llama_train.lm_step" })
        #expect(lm.kernels.contains { $0.kind == "attention" && $0.ops.filter { $0 == "write_slice" }.count == 2 })
    }

    /// The backward stage reads the kept activations (q, k, v, attention output and row
    /// log-sum-exp, residual, gate, up) instead of recomputing them: it has no forward
    /// product; the attention probabilities are recomputed inside its fused backward kernel.
    @Test func backwardRecomputesNoForwardProduct() throws {
        let lm = try #require(try manifest().programs.first { $0.name == "llama_train.lm_step" })
        let forwardProducts = lm.kernels.filter { $0.stage == "layer_backward" && $0.kind == "sgemm" && !$0.scopes.contains { $0.hasSuffix("grad") } }
        #expect(forwardProducts.isEmpty, "\(forwardProducts.map { "\($0.name) \($0.scopes)" })")
        let attention = lm.kernels.filter { $0.stage == "layer_backward" && $0.kind == "attention" }.map(\.name)
        #expect(attention.count == 1 && attention[0].hasSuffix("causal_attention_backward"), "\(attention)")
        // Kept activations are written by the kernels that compute them (no copies).
        #expect(lm.kernels.filter { $0.stage == "layer" && $0.ops.contains("write_slice") }.count == 7)
    }

    @Test func emissionIsDeterministic() throws {
        let a = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        let b = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        #expect(a.files == b.files)
        #expect(a.manifestJSON == b.manifestJSON)
    }

    @Test func generatedSnapshotIsCurrent() throws {
        let s = try CCompiler.emit(GraphFamilies.all(), sizeNames: GraphFamilies.sizeNames, smallSizes: GraphFamilies.smallSizes)
        let dir = SharedFixtures.projectRoot.appendingPathComponent("generated")
        var files = s.files
        files["manifest.json"] = s.manifestJSON
        for (name, text) in files {
            let committed = try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            #expect(committed == text, "generated/\(name) is stale: run `swift run llama-align compile --out generated`")
        }
        // The build plugin compiles exactly the snapshot's C files: no file may be left over.
        let fm = FileManager.default
        let present = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".c") }
            + fm.contentsOfDirectory(atPath: dir.appendingPathComponent("include").path).filter { $0.hasSuffix(".h") }.map { "include/" + $0 }
        #expect(Set(present) == Set(s.files.keys), "generated/ holds files the compiler no longer emits")
    }

    @Test func shapeErrorsNameTheOpAndCallSite() throws {
        let b = GraphBuilder("bad")
        let x = b.input("x", [2, 3])
        let y = b.input("y", [4, 5])
        b.output("z", b.matmul(x, y))
        #expect(throws: GraphError.self) { try b.build() }
        do { _ = try b.build() } catch let e as GraphError {
            #expect(e.description.contains("matmul"))
            #expect(e.description.contains("CompilerTests.swift:"))
            #expect(e.description.contains("[2, 3]") && e.description.contains("[4, 5]"))
        }
        let c = GraphBuilder("bad2")
        let p = c.input("p", [.sym("B"), 3])
        let q = c.input("q", [.sym("T"), 3])
        _ = c.scope("mix") { p + q }
        do { _ = try c.build(); Issue.record("expected a broadcast error") } catch let e as GraphError {
            #expect(e.description.contains("add") && e.description.contains("mix") && e.description.contains("[B, 3]"))
        }
    }

    @Test func writesNeedAMutableInputAndInterpreterRejectsBadIds() throws {
        let b = GraphBuilder("w")
        let frozen = b.input("frozen", [3])
        b.writeSlice(frozen, b.input("v", [3]), axis: 0, start: 0)
        #expect(throws: GraphError.self) { try b.build() }
        let g = GraphBuilder("g")
        let table = g.input("table", [2, 2])
        g.output("rows", g.gather(table, g.input("ids", [1], .i32)))
        let p = try g.build()
        for bad in [Double.nan, 2, -1, 0.5] {
            #expect(throws: GraphError.self) {
                try ReferenceInterpreter.run(p, sizes: [:], inputs: ["table": HostTensor(shape: [2, 2], data: [1, 2, 3, 4]),
                                                                   "ids": HostTensor(shape: [1], data: [bad])], params: [:])
            }
        }
    }

    @Test func stridedViewsFoldReshapesAndPermutes() {
        let base = StridedView.contiguous(base: 0, shape: [2, 6])
        let r = base.reshaped([2, 2, 3])
        #expect(r?.strides == [6, 3, 1])
        let p = r?.applying(.permute([0, 2, 1]), to: [2, 3, 2])
        #expect(p?.strides == [6, 1, 3])
        // Merging permuted axes is not a strided view.
        #expect(p?.reshaped([2, 6]) == nil)
    }
}

import Foundation
import Testing
import KernelRuntime
import LlamaGraphs

@Suite struct DPOLossTests {
    static let pc: [Double] = [-12.5, -30.25, -8.0], pr: [Double] = [-14.0, -29.5, -9.75]
    static let rc: [Double] = [-13.0, -31.0, -8.5], rr: [Double] = [-13.5, -29.0, -9.0]
    static let nc: [Double] = [5, 11, 4], nr: [Double] = [6, 10, 4], pw: [Double] = [1.0 / 3, 1.0 / 3, 1.0 / 3]

    /// Runs the compiled `dpo_loss` with one loss type selected.
    func compiled(_ type: DPOLossType, pc: [Double], pr: [Double], _ s: DPOReference.Settings)
        throws -> (losses: [Float], loss: Float, dc: [Float], dr: [Float]) {
        let p = try CompiledProgram.load("llama_dpo.dpo_loss")
        let k = DPOLossType.allCases.count, n = pc.count
        var w = [Float](repeating: 0, count: k); w[type.index] = 1
        func buf(_ x: [Double]) -> AlignedBuffer { AlignedBuffer(copying: x.map { Float($0) }) }
        let inputs: [String: AlignedBuffer] = [
            "logps_chosen": buf(pc), "logps_rejected": buf(pr), "ref_chosen": buf(DPOLossTests.rc), "ref_rejected": buf(DPOLossTests.rr),
            "len_chosen": buf(DPOLossTests.nc), "len_rejected": buf(DPOLossTests.nr), "pair_weight": buf(DPOLossTests.pw),
            "loss_weights": AlignedBuffer(copying: w), "beta": buf([s.beta]), "label_smoothing": buf([s.eps]),
            "simpo_gamma": buf([s.gamma]), "dpop_lambda": buf([s.lambda]),
            "losses": AlignedBuffer(floats: k * n), "loss": AlignedBuffer(floats: 1),
            "d_chosen": AlignedBuffer(floats: n), "d_rejected": AlignedBuffer(floats: n),
        ]
        try p.run(buffers: inputs.mapValues(\.raw), sizes: ["B": n])
        let all = inputs["losses"]!.floatArray(k * n)
        return (Array(all[(type.index * n)..<((type.index + 1) * n)]), inputs["loss"]!.floats[0],
                inputs["d_chosen"]!.floatArray(n), inputs["d_rejected"]!.floatArray(n))
    }

    @Test(arguments: DPOLossType.allCases)
    func lossMatchesHandComputationAndFiniteDifferences(type: DPOLossType) throws {
        let s = DPOReference.Settings(beta: 0.2, eps: type == .exoPair || type == .sigmoid || type == .robust ? 0.1 : 0, gamma: 0.5, lambda: 50)
        let T = DPOLossTests.self
        let want = DPOReference.losses(type, pc: T.pc, pr: T.pr, rc: T.rc, rr: T.rr, nc: T.nc, nr: T.nr, pw: T.pw, s)
        let got = try compiled(type, pc: T.pc, pr: T.pr, s)
        for (g, w) in zip(got.losses, want) { #expect(abs(Double(g) - w) <= 1e-5 * max(1, abs(w)), "\(type): \(g) vs \(w)") }
        let expected = zip(want, T.pw).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(abs(Double(got.loss) - expected) <= 1e-5 * max(1, abs(expected)))
        // Gradients: central differences of the Double reference.
        let meanA = zip(zip(T.pc, T.rc).map { $0 - $1 }, T.pw).reduce(0) { $0 + $1.0 * $1.1 }
        let meanR = zip(zip(T.pr, T.rr).map { $0 - $1 }, T.pw).reduce(0) { $0 + $1.0 * $1.1 }
        func total(_ pc: [Double], _ pr: [Double]) -> Double {
            zip(DPOReference.losses(type, pc: pc, pr: pr, rc: T.rc, rr: T.rr, nc: T.nc, nr: T.nr, pw: T.pw, s,
                                    frozen: (meanA, meanR)), T.pw).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let h = 1e-5
        for i in 0..<T.pc.count {
            var p1 = T.pc, p2 = T.pc; p1[i] += h; p2[i] -= h
            let fdc = (total(p1, T.pr) - total(p2, T.pr)) / (2 * h)
            var q1 = T.pr, q2 = T.pr; q1[i] += h; q2[i] -= h
            let fdr = (total(T.pc, q1) - total(T.pc, q2)) / (2 * h)
            #expect(abs(Double(got.dc[i]) - fdc) <= 1e-4 * max(1, abs(fdc)), "\(type) d/dπc[\(i)]: \(got.dc[i]) vs \(fdc)")
            #expect(abs(Double(got.dr[i]) - fdr) <= 1e-4 * max(1, abs(fdr)), "\(type) d/dπr[\(i)]: \(got.dr[i]) vs \(fdr)")
        }
    }

    @Test func sigmoidLossIsLn2WhenPolicyEqualsReference() throws {
        let T = DPOLossTests.self
        let got = try compiled(.sigmoid, pc: T.rc, pr: T.rr, DPOReference.Settings(beta: 0.1))
        #expect(abs(Double(got.loss) - log(2.0)) < 1e-6)
    }
}

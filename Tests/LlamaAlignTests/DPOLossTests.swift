import Foundation
import Testing
import KernelRuntime
import LlamaGraphs

/// An independent Double implementation of each loss, written from the papers/TRL formulas.
enum DPOReference {
    static func logSigmoid(_ x: Double) -> Double { min(x, 0) - log(1 + exp(-abs(x))) }
    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    struct Settings { var beta = 0.1, eps = 0.0, gamma = 0.5, lambda = 50.0 }

    /// Losses per pair for one type; `pw` are pair weights (for the batch means).
    /// `frozen`, when given, supplies the batch means of a and r (held fixed, as the graph detaches them).
    static func losses(_ type: DPOLossType, pc: [Double], pr: [Double], rc: [Double], rr: [Double],
                       nc: [Double], nr: [Double], pw: [Double], _ s: Settings, frozen: (a: Double, r: Double)? = nil) -> [Double] {
        let n = pc.count
        func mean(_ x: [Double]) -> Double { zip(x, pw).reduce(0) { $0 + $1.0 * $1.1 } / pw.reduce(0, +) }
        let meanA = frozen?.a ?? mean((0..<n).map { pc[$0] - rc[$0] }), meanR = frozen?.r ?? mean((0..<n).map { pr[$0] - rr[$0] })
        let a = (0..<n).map { pc[$0] - rc[$0] }, r = (0..<n).map { pr[$0] - rr[$0] }
        return (0..<n).map { i in
            let h = a[i] - r[i], b = s.beta, e = s.eps
            let hn = (pc[i] - rc[i]) / nc[i] - (pr[i] - rr[i]) / nr[i]
            func smooth(_ z: Double) -> Double { -(1 - e) * logSigmoid(b * z) - e * logSigmoid(-b * z) }
            switch type {
            case .sigmoid: return smooth(h)
            case .robust: return (-(1 - e) * logSigmoid(b * h) + e * logSigmoid(-b * h)) / (1 - 2 * e)
            case .hinge: return max(0, 1 - b * h)
            case .ipo: return pow(hn - 1 / (2 * b), 2)
            case .sppoHard: return pow(a[i] - 0.5 / b, 2) + pow(r[i] + 0.5 / b, 2)
            case .ncaPair: return -logSigmoid(b * a[i]) - 0.5 * logSigmoid(-b * a[i]) - 0.5 * logSigmoid(-b * r[i])
            case .ktoPair:
                let klc = max(meanA, 0), klr = max(meanR, 0)
                return ((1 - sigmoid(b * (a[i] - klr))) + (1 - sigmoid(b * (klc - r[i])))) / 2
            case .dpop: return -logSigmoid(b * (h - s.lambda * max(0, rc[i] - pc[i])))
            case .simpo: return smooth(pc[i] / nc[i] - pr[i] / nr[i] - s.gamma / b)
            case .orpo:
                let mc = pc[i] / nc[i], mr = pr[i] / nr[i]
                let odds = (mc - mr) - (log(1 - exp(mc)) - log(1 - exp(mr)))
                return -mc - b * logSigmoid(odds)
            case .bcoPair:
                let delta = (b * meanA + b * meanR) / 2
                return -logSigmoid(b * a[i] - delta) - logSigmoid(-(b * r[i] - delta))
            case .apoZero: return (1 - sigmoid(b * a[i])) + sigmoid(b * r[i])
            case .apoDown: return sigmoid(b * a[i]) + (1 - sigmoid(b * (a[i] - r[i])))
            case .exoPair:
                let ee = e > 0 ? e : 1e-3, z = b * h
                return sigmoid(z) * (logSigmoid(z) - log(1 - ee)) + sigmoid(-z) * (logSigmoid(-z) - log(ee))
            case .discopop:
                let z = b * h, m = sigmoid(z / 0.05)
                return -logSigmoid(z) * (1 - m) + exp(-z) * m
            case .sigmoidNorm: return smooth(hn)
            case .sft: return -pc[i] / nc[i]
            }
        }
    }
}

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

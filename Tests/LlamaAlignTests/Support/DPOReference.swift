import Foundation
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

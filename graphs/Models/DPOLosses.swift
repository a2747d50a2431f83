import TensorGraph

/// The preference-loss family (PaddleNLP's `dpo_criterion.py`, TRL's `DPOTrainer`), written
/// in the DSL so autodiff differentiates it. Notation, per pair: πc, πr policy log-probs
/// (summed over the response tokens), ρc, ρr reference log-probs, nc, nr response lengths,
/// a = πc − ρc, r = πr − ρr, h = a − r, β the temperature, ε the label smoothing.
public enum DPOLossType: String, CaseIterable, Sendable, Codable {
    /// −(1−ε)·logσ(βh) − ε·logσ(−βh)  (DPO; cDPO with ε > 0)
    case sigmoid
    /// (−(1−ε)·logσ(βh) + ε·logσ(−βh)) / (1 − 2ε)  (robust DPO)
    case robust
    /// relu(1 − βh)  (SLiC hinge)
    case hinge
    /// (h̄ − 1/(2β))², h̄ with log-probs divided by their lengths  (IPO)
    case ipo
    /// (a − 1/(2β))² + (r + 1/(2β))²  (SPPO, hard labels)
    case sppoHard = "sppo_hard"
    /// −logσ(βa) − ½·logσ(−βa) − ½·logσ(−βr)  (NCA)
    case ncaPair = "nca_pair"
    /// ½[(1 − σ(β(a − KLr))) + (1 − σ(β(KLc − r)))], KL = max(batch mean of a or r, 0), detached  (KTO, paired)
    case ktoPair = "kto_pair"
    /// −logσ(β(h − λ·relu(ρc − πc)))  (DPO-Positive, λ = dpop_lambda)
    case dpop
    /// −(1−ε)·logσ(βz) − ε·logσ(−βz), z = πc/nc − πr/nr − γ/β  (SimPO, reference-free, γ = simpo_gamma)
    case simpo
    /// −πc/nc − β·logσ(log-odds), log-odds = (p̄c − p̄r) − (log(1 − e^p̄c) − log(1 − e^p̄r)), p̄ = π/n  (ORPO, reference-free)
    case orpo
    /// −logσ(βa − δ) − logσ(−(βr − δ)), δ = batch mean of βa and βr, detached  (BCO, paired)
    case bcoPair = "bco_pair"
    /// (1 − σ(βa)) + σ(βr)  (APO-zero)
    case apoZero = "apo_zero"
    /// σ(βa) + (1 − σ(β(a − r)))  (APO-down)
    case apoDown = "apo_down"
    /// σ(βh)(logσ(βh) − log(1−ε)) + σ(−βh)(logσ(−βh) − log ε), ε defaults to 1e-3  (EXO, paired)
    case exoPair = "exo_pair"
    /// −logσ(βh)·(1 − m) + e^(−βh)·m, m = σ(βh / 0.05)  (DiscoPOP)
    case discopop
    /// −(1−ε)·logσ(βh̄) − ε·logσ(−βh̄), h̄ length-normalised  (PaddleNLP's sigmoid_norm)
    case sigmoidNorm = "sigmoid_norm"
    /// −πc/nc  (NLL per token of the chosen response)
    case sft

    /// `"or"` is accepted as ORPO's short name.
    public init?(name: String) {
        if name == "or" { self = .orpo; return }
        self.init(rawValue: name)
    }

    /// True when the loss ignores the reference model.
    public var referenceFree: Bool { self == .simpo || self == .orpo || self == .sft }

    /// Index in `loss_weights`.
    public var index: Int { DPOLossType.allCases.firstIndex(of: self) ?? 0 }
}

/// Scalars the loss family reads.
/// The scalar inputs of the DPO programs (one float each), by input name.
public enum DPOScalar: String, CaseIterable, Sendable {
    case beta, labelSmoothing = "label_smoothing", simpoGamma = "simpo_gamma", dpopLambda = "dpop_lambda"
    /// `dpo_step` only: the weights of the preference and SFT terms.
    case prefLossRatio = "pref_loss_ratio", sftLossRatio = "sft_loss_ratio"
}

public struct DPOLossInputs {
    public var beta, labelSmoothing, simpoGamma, dpopLambda: Tensor
    /// Per-pair weights whose sum over a whole step is 1 (so micro-batches accumulate).
    public var pairWeight: Tensor
}

extension GraphBuilder {
    /// `log σ(x) = min(x, 0) − log(1 + e^{−|x|})`, stable for large |x|.
    public func logSigmoid(_ x: Tensor) -> Tensor {
        scope("log_sigmoid") { x.minimum(0) - (1.0 + (-x.abs()).exp()).log() }
    }

    /// `σ(x) = exp(log σ(x))`: no overflow for large |x|, in value or gradient.
    public func sigmoid(_ x: Tensor) -> Tensor {
        scope("sigmoid") { logSigmoid(x).exp() }
    }

    /// `max(x, 0)`.
    public func relu(_ x: Tensor) -> Tensor { x.maximum(0) }

    /// Every loss of the family, per pair (`[B]` each), in `DPOLossType.allCases` order.
    /// A loss whose weight in `weights` (`[K]`) is 0 is computed on harmless stand-ins
    /// (log-probs −1, references 0, lengths 1) and then replaced by 0, so its formula can
    /// neither overflow nor send NaN into the gradient of the losses in use.
    public func dpoLosses(pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor, nc: Tensor, nr: Tensor, _ s: DPOLossInputs,
                          weights: Tensor) -> [Tensor] {
        DPOLossType.allCases.map { type in
            scope("dpo_\(type.rawValue)") {
                let off = weights.slice(axis: 0, start: Dim(type.index), length: 1).reshape([]).eq(constant(0))
                let zero = constant(0), one = constant(1), minusOne = constant(-1)
                let loss = dpoLoss(type, pc: select(off, minusOne, pc), pr: select(off, minusOne, pr), rc: select(off, zero, rc),
                                   rr: select(off, zero, rr), nc: select(off, one, nc), nr: select(off, one, nr), s)
                return select(off, zero, loss)
            }
        }
    }

    /// One loss of the family, per pair.
    public func dpoLoss(_ type: DPOLossType, pc: Tensor, pr: Tensor, rc: Tensor, rr: Tensor, nc: Tensor, nr: Tensor, _ s: DPOLossInputs) -> Tensor {
        let beta = s.beta, eps = s.labelSmoothing
        let a = pc - rc, r = pr - rr, h = a - r
        let hNorm = (pc / nc - rc / nc) - (pr / nr - rr / nr)
        func smoothed(_ z: Tensor) -> Tensor { -(1.0 - eps) * logSigmoid(beta * z) - eps * logSigmoid(-(beta * z)) }
        /// Σ pairWeight · x, the batch mean that some losses subtract (no gradient through it).
        func batchMean(_ x: Tensor) -> Tensor {
            stopGradient(weightedSum(x, s.pairWeight) / weightedSum(broadcast(constant(1), to: x.shape), s.pairWeight))
        }
        do {
            do {
                switch type {
                case .sigmoid: return smoothed(h)
                case .robust: return (-(1.0 - eps) * logSigmoid(beta * h) + eps * logSigmoid(-(beta * h))) / (1.0 - 2.0 * eps)
                case .hinge: return relu(1.0 - beta * h)
                case .ipo: return (hNorm - 1.0 / (beta * 2.0)).squared()
                case .sppoHard: return (a - 0.5 / beta).squared() + (r + 0.5 / beta).squared()
                case .ncaPair: return -logSigmoid(beta * a) - 0.5 * logSigmoid(-(beta * a)) - 0.5 * logSigmoid(-(beta * r))
                case .ktoPair:
                    let klc = relu(batchMean(a)), klr = relu(batchMean(r))
                    return ((1.0 - sigmoid(beta * (a - klr))) + (1.0 - sigmoid(beta * (klc - r)))) * 0.5
                case .dpop: return -logSigmoid(beta * (h - s.dpopLambda * relu(rc - pc)))
                case .simpo: return smoothed(pc / nc - pr / nr - s.simpoGamma / beta)
                case .orpo:
                    let mc = pc / nc, mr = pr / nr
                    let logOdds = (mc - mr) - ((1.0 - mc.exp()).log() - (1.0 - mr.exp()).log())
                    return -mc - beta * logSigmoid(logOdds)
                case .bcoPair:
                    let cr = beta * a, rj = beta * r
                    let delta = (batchMean(cr) + batchMean(rj)) * 0.5
                    return -logSigmoid(cr - delta) - logSigmoid(-(rj - delta))
                case .apoZero: return (1.0 - sigmoid(beta * a)) + sigmoid(beta * r)
                case .apoDown: return sigmoid(beta * a) + (1.0 - sigmoid(beta * (a - r)))
                case .exoPair:
                    let e = select(eps.le(constant(0)), constant(1e-3), eps)
                    let z = beta * h
                    return sigmoid(z) * (logSigmoid(z) - (1.0 - e).log()) + sigmoid(-z) * (logSigmoid(-z) - e.log())
                case .discopop:
                    let z = beta * h
                    let m = sigmoid(z / 0.05)
                    return -logSigmoid(z) * (1.0 - m) + (-z).exp() * m
                case .sigmoidNorm: return smoothed(hNorm)
                case .sft: return -(pc / nc)
                }
            }
        }
    }
}

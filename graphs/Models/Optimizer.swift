import TensorGraph

/// The optimizer programs: one step over every trainable parameter at once. The runtime keeps
/// the trainable parameters, their gradients and both moments in flat buffers laid out the same
/// way (`[N]`; the per-tensor views the model programs use point into them), so a step is one call.
public enum OptimizerPrograms {
    /// The flat buffers of `adamw_step`, by the names its arguments carry.
    public enum Buffer: String, CaseIterable, Sendable {
        case param, grad
        case expAvg = "exp_avg", expAvgSq = "exp_avg_sq"
        /// Output: the gradient norm before clipping (one float).
        case gradNorm = "grad_norm"
        /// `adamw_step_groups` only: each float's learning-rate factor (its parameter group's).
        case lrFactor = "lr_factor"
    }

    /// The scalar arguments of `adamw_step` (one float each), in this order.
    public enum Scalar: String, CaseIterable, Sendable {
        case learningRate = "lr", beta1, beta2, eps
        case weightDecay = "weight_decay", biasCorrection1 = "bias_correction1", biasCorrection2 = "bias_correction2"
        case maxGradNorm = "max_grad_norm"
    }

    /// The size symbol of the flat buffers (the trainable floats).
    public static let length = Dim.sym("N")

    /// `adamw_step`: global-norm gradient clipping and one AdamW step (PyTorch's formula,
    /// decoupled weight decay) over the flat trainable parameters, in one call:
    ///
    ///     ‖g‖ = sqrt(Σ g²)                                   (output `grad_norm`, before clipping)
    ///     c = max_grad_norm / (‖g‖ + 1e-6) if ‖g‖ > max_grad_norm, else 1   (+∞ turns clipping off)
    ///     m ← β₁m + (1−β₁)·c·g;  v ← β₂v + (1−β₂)·(c·g)²
    ///     p ← p − lr·wd·p − lr·(m / bc₁) / (sqrt(v / bc₂) + ε),  bcᵢ = 1 − βᵢᵗ
    ///
    /// The norm is a reduction kernel; the moment and parameter updates read it. The gradient
    /// is only read (callers may inspect it after the step).
    ///
    /// `adamw_step_groups` (`groups`): PyTorch's parameter groups with their own learning rates
    /// (LoRA+: the `B` matrices at `lr · lora_plus_scale`): the input `lr_factor` `[N]` holds each
    /// float's factor, and every `lr` above is `lr · lr_factor` (weight decay included, as in a
    /// group whose `lr` is set so).
    public static func adamwStep(groups: Bool = false) throws -> Program {
        let b = GraphBuilder(groups ? "adamw_step_groups" : "adamw_step")
        let n: Shape = [length]
        let p = b.input(Buffer.param.rawValue, n, mutable: true)
        let g = b.input(Buffer.grad.rawValue, n)
        let m = b.input(Buffer.expAvg.rawValue, n, mutable: true)
        let v = b.input(Buffer.expAvgSq.rawValue, n, mutable: true)
        let factor = groups ? b.input(Buffer.lrFactor.rawValue, n) : nil
        let s = Scalar.allCases.map { b.input($0.rawValue, []) }
        let (b1, b2, eps, wd, bc1, bc2, maxNorm) = (s[1], s[2], s[3], s[4], s[5], s[6], s[7])
        let lr = factor.map { s[0] * $0 } ?? s[0]
        let norm = b.scope("grad_norm") { (g * g).sum(axis: 0, keepDims: false).sqrt() }
        b.output(Buffer.gradNorm.rawValue, norm)
        b.scope("adamw") {
            let clip = b.select(maxNorm.lt(norm), maxNorm / (norm + 1e-6), b.constant(1))
            let gc = g * clip
            let m1 = b1 * m + (1.0 - b1) * gc
            let v1 = b2 * v + (1.0 - b2) * gc * gc
            let update = (m1 / bc1) / ((v1 / bc2).sqrt() + eps)
            let p1 = p - lr * wd * p - lr * update
            b.writeSlice(m, m1, axis: 0, start: 0)
            b.writeSlice(v, v1, axis: 0, start: 0)
            b.writeSlice(p, p1, axis: 0, start: 0)
        }
        return try b.build()
    }

    /// Every optimizer program, in emission order.
    public static func all() throws -> [Program] {
        [try adamwStep(), try adamwStep(groups: true)]
    }
}

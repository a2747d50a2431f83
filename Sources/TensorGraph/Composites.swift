// Composite ops written from primitives, each in a named scope so the fused kernels and the
// profiler can say what they came from.

extension GraphBuilder {
    /// RMSNorm over the last axis: `y = x · w / sqrt(mean(x²) + eps)`.
    public func rmsNorm(_ x: Tensor, _ w: Tensor, eps: Tensor) -> Tensor {
        scope("rmsnorm") {
            let ms = (x * x).mean()
            return x * (ms + eps).rsqrt() * w
        }
    }

    /// SiLU: `x · σ(x) = x / (1 + e^{-x})`.
    public func silu(_ x: Tensor) -> Tensor {
        scope("silu") { x / (1.0 + (-x).exp()) }
    }

    /// Softmax over the last axis, shifted by the row maximum.
    public func softmax(_ x: Tensor) -> Tensor {
        scope("softmax") {
            // The shift by the row maximum only keeps exp in range: the result does not depend
            // on it, so its gradient is zero (stopGradient spares the backward a one-hot pass).
            let e = (x - stopGradient(x.max())).exp()
            return e / e.sum()
        }
    }

    /// Log-softmax over the last axis: `x − max − log Σ exp(x − max)`.
    public func logSoftmax(_ x: Tensor) -> Tensor {
        scope("log_softmax") {
            let shifted = x - stopGradient(x.max())
            return shifted - shifted.exp().sum().log()
        }
    }

    /// Rotary position embedding with interleaved pairs `(2i, 2i+1)` (llama2.c convention).
    ///
    /// `x` is `[B, T, heads, 2·half]`; `cos`/`sin` are `[T, half]` tables from `ropeTables`.
    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor) -> Tensor {
        scope("rope") {
            let s = x.shape
            let half = cos.shape[cos.rank - 1]
            let pairs = x.reshape([s[0], s[1], s[2], half, 2])
            let rows: Shape = [s[0], s[1], s[2], half]
            let x0 = pairs.slice(axis: 4, start: 0, length: 1).reshape(rows)
            let x1 = pairs.slice(axis: 4, start: 1, length: 1).reshape(rows)
            // Tables are [T, half] (shared by every row) or [B, T, half] (per-row positions).
            let lead: Dim = cos.rank == 3 ? s[0] : 1
            let c = cos.reshape([lead, s[1], 1, half]), sn = sin.reshape([lead, s[1], 1, half])
            let y0 = x0 * c - x1 * sn
            let y1 = x0 * sn + x1 * c
            let out = concat([y0.reshape(rows + [1]), y1.reshape(rows + [1])], axis: 4)
            return out.reshape(s)
        }
    }

    /// RoPE angle tables for positions `start ..< start+T`: `θ_i = pos / theta^(2i/headDim)`.
    /// Returns `(cos, sin)`, each `[T, half]`.
    public func ropeTables(seq: Dim, half: Dim, start: Dim, theta: Tensor) -> (Tensor, Tensor) {
        scope("rope_tables") {
            let pos = iota([seq, half], axis: 0) + size(start)
            let i2 = iota([seq, half], axis: 1) * 2.0
            let freq = theta.pow(i2 / size(half * 2)).reciprocal()
            let angle = pos * freq
            return (angle.cos(), angle.sin())
        }
    }

    /// RoPE tables for explicit int32 positions `[B, T]`, each moved on by `offset` (the `P`
    /// prefix positions ahead of every row); returns `(cos, sin)`, each `[B, T, half]`.
    public func ropeTables(positions: Tensor, half: Dim, theta: Tensor, offset: Dim = 0) -> (Tensor, Tensor) {
        scope("rope_tables") {
            let (b, t) = (positions.shape[0], positions.shape[1])
            var pos = positions.cast(.f32).reshape([b, t, 1])
            if offset != 0 { pos = pos + size(offset) }
            let i2 = iota([1, 1, half], axis: 2) * 2.0
            let angle = pos * theta.pow(i2 / size(half * 2)).reciprocal()
            return (angle.cos(), angle.sin())
        }
    }
}

extension GraphBuilder {
    /// Per-position negative log-likelihood of `targets` under `logits` (`[..., V]` → `[...]`):
    /// `−log softmax(logits)[target]`, with the one-hot written as `iota == target`.
    public func tokenNLL(_ logits: Tensor, targets: Tensor) -> Tensor {
        scope("cross_entropy") {
            let s = logits.shape
            let logp = logSoftmax(logits)
            let picked = iota(s, axis: s.count - 1).eq(targets.cast(.f32).reshape(targets.shape + [1]))
            return -(logp * picked).sum(axis: -1, keepDims: false)
        }
    }

    /// `Σ weights · nll` over all positions: the loss with per-token weights (mask / token count).
    public func weightedSum(_ x: Tensor, _ weights: Tensor) -> Tensor {
        scope("weighted_sum") {
            let flat = (x * weights).reshape([x.shape.elementCount])
            return flat.sum(axis: 0, keepDims: false)
        }
    }

    /// Adds `value` into the mutable input `buffer` in place (gradient accumulation).
    @discardableResult
    public func accumulate(into buffer: Tensor, _ value: Tensor) -> Tensor {
        writeSlice(buffer, buffer + value, axis: 0, start: 0)
    }
}

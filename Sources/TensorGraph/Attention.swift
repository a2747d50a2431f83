// Fused causal attention: the `attention` primitive's parts and the causal-attention
// composites built on them (the fused one the models use, and the unfused one from matmuls,
// mask and softmax that tests compare it with).

extension GraphBuilder {
    /// The log-sum-exp of each query row's visible scores, `[B, H, T]`:
    /// `lse[b, h, t] = log Σ_{s ≤ start+t, allowed} exp(q[b,t,h]·k[b,s,h/REP] / √HD)`.
    ///
    /// `q` is `[B, T, H, HD]`, `k` and `v` `[B, S, KVH, HD]` with `H = KVH·REP`; `allowed`, when
    /// given, a further 1/0 mask `[B, T, S]`. The compiler computes it in the kernel of the
    /// `attentionOutput` that reads it (one pass); it takes no gradient of its own
    /// (`attentionOutput`'s rule differentiates through the normalization).
    public func attentionLogSumExp(q: Tensor, k: Tensor, v: Tensor, start: Dim, allowed: Tensor? = nil,
                                   file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard let (b, t, h, _) = checkAttention(q, k, v, allowed, file, line) else { return q }
        return append(.attention(.lse, start: start, masked: allowed != nil), operands(q, k, v, allowed), [b, h, t], .f32, file, line)
    }

    /// Causal attention's output `[B, T, H, HD]`: `Σ_s exp(q·k_s / √HD − lse) · v_s` over the
    /// keys query `t` sees (`s ≤ start + t`, and `allowed`), with `lse` from `attentionLogSumExp`
    /// of the same operands (or a saved copy of it). One kernel per call: scores, mask, softmax
    /// and the product with `v`, a row of scores at a time; the `T×S` scores are never stored.
    public func attentionOutput(q: Tensor, k: Tensor, v: Tensor, logSumExp lse: Tensor, start: Dim, allowed: Tensor? = nil,
                                file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        guard let (b, t, h, _) = checkAttention(q, k, v, allowed, file, line) else { return q }
        guard lse.shape == [b, h, t] else {
            fail("lse \(lse.shape.shapeDescription) is not [B, H, T] = \([b, h, t].shapeDescription)", file, line, op: "attention_out")
            return q
        }
        return append(.attention(.out, start: start, masked: allowed != nil), operands(q, k, v, allowed) + [lse.id],
                      q.shape, .f32, file, line)
    }

    /// The three gradient parts of an `attentionOutput` node `out` given `dOut`: `(dq, dk, dv)`,
    /// each recomputing the probabilities from `q`, `k` and the saved `lse` (FlashAttention's
    /// backward, with `D_t = Σ dOut∘out` per row); `dk` and `dv` sum the `REP` query heads that
    /// share a key/value head.
    func attentionGradients(of out: Node, _ dOut: Tensor, file: StaticString = #fileID, line: UInt = #line) -> (Tensor, Tensor, Tensor) {
        guard case .attention(_, let start, let masked) = out.op else { return (dOut, dOut, dOut) }
        let base = Array(out.inputs.prefix(masked ? 4 : 3))
        let lse = out.inputs[base.count]
        let ins = base + [out.id, lse, dOut.id]
        let q = nodes[out.inputs[0]], k = nodes[out.inputs[1]]
        let dq = append(.attention(.gradQ, start: start, masked: masked), ins, q.shape, .f32, file, line)
        let dk = append(.attention(.gradK, start: start, masked: masked), ins, k.shape, .f32, file, line)
        let dv = append(.attention(.gradV, start: start, masked: masked), ins, k.shape, .f32, file, line)
        return (dq, dk, dv)
    }

    private func operands(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ allowed: Tensor?) -> [Int] {
        [q.id, k.id, v.id] + (allowed.map { [$0.id] } ?? [])
    }

    /// `(B, T, H, HD)` when the operands fit, else nil (the error recorded).
    private func checkAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ allowed: Tensor?,
                                _ file: StaticString, _ line: UInt) -> (Dim, Dim, Dim, Dim)? {
        let (qs, ks) = (q.shape, k.shape)
        guard qs.count == 4, ks.count == 4, v.shape == ks, qs[0] == ks[0], qs[3] == ks[3],
              q.dtype == .f32, k.dtype == .f32, v.dtype == .f32, qs[2].divided(by: ks[2]) != nil else {
            fail("needs q [B, T, KVH·REP, HD] and k, v [B, S, KVH, HD] (f32), got \(qs.shapeDescription), \(ks.shapeDescription), "
                 + "\(v.shape.shapeDescription)", file, line, op: "attention")
            return nil
        }
        if let allowed, allowed.shape != [qs[0], qs[1], ks[1]] || allowed.dtype != .f32 {
            fail("mask \(allowed.shape.shapeDescription) is not [B, T, S] = \([qs[0], qs[1], ks[1]].shapeDescription) f32", file, line, op: "attention")
            return nil
        }
        return (qs[0], qs[1], qs[2], qs[3])
    }

    /// Causal attention with grouped KV heads, fused (see `attentionOutput`).
    ///
    /// `q` is `[B, T, KVH·REP, HD]` at positions `start ..< start+T`; `k`, `v` are
    /// `[B, S, KVH, HD]` at positions `0 ..< S`. Query `t` sees keys `s ≤ start + t`.
    /// Returns `[B, T, KVH·REP·HD]`.
    /// `allowed`, when given, is a further 1/0 mask broadcastable to `[B, 1, 1, T, S]`.
    public func causalAttention(q: Tensor, k: Tensor, v: Tensor, kvHeads: Dim, rep: Dim, start: Dim, allowed extra: Tensor? = nil) -> Tensor {
        scope("attention") {
            let (b, t, hd) = (q.shape[0], q.shape[1], q.shape[3])
            if q.shape[2] != kvHeads * rep || k.shape.count != 4 || k.shape[2] != kvHeads {
                fail("q \(q.shape.shapeDescription) and k \(k.shape.shapeDescription) do not have \(kvHeads)·\(rep) and \(kvHeads) heads", #fileID, #line, op: "attention")
            }
            let mask = extra.map { attentionMask($0, batch: b, seq: t, keys: k.shape[1]) }
            let lse = attentionLogSumExp(q: q, k: k, v: v, start: start, allowed: mask)
            let out = attentionOutput(q: q, k: k, v: v, logSumExp: lse, start: start, allowed: mask)
            return out.reshape([b, t, kvHeads * rep * hd])
        }
    }

    /// A 1/0 mask broadcastable to `[B, 1, 1, T, S]` as the `[B, T, S]` the fused kernels read
    /// (a view when it is one).
    public func attentionMask(_ extra: Tensor, batch: Dim, seq: Dim, keys: Dim) -> Tensor {
        broadcast(extra, to: [batch, 1, 1, seq, keys]).reshape([batch, seq, keys])
    }

    /// Causal attention written out from primitives: scores product, causal (and `allowed`)
    /// mask, softmax, product with `v`; the `[B, KVH, REP, T, S]` probabilities are a tensor.
    /// Same contract as `causalAttention`; tests check the fused kernels against it.
    public func causalAttentionUnfused(q: Tensor, k: Tensor, v: Tensor, kvHeads: Dim, rep: Dim, start: Dim, allowed extra: Tensor? = nil) -> Tensor {
        scope("attention") {
            let (b, t, hd) = (q.shape[0], q.shape[1], q.shape[3])
            let s = k.shape[1]
            let q5 = q.permute([0, 2, 1, 3]).reshape([b, kvHeads, rep, t, hd])
            let k5 = k.permute([0, 2, 1, 3]).reshape([b, kvHeads, 1, s, hd]).expand([b, kvHeads, rep, s, hd])
            let v5 = v.permute([0, 2, 1, 3]).reshape([b, kvHeads, 1, s, hd]).expand([b, kvHeads, rep, s, hd])
            let scores = scope("scores") { q5.matmul(k5, transB: true) * size(hd).rsqrt() }
            let shape5: Shape = [b, kvHeads, rep, t, s]
            var allowed = iota(shape5, axis: 4).le(iota(shape5, axis: 3) + size(start))
            if let extra { allowed = allowed * extra }
            let masked = select(allowed, scores, constant(-.infinity))
            let p = softmax(masked)
            let out = p.matmul(v5)   // [B, KVH, REP, T, HD]
            return out.reshape([b, kvHeads * rep, t, hd]).permute([0, 2, 1, 3]).reshape([b, t, kvHeads * rep * hd])
        }
    }
}

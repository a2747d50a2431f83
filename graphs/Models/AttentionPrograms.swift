import TensorGraph

/// Causal attention alone, fused and written out from primitives, with its gradients: tests
/// run both compiled programs (and the interpreter) on the same inputs (`attention.*`).
public enum AttentionPrograms {
    typealias D = LlamaDims

    /// `fused` / `unfused` (and `_masked`): queries `q` `[B, T, H, HD]` at positions
    /// `P ..< P+T` over keys and values `k`, `v` `[B, S, KVH, HD]` (`S = P + T`, GQA with `REP`
    /// query heads per key head), with the 1/0 mask `allowed` `[B, T, S]` when masked. Outputs
    /// `out` `[B, T, H·HD]` and the gradients `dq`, `dk`, `dv` of `Σ seed ∘ out`.
    public static func attention(fused: Bool, masked: Bool) throws -> Program {
        let b = GraphBuilder((fused ? "fused" : "unfused") + (masked ? "_masked" : ""))
        let q = b.input("q", [D.batch, D.seq, D.heads, D.headDim])
        let k = b.input("k", [D.batch, D.span, D.kvHeads, D.headDim])
        let v = b.input("v", [D.batch, D.span, D.kvHeads, D.headDim])
        let allowed = masked ? b.input("allowed", [D.batch, D.seq, D.span]).reshape([D.batch, 1, 1, D.seq, D.span]) : nil
        let seed = b.input("seed", [D.batch, D.seq, D.dim])
        let out = fused
            ? b.causalAttention(q: q, k: k, v: v, kvHeads: D.kvHeads, rep: D.rep, start: D.start, allowed: allowed)
            : b.causalAttentionUnfused(q: q, k: k, v: v, kvHeads: D.kvHeads, rep: D.rep, start: D.start, allowed: allowed)
        let loss = b.weightedSum(out, seed)
        let grads = try b.gradients(of: loss, wrt: [q, k, v])
        b.output("out", out)
        for (name, g) in zip(["dq", "dk", "dv"], grads) { b.output(name, g) }
        return try b.build()
    }

    /// `fused_step` / `unfused_step` (and `_masked`): the forward alone for one query row
    /// (`T = 1`, as decode runs it) at position `P` over `S = P + 1` keys; output `out` `[B, 1, H·HD]`.
    public static func step(fused: Bool, masked: Bool) throws -> Program {
        let b = GraphBuilder((fused ? "fused" : "unfused") + "_step" + (masked ? "_masked" : ""))
        let one = Dim(1)
        let q = b.input("q", [D.batch, one, D.heads, D.headDim])
        let k = b.input("k", [D.batch, D.span, D.kvHeads, D.headDim])
        let v = b.input("v", [D.batch, D.span, D.kvHeads, D.headDim])
        let allowed = masked ? b.input("allowed", [D.batch, one, D.span]).reshape([D.batch, 1, 1, one, D.span]) : nil
        let out = fused
            ? b.causalAttention(q: q, k: k, v: v, kvHeads: D.kvHeads, rep: D.rep, start: D.start, allowed: allowed)
            : b.causalAttentionUnfused(q: q, k: k, v: v, kvHeads: D.kvHeads, rep: D.rep, start: D.start, allowed: allowed)
        b.output("out", out)
        return try b.build()
    }

    public static func all() throws -> [Program] {
        let flags = [(true, false), (false, false), (true, true), (false, true)]
        return try flags.map { try attention(fused: $0.0, masked: $0.1) } + flags.map { try step(fused: $0.0, masked: $0.1) }
    }
}

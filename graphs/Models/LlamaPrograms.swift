import TensorGraph

/// Builders for the LLaMA inference programs.
public enum LlamaPrograms {
    /// Which KV-cache behaviour a program has.
    public enum Mode: Sendable { case forward, prefill, decode }

    /// `forward`: logits `[B, T, V]` for an id matrix `[B, T]` (positions 0..<T).
    /// `prefill`: through a KV cache at positions `P ..< P+T` (S = P + T), logits `[NS, V]` for
    /// the rows listed in `scored` (`[NS]` flat indices `b·T + t`): every row, or only each
    /// sequence's last for generation, whose first token needs nothing else (for a 32,000-word
    /// vocabulary and a small model the head is most of a prompt's multiply-adds).
    /// `decode`: prefill with T = 1.
    /// With `quant`, the same program over quantized projections (`WeightQuant`), named with
    /// the type's suffix (`decode_q8`); the output matrix `lm_head` is `head` (`q8_0` unless
    /// told; a 4-bit one adds `_h4`: `decode_q4_h4`).
    public static func build(_ mode: Mode, quant: WeightQuant? = nil, head: WeightQuant = .q8_0) throws -> Program {
        typealias D = LlamaDims
        let base = switch mode { case .forward: "forward"; case .prefill: "prefill"; case .decode: "decode" }
        let b = GraphBuilder(quant.map { "\(base)_\($0.programSuffix)" + WeightQuant.headSuffix(head) } ?? base)
        let t: Dim = mode == .decode ? 1 : D.seq
        let ids = b.input("ids", [D.batch, t], .i32)
        let model = LlamaModel(b, quant: quant, head: head)
        let layout = TokenLayout.sequential(b, seq: t, start: mode == .forward ? 0 : D.start)
        let scored = mode == .prefill ? b.input("scored", [D.scored], .i32) : nil
        b.output("logits", model(ids, layout: layout, cached: mode != .forward, scored: scored))
        var program = try b.build()
        program.latencyBound = mode == .decode
        return program
    }

    /// Every program of the LLaMA family, in emission order.
    public static func all() throws -> [Program] {
        try [build(.forward), build(.prefill), build(.decode)]
            + WeightQuant.allCases.flatMap { q in try [build(.forward, quant: q), build(.prefill, quant: q), build(.decode, quant: q)] }
            + [Mode.forward, .prefill, .decode].map { try build($0, quant: .q4_0, head: .q4_0) }
    }
}

import TensorGraph

/// What a decoder layer does with the activations its backward pass reads (`names`): the
/// matmul outputs and attention's output and row log-sum-exp, so the backward stage recomputes
/// only cheap elementwise values (and the attention probabilities, inside its fused kernels). A
/// layer calls `keep(name, value)` at each of them and goes on with the value it gets back.
struct KeptActivations {
    private let body: (_ name: String, _ value: Tensor) -> Tensor

    /// The kept activations of one layer, with their shapes (in the order the backward
    /// stage declares their buffers).
    static var names: [(name: String, shape: Shape)] {
        typealias D = LlamaDims
        return [("q", [D.batch, D.seq, D.heads, D.headDim]), ("k", [D.batch, D.seq, D.kvHeads, D.headDim]),
                ("v", [D.batch, D.seq, D.kvHeads, D.headDim]), ("lse", [D.batch, D.heads, D.seq]),
                ("attn", [D.batch, D.seq, D.heads, D.headDim]), ("h", [D.batch, D.seq, D.dim]),
                ("gate", [D.batch, D.seq, D.hidden]), ("up", [D.batch, D.seq, D.hidden])]
    }

    /// The name a LoRA adapter's scaled down projection `s·(x·Aᵀ)` `[B·T, R]` is kept under
    /// (`lora_wq`, …): declared by a layer only when it carries adapters, so its buffer
    /// (`saved_lora_wq`) exists only in the adapter programs.
    static func adapterName(_ module: String) -> String { "lora_\(module)" }

    /// The per-layer buffer (`[L, …]`) an activation is kept in: `saved_q`, …; `saved_x`
    /// holds the layer's input.
    static func bufferName(_ activation: String) -> String { "saved_\(activation)" }

    func callAsFunction(_ name: String, _ value: Tensor) -> Tensor { body(name, value) }

    /// Inference: values are used as computed; nothing is kept.
    static var none: KeptActivations { KeptActivations { $1 } }

    /// Training's forward layer loop: each value is written into its per-layer buffer by the
    /// kernel that computes it, and read from there.
    static var saving: KeptActivations {
        KeptActivations { name, value in
            let b = value.builder
            let buffer = b.input(bufferName(name), [LlamaDims.layers] + value.shape, perLayer: true, mutable: true)
            return b.writeSlice(buffer, value, axis: 0, start: 0)
        }
    }

    /// The backward layer loop: declares the layer's saved input (`saved_x`, `[B, T, D]` per
    /// layer) and every kept buffer; the layer rebuilt from that input reads the kept values
    /// back (`reuse(computed, saved:)`: gradients flow through the rebuilt graph, the compiler
    /// reads the buffer). An adapter's kept value (`adapterName`) is declared when the layer
    /// keeps it.
    static func restoring(_ b: GraphBuilder) -> (layerInput: Tensor, keep: KeptActivations) {
        typealias D = LlamaDims
        let input = b.input(bufferName("x"), [D.layers, D.batch, D.seq, D.dim], perLayer: true, mutable: true)
        var saved: [String: Tensor] = [:]
        for (name, shape) in names {
            saved[name] = b.input(bufferName(name), [D.layers] + shape, perLayer: true, mutable: true)
        }
        return (input, KeptActivations { name, value in
            if let buffer = saved[name] { return value.builder.reuse(value, saved: buffer) }
            // An adapter's kept value: its buffer is declared where the layer asks for it.
            guard LoRA.modules.contains(where: { adapterName($0) == name }) else { return value }
            let buffer = b.input(bufferName(name), [D.layers] + value.shape, perLayer: true, mutable: true)
            return value.builder.reuse(value, saved: buffer)
        })
    }
}

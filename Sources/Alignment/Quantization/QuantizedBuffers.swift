import KernelRuntime
import LlamaGraphs

/// The quantized matrices of a model in 64-byte aligned memory, bound by name for the
/// quantized programs (`llama.decode_q8`, …): each weight's stored bytes under its name and its
/// scales under `<name>_scales`, plus the group counts `GD`, `GF` the programs size rows with.
final class QuantizedBuffers: @unchecked Sendable {
    let weights: QuantizedWeights
    private var buffers: [String: AlignedBuffer] = [:]

    init(_ w: QuantizedWeights) {
        weights = w
        for (name, m) in w.matrices {
            let q = AlignedBuffer(bytes: max(m.packed.count, 1))
            m.packed.withUnsafeBytes { q.raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            buffers[name] = q
            buffers[WeightQuant.scalesName(name)] = AlignedBuffer(copying: m.scales)
        }
    }

    /// Pointers by program argument name.
    var pointers: [String: UnsafeMutableRawPointer] { buffers.mapValues(\.raw) }

    /// The group counts per row (`GD` = dim / G, `GF` = hidden / G).
    var groupSizes: [String: Int] {
        var s: [String: Int] = [:]
        if let n = WeightQuant.groupsPerDim.symbolName { s[n] = weights.config.dim / weights.groupSize }
        if let n = WeightQuant.groupsPerHidden.symbolName { s[n] = weights.config.hiddenDim / weights.groupSize }
        return s
    }

    /// The programs' suffix (`q8`, `q4`).
    var programSuffix: String { weights.type.graph.programSuffix }
}

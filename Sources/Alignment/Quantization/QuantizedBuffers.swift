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

    /// The group counts per row (`GD` = ⌈dim / G⌉, `GF`) and the padded rows in units of 32 (`RD`, `RF`).
    var groupSizes: [String: Int] {
        var s: [String: Int] = [:]
        let g = weights.groupSize
        for (groups, padded, n) in [(WeightQuant.groupsPerDim, WeightQuant.paddedPerDim, weights.config.dim),
                                    (WeightQuant.groupsPerHidden, WeightQuant.paddedPerHidden, weights.config.hiddenDim)] {
            let count = (n + g - 1) / g
            if let name = groups.symbolName { s[name] = count }
            if let name = padded.symbolName { s[name] = count * g / 32 }
        }
        return s
    }

    /// The programs' suffix (`q8`, `q4`, `q4_h4` for a 4-bit output matrix).
    var programSuffix: String { weights.type.graph.programSuffix + WeightQuant.headSuffix(weights.headType.graph) }
}

import Foundation

extension ProgramManifest.Field {
    /// Elements of this field at `sizes` (its shape's dims are products like `2*HD2*KVH`).
    public func elementCount(_ sizes: [String: Int]) throws -> Int {
        try (shape ?? []).reduce(1) { total, dim in
            try dim.split(separator: "*").reduce(total) { acc, factor in
                if let v = Int(factor) { return acc * v }
                guard let v = sizes[String(factor)] else { throw RuntimeError("field '\(name)': size '\(factor)' is not bound") }
                return acc * v
            }
        }
    }
}

/// Buffers a program fills and reads back itself (the activations a training step keeps
/// for its backward pass), allocated once and grown when a larger batch needs more.
public final class ScratchBuffers: @unchecked Sendable {
    private var buffers: [String: AlignedBuffer] = [:]

    public init() {}

    /// A pointer for every input of `program` named `prefix…`, sized for `sizes`.
    public func pointers(for program: CompiledProgram, prefix: String = "saved_", sizes: [String: Int]) throws -> [String: UnsafeMutableRawPointer] {
        var out: [String: UnsafeMutableRawPointer] = [:]
        for f in program.manifest.fields where f.kind == .input && f.name.hasPrefix(prefix) {
            let n = try f.elementCount(sizes)
            if buffers[f.name].map({ $0.byteCount < n * 4 }) ?? true { buffers[f.name] = AlignedBuffer(floats: max(n, 1)) }
            out[f.name] = buffers[f.name]?.raw
        }
        return out
    }

    /// Bytes held.
    public var byteCount: Int { buffers.values.reduce(0) { $0 + $1.byteCount } }
}

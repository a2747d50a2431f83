/// Where each parameter tensor lives in a flat buffer: the tensors in `order`, each starting on
/// a 64-byte boundary (16 floats), with zeros in the gaps. A model's parameters, their gradients
/// and AdamW's moments all use the same layout, so one elementwise pass covers them together.
public struct ParameterLayout: Sendable, Equatable {
    /// Tensor names in the order they are laid out.
    public let order: [String]
    /// First float of each tensor.
    public let offsets: [String: Int]
    /// Floats of each tensor.
    public let counts: [String: Int]
    /// Floats of the whole buffer (gaps included).
    public let totalFloats: Int

    /// Floats per 64 bytes: every tensor starts on a multiple of this.
    public static let alignment = 16

    /// The layout of tensors with these `counts`, in `order`.
    public init(order: [String], counts: [String: Int]) {
        var offsets: [String: Int] = [:], next = 0
        for name in order {
            offsets[name] = next
            let n = counts[name] ?? 0
            next += (n + Self.alignment - 1) / Self.alignment * Self.alignment
        }
        self.order = order
        self.offsets = offsets
        self.counts = counts
        totalFloats = next
    }

    /// Floats from the start of the buffer to the end of the first `k` tensors of `order`: the
    /// flat extent one pass over them covers (the gaps it includes hold zeros).
    public func extent(ofFirst k: Int) -> Int {
        guard k > 0, let last = order.prefix(k).last, let start = offsets[last] else { return 0 }
        return start + (counts[last] ?? 0)
    }

    /// Copies every tensor of `source` (laid out by `from`) to its place under this layout in
    /// `target`. Both layouts must hold the same tensors.
    func move(from: ParameterLayout, _ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>) {
        for name in order {
            guard let dst = offsets[name], let src = from.offsets[name], let n = counts[name] else { continue }
            (target + dst).update(from: source + src, count: n)
        }
    }
}

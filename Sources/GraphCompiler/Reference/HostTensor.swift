import TensorGraph

/// A dense row-major tensor of Doubles on the host (int32 values are stored as Doubles).
public struct HostTensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Double]

    public init(shape: [Int], data: [Double]) {
        self.shape = shape
        self.data = data
    }

    public init(shape: [Int], repeating v: Double = 0) {
        self.init(shape: shape, data: Array(repeating: v, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }

    /// Row-major strides.
    var strides: [Int] {
        var s = Array(repeating: 1, count: shape.count)
        var acc = 1
        for k in stride(from: shape.count - 1, through: 0, by: -1) { s[k] = acc; acc *= shape[k] }
        return s
    }

    /// Coordinates of flat index `i`.
    func unravel(_ i: Int) -> [Int] {
        var rest = i
        var idx = Array(repeating: 0, count: shape.count)
        for k in stride(from: shape.count - 1, through: 0, by: -1) where shape[k] > 0 {
            idx[k] = rest % shape[k]
            rest /= shape[k]
        }
        return idx
    }

    /// The tensor whose element at `idx` is this one's at `map(idx)`.
    func gathered(_ outShape: [Int], _ map: ([Int]) -> [Int]) -> HostTensor {
        let out = HostTensor(shape: outShape)
        let st = strides
        var data = out.data
        for i in 0..<data.count {
            let src = map(out.unravel(i))
            var flat = 0
            for (k, c) in src.enumerated() { flat += c * st[k] }
            data[i] = self.data[flat]
        }
        return HostTensor(shape: outShape, data: data)
    }
}

/// Pads examples into one `TokenBatch`: next-token targets, mask 1 where the target is supervised.
public func collate(_ examples: [TokenizedExample], padId: Int32, seq: Int? = nil) -> TokenBatch {
    let width = max(seq ?? 0, examples.map(\.inputIds.count).max() ?? 1, 1)
    let n = examples.count * width
    var ids = [Int32](repeating: padId, count: n), targets = [Int32](repeating: 0, count: n), mask = [Float](repeating: 0, count: n)
    for (row, e) in examples.enumerated() {
        let base = row * width
        for (t, id) in e.inputIds.prefix(width).enumerated() { ids[base + t] = id }
        for t in 0..<max(min(e.inputIds.count, width) - 1, 0) where e.labels[t + 1] != TokenizedExample.ignore {
            targets[base + t] = e.labels[t + 1]
            mask[base + t] = 1
        }
    }
    return TokenBatch(batch: examples.count, seq: width, ids: ids, targets: targets, mask: mask)
}

/// Where a loader is: which epoch, and how far into it. Saved in checkpoints for exact resume.
public struct LoaderState: Codable, Sendable, Equatable {
    public var epoch = 0
    public var position = 0
}

/// Yields micro-batches epoch after epoch, in file order or in a seeded shuffle per epoch.
public struct DataLoader<Element>: Sendable where Element: Sendable {
    public let items: [Element]
    public let batchSize: Int
    public let shuffle: Bool
    public let seed: UInt64
    public var state = LoaderState()
    private var order: [Int] = []
    private var orderEpoch = -1

    public init(items: [Element], batchSize: Int, shuffle: Bool, seed: UInt64) {
        self.items = items
        self.batchSize = max(batchSize, 1)
        self.shuffle = shuffle
        self.seed = seed
    }

    /// The permutation of an epoch (the same for the same seed and epoch).
    func permutation(_ epoch: Int) -> [Int] {
        var idx = Array(items.indices)
        guard shuffle else { return idx }
        var g = SeededGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        idx.shuffle(using: &g)
        return idx
    }

    /// The next micro-batch (the last one of an epoch may be smaller).
    public mutating func next() -> [Element] {
        guard !items.isEmpty else { return [] }
        if state.position >= items.count { state.epoch += 1; state.position = 0 }
        if orderEpoch != state.epoch { order = permutation(state.epoch); orderEpoch = state.epoch }
        let end = min(state.position + batchSize, items.count)
        let batch = order[state.position..<end].map { items[$0] }
        state.position = end
        return batch
    }

    /// Epochs done so far, fractional.
    public var epochProgress: Double { Double(state.epoch) + Double(state.position) / Double(max(items.count, 1)) }
}

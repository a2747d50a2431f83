/// What kind of piece a vocabulary entry is (SentencePiece's types).
public enum PieceKind: Int, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// A scored BPE vocabulary with SentencePiece's encoding: `▁` for spaces, a dummy-prefix
/// `▁`, merges of the best-scoring adjacent pair (leftmost on ties) until none applies, and
/// unknown characters spelled as `<0xNN>` byte pieces. With `mergeRanks` (a `tokenizer.json`'s
/// merge list) only listed pairs merge, the lowest rank first (leftmost on ties), as Hugging
/// Face's BPE does.
struct BPEVocabulary: Sendable {
    var pieces: [String]
    var scores: [Float]
    var kinds: [PieceKind]
    /// Piece → id, keyed by UTF-8 bytes: Swift's `String ==` treats canonically equivalent
    /// text (`e` + U+0301 and `é`) as equal, SentencePiece does not.
    var ids: [[UInt8]: Int32]
    var byteIds: [Int32]
    var unkId: Int32
    var bosId: Int32
    var eosId: Int32
    var addDummyPrefix: Bool
    /// Spaces are written as `▁` before merging (SentencePiece, Metaspace); false for a byte vocabulary.
    var escapeSpaces: Bool
    /// Rank of each mergeable pair (left bytes + 0x00 + right bytes); nil merges by piece score.
    var mergeRanks: [[UInt8]: Int]?

    init(pieces: [String], scores: [Float], kinds: [PieceKind], unk: Int32, bos: Int32, eos: Int32, addDummyPrefix: Bool,
         escapeSpaces: Bool = true, mergeRanks: [[UInt8]: Int]? = nil) {
        self.pieces = pieces; self.scores = scores; self.kinds = kinds
        unkId = unk; bosId = bos; eosId = eos
        self.addDummyPrefix = addDummyPrefix
        self.escapeSpaces = escapeSpaces
        self.mergeRanks = mergeRanks
        var ids: [[UInt8]: Int32] = [:]
        var bytes = [Int32](repeating: -1, count: 256)
        for (i, p) in pieces.enumerated() {
            if kinds[i] == .byte, p.count == 6, p.hasPrefix("<0x"), let v = UInt8(p.dropFirst(3).prefix(2), radix: 16) {
                bytes[Int(v)] = Int32(i)
            } else if kinds[i] != .control && kinds[i] != .unknown && ids[Array(p.utf8)] == nil {
                ids[Array(p.utf8)] = Int32(i)
            }
        }
        self.ids = ids
        byteIds = bytes
    }

    func encode(_ text: String) -> [Int32] {
        if text.isEmpty { return [] }
        var normalized = escapeSpaces ? text.replacingOccurrences(of: " ", with: "▁") : text
        if addDummyPrefix { normalized = "▁" + normalized }
        // Symbols as a linked list over the characters (Unicode scalars, as SentencePiece splits).
        var symbols = normalized.unicodeScalars.map { Array(String($0).utf8) }
        var prev = Array(-1..<(symbols.count - 1)), next = Array(1...symbols.count)
        next[symbols.count - 1] = -1
        var heap = PairHeap()
        func consider(_ l: Int) {
            let r = next[l]
            guard l >= 0, r >= 0, let id = ids[symbols[l] + symbols[r]] else { return }
            let score: Float
            if let mergeRanks {
                guard let rank = mergeRanks[symbols[l] + [0] + symbols[r]] else { return }
                score = -Float(rank)   // exact: ranks are far below 2^24
            } else {
                score = scores[Int(id)]
            }
            heap.push(.init(score: score, left: l, right: r, leftText: symbols[l], rightText: symbols[r]))
        }
        for i in 0..<(symbols.count - 1) { consider(i) }
        while let best = heap.pop() {
            // Skip candidates made stale by earlier merges.
            guard next[best.left] == best.right, symbols[best.left] == best.leftText, symbols[best.right] == best.rightText else { continue }
            symbols[best.left] += symbols[best.right]
            symbols[best.right] = []
            let after = next[best.right]
            next[best.left] = after
            if after >= 0 { prev[after] = best.left }
            if prev[best.left] >= 0 { consider(prev[best.left]) }
            consider(best.left)
        }
        var out: [Int32] = []
        var i = 0
        while i >= 0 {
            let s = symbols[i]
            if let id = ids[s] {
                out.append(id)
            } else {
                for b in s { out.append(byteIds[Int(b)] >= 0 ? byteIds[Int(b)] : unkId) }
            }
            i = next[i]
        }
        return out
    }

    func bytes(of id: Int32, first: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < pieces.count else { return [] }
        let i = Int(id)
        switch kinds[i] {
        case .control, .unused: return []
        case .unknown: return Array(" \u{2047} ".utf8)
        case .byte:
            if let v = UInt8(pieces[i].dropFirst(3).prefix(2), radix: 16) { return [v] }
            return []
        case .normal, .userDefined:
            var text = escapeSpaces ? pieces[i].replacingOccurrences(of: "▁", with: " ") : pieces[i]
            if first && addDummyPrefix && text.hasPrefix(" ") { text.removeFirst() }
            return Array(text.utf8)
        }
    }
}

/// A max-heap of merge candidates: higher score first, then the leftmost.
struct PairHeap {
    struct Entry { var score: Float; var left: Int; var right: Int; var leftText: [UInt8]; var rightText: [UInt8] }
    private var items: [Entry] = []

    private func before(_ a: Entry, _ b: Entry) -> Bool { a.score != b.score ? a.score > b.score : a.left < b.left }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard before(items[i], items[p]) else { break }
            items.swapAt(i, p); i = p
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && before(items[l], items[m]) { m = l }
                if r < items.count && before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}

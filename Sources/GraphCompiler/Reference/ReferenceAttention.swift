import Foundation
import TensorGraph

/// The `attention` primitive on the host, in Doubles, written from its definition: every
/// row's scores, their softmax over the visible keys, the output and (for the gradient parts)
/// the softmax's backward. Independent of the emitted kernels, which tests compare with it.
enum ReferenceAttention {
    /// The value of part `part` given the node's inputs (`q`, `k`, `v`, [mask], then the part's own).
    static func evaluate(_ part: AttentionPart, start: Int, masked: Bool, _ xs: [HostTensor]) -> HostTensor {
        let (q, k, v) = (xs[0], xs[1], xs[2])
        let mask = masked ? xs[3] : nil
        let (nb, nt, nh, hd) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (ns, nkv) = (k.shape[1], k.shape[2])
        let rep = nh / nkv, scale = 1 / Double(hd).squareRoot()
        let dOut = part == .lse || part == .out ? nil : xs[xs.count - 1]
        var out = HostTensor(shape: part == .lse ? [nb, nh, nt] : (part == .out || part == .gradQ ? q.shape : k.shape))
        func qi(_ b: Int, _ t: Int, _ h: Int) -> Int { ((b * nt + t) * nh + h) * hd }
        func ki(_ b: Int, _ s: Int, _ g: Int) -> Int { ((b * ns + s) * nkv + g) * hd }
        for b in 0..<nb {
            for h in 0..<nh {
                let g = h / rep
                for t in 0..<nt {
                    let keys = (0..<ns).filter { s in s <= start + t && (mask.map { $0.data[(b * nt + t) * ns + s] != 0 } ?? true) }
                    let x = keys.map { s in (0..<hd).reduce(0.0) { $0 + q.data[qi(b, t, h) + $1] * k.data[ki(b, s, g) + $1] } * scale }
                    let m = x.max() ?? -.infinity
                    let sum = x.reduce(0.0) { $0 + Foundation.exp($1 - m) }
                    let lse = keys.isEmpty ? -Double.infinity : m + Foundation.log(sum)
                    let p = x.map { Foundation.exp($0 - lse) }
                    switch part {
                    case .lse:
                        out.data[(b * nh + h) * nt + t] = lse
                    case .out:
                        for (j, s) in keys.enumerated() {
                            for d in 0..<hd { out.data[qi(b, t, h) + d] += p[j] * v.data[ki(b, s, g) + d] }
                        }
                    case .gradQ, .gradK, .gradV:
                        guard let dOut else { break }
                        let dO = (0..<hd).map { dOut.data[qi(b, t, h) + $0] }
                        let dp = keys.map { s in (0..<hd).reduce(0.0) { $0 + dO[$1] * v.data[ki(b, s, g) + $1] } }
                        let rowD = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                        for (j, s) in keys.enumerated() {
                            let ds = p[j] * (dp[j] - rowD) * scale
                            for d in 0..<hd {
                                switch part {
                                case .gradQ: out.data[qi(b, t, h) + d] += ds * k.data[ki(b, s, g) + d]
                                case .gradK: out.data[ki(b, s, g) + d] += ds * q.data[qi(b, t, h) + d]
                                default: out.data[ki(b, s, g) + d] += p[j] * dO[d]
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// The counter-based generator behind the `random` op: a number is a pure function of a 32-bit
/// key and an element's flat index, so kernels draw in any order and any thread split, a
/// backward pass regenerates what its forward drew, and a resumed run draws the same numbers.
///
///     mix(x):  x ^= x >> 16; x *= 0x21f0aaad; x ^= x >> 15; x *= 0x735a2d97; x ^= x >> 15
///     h = mix(mix(lo32(i) ^ mix(key + 0x9e3779b9 · hi32(i))) ^ key)
///     u = (h >> 8) · 2⁻²⁴                      (24 bits: exact in float32, in [0, 1))
///
/// The emitted C calls `la_uniform` (`la_runtime.h`), the same formula; the reference
/// interpreter calls `uniform(key:index:)`.
public enum CounterRandom {
    /// A 32-bit bijective mixer (xor-shift-multiply).
    @inlinable
    public static func mix(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16; x &*= 0x21f0_aaad
        x ^= x >> 15; x &*= 0x735a_2d97
        x ^= x >> 15
        return x
    }

    /// The uniform number in [0, 1) of element `index` under `key`.
    @inlinable
    public static func uniform(key: UInt32, index: Int) -> Float {
        let i = UInt64(bitPattern: Int64(index))
        let hi = UInt32(truncatingIfNeeded: i >> 32), lo = UInt32(truncatingIfNeeded: i)
        let h = mix(mix(lo ^ mix(key &+ 0x9e37_79b9 &* hi)) ^ key)
        return Float(h >> 8) * 0x1p-24
    }

    /// A key from several words (a seed, a step, a layer, …), each mixed in turn.
    public static func key(_ words: [UInt64]) -> UInt32 {
        var h: UInt32 = 0x85eb_ca6b
        for w in words {
            h = mix(h ^ UInt32(truncatingIfNeeded: w))
            h = mix(h ^ UInt32(truncatingIfNeeded: w >> 32))
        }
        return h
    }
}

import Foundation

/// A small, fast, deterministic random number generator (SplitMix64).
///
/// The same seed always yields the same sequence on every platform, so weights made by
/// `LlamaWeights.random` and draws made by `Sampler` are reproducible. `state` may be saved
/// and restored to resume a sequence exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable, Hashable {
    /// The whole internal state; assigning a saved value resumes that sequence.
    public var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in `[0, 1)` with 53 random bits.
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = 1.0 - nextDouble()  // in (0, 1], so log is finite
        let u2 = nextDouble()
        return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }
}

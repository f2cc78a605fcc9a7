/// SplitMix64 (Steele, Lea and Flood, 2014): a small, fast, seedable generator.
///
/// Every random choice in Plexus — initialisation, mini-batches, partitions, simulated loss —
/// draws from a generator seeded by the plan or a `--seed`, never from global randomness, so the
/// same seed gives the same result bit for bit.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound (bound ≥ 1), by rejection: exact and portable, unlike the
    /// standard library's algorithm, which may change between Swift versions.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound >= 1, "bound must be ≥ 1")
        let b = UInt64(bound)
        let limit = UInt64.max - UInt64.max % b
        while true {
            let x = next()
            if x < limit { return Int(x % b) }
        }
    }

    /// Uniform in [0, 1), 53 random bits.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A generator for a sub-stream (a peer, a purpose) that does not overlap this one's
    /// sequence in practice: the seed mixed with `stream`.
    public func derived(_ stream: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: state ^ (stream &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}

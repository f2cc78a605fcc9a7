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

    /// A generator for a sub-stream (a peer, a purpose) that does not overlap this one's
    /// sequence in practice: the seed mixed with `stream`.
    public func derived(_ stream: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: state ^ (stream &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}

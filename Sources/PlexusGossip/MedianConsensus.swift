public import PlexusCore

/// Coordinate-wise median over the closed neighbourhood (x̂_self and each neighbour's x̂_j):
/// for every coordinate, M is the middle of the n values (the mean of the two middle ones
/// when n is even), then
///
///     x ← x + γ (M − x̂_self)
///
/// (with a lossless codec, x ← (1 − γ) x + γ M). It is the trimmed mean with
/// B = ⌊(n − 1) ÷ 2⌋ and shares its kernel, its cut set rule and its weighting: every member
/// has one vote, so neither mixing weights nor sample counts enter and the sample-weighted
/// mean is given up (README, "Robust aggregation", says by how much). Fewer than half of the
/// neighbourhood's members cannot move any coordinate of M outside the range of the others.
/// With a single neighbour (n = 2), M is the mean of the two: no protection
/// (`plexus topology check` warns).
public struct MedianConsensus: ConsensusRule {
    /// γ in (0, 1].
    public var step: Float

    public init(step: Float) { self.step = step }

    /// Returns the neighbours trimmed in most coordinates; see ``CoordinateWiseTrim``.
    public func step(
        candidate x: UnsafeMutableBufferPointer<Float>, publicCopy s: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour]
    ) -> Set<PeerID> {
        CoordinateWiseTrim.step(candidate: x, publicCopy: s, neighbours: neighbours, trim: Int.max, step: step)
    }

    /// The coordinate-wise median of `copies` (one vote each; all of one length), or `nil` for
    /// none: the model a joining or rejoining peer adopts under a robust `aggregation`, in place
    /// of the sample-weighted mean of its neighbours' copies (which one neighbour could set).
    public static func median(of copies: [(peer: PeerID, copy: [Float])]) -> [Float]? {
        guard let first = copies.first else { return nil }
        let rest = copies.dropFirst().map { ConsensusNeighbour(peer: $0.peer, weight: 1, copy: $0.copy) }
        var result = first.copy
        result.withUnsafeMutableBufferPointer { x in
            first.copy.withUnsafeBufferPointer { s in
                _ = CoordinateWiseTrim.step(candidate: x, publicCopy: s, neighbours: rest, trim: Int.max, step: 1)
            }
        }
        return result
    }
}

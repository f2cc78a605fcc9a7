public import PlexusCore

/// Coordinate-wise trimmed mean over the closed neighbourhood (this peer's public copy x̂_self
/// and each neighbour's copy x̂_j): for every coordinate, the B largest and the B smallest of
/// the n values are dropped and the n − 2B others averaged, giving T; then
///
///     x ← x + γ (T − x̂_self)
///
/// which with a lossless codec (x̂_self = x) is x ← (1 − γ) x + γ T, and with a lossy one keeps
/// CHOCO's error feedback (x moves by the rule's step from its public copy, as in
/// ``ChocoConsensus``).
///
/// - Weights: every member of the neighbourhood has one vote. Neither the mixing weights nor
///   the sample counts enter (a lied-about count buys nothing), so the rule gives up the
///   sample-weighted mean: its fixed point is a robust centre of the sites' models, not
///   Σ n_k x_k ÷ Σ n_k — measured in README ("Robust aggregation").
/// - B is the plan's; `plexus topology check` requires 2B + 1 ≤ every closed neighbourhood.
///   When fewer members take part in a step (a neighbour without a copy yet, or stale in
///   asynchronous mode), B is lowered to ⌊(n − 1) ÷ 2⌋ so that at least one value remains.
/// - Robustness: up to B attackers in a neighbourhood cannot move any coordinate of T outside
///   the range of the honest values.
public struct TrimmedMeanConsensus: ConsensusRule {
    /// γ in (0, 1].
    public var step: Float
    /// B ≥ 1: values dropped at each end of every coordinate.
    public var trim: Int

    public init(step: Float, trim: Int) {
        precondition(trim >= 1, "trimmed-mean needs B ≥ 1, got \(trim)")
        self.step = step
        self.trim = trim
    }

    /// Returns the neighbours trimmed in most coordinates; see ``CoordinateWiseTrim``.
    public func step(
        candidate x: UnsafeMutableBufferPointer<Float>, publicCopy s: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour]
    ) -> Set<PeerID> {
        CoordinateWiseTrim.step(candidate: x, publicCopy: s, neighbours: neighbours, trim: trim, step: step)
    }
}

/// The kernel of ``TrimmedMeanConsensus`` and ``MedianConsensus`` (the median is the trimmed
/// mean with B = ⌊(n − 1) ÷ 2⌋).
///
/// The cut set: neighbour j is *trimmed* at a coordinate when its value is strictly below the
/// smallest kept value or strictly above the largest (a value tied with a kept one is not
/// trimmed), and it is returned when it was trimmed in more than
///
///     (1 + 2B ÷ n) ÷ 2  of the coordinates
///
/// — halfway between 2B ÷ n, the share an honest member of an exchangeable neighbourhood is
/// trimmed in on average, and 1. For trimmed-mean:1 over 5 values that is 70%; for the median
/// of 5, 90% (a plain "more than half" would name every neighbour of a median every round,
/// since the median keeps one value of five). An outlier is trimmed in nearly every coordinate.
///
/// Work per coordinate: an insertion sort of n values in two reused buffers (no allocation
/// per coordinate); sums in Double.
enum CoordinateWiseTrim {
    static func step(
        candidate x: UnsafeMutableBufferPointer<Float>, publicCopy s: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour],
        trim requested: Int, step gamma: Float
    ) -> Set<PeerID> {
        let n = neighbours.count + 1
        guard n >= 2 else { return [] }  // alone: T = x̂_self, x does not move
        let b = min(requested, (n - 1) / 2)
        let count = x.count
        let g = Double(gamma)
        let keptInverse = 1 / Double(n - 2 * b)
        var trimmed = [Int](repeating: 0, count: n)
        var values = [Float](repeating: 0, count: n)
        var owners = [Int](repeating: 0, count: n)
        withCopies(neighbours) { copies in
            values.withUnsafeMutableBufferPointer { v in
                owners.withUnsafeMutableBufferPointer { o in
                    trimmed.withUnsafeMutableBufferPointer { t in
                        for i in 0..<count {
                            // Gather and insertion-sort (value, owner); owner 0 is this peer.
                            v[0] = s[i]
                            o[0] = 0
                            for k in 1..<n {
                                let value = copies[k - 1][i]
                                var p = k
                                while p > 0 && value < v[p - 1] {
                                    v[p] = v[p - 1]
                                    o[p] = o[p - 1]
                                    p -= 1
                                }
                                v[p] = value
                                o[p] = k
                            }
                            let low = v[b]
                            let high = v[n - 1 - b]
                            var sum = 0.0
                            for p in b..<(n - b) { sum += Double(v[p]) }
                            if b > 0 {
                                for p in 0..<b where v[p] < low { t[o[p]] += 1 }
                                for p in (n - b)..<n where v[p] > high { t[o[p]] += 1 }
                            }
                            let centre = sum * keptInverse
                            x[i] = Float(Double(x[i]) + g * (centre - Double(s[i])))
                        }
                    }
                }
            }
        }
        guard b > 0, count > 0 else { return [] }
        let threshold = (1 + 2 * Double(b) / Double(n)) / 2 * Double(count)
        var cut: Set<PeerID> = []
        for k in 1..<n where Double(trimmed[k]) > threshold { cut.insert(neighbours[k - 1].peer) }
        return cut
    }
}

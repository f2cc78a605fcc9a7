public import PlexusCore

/// Self-centred clipping (ClippedGossip; He, Karimireddy & Jaggi 2022, "Byzantine-robust
/// decentralized learning via ClippedGossip"), on CHOCO-Gossip's public copies:
///
///     x ← x + γ Σ_j p_ij · CLIP(x̂_j − x̂_self, τ_i),    CLIP(v, τ) = v · min(1, τ ÷ ‖v‖)
///
/// so no neighbour can move this peer by more than γ · p_ij · τ_i in one step, however large
/// (or however validly signed) the copy it sent.
///
/// ## The radius τ_i
///
/// The paper's analysis uses τ_i = √(δ_i⁻¹ Σ_{j honest} p_ij ‖x̂_j − x̂_self‖²), which needs to
/// know which neighbours are honest (δ_i is the weight of the Byzantine ones); the authors'
/// reference code (epfml/byzantine-robust-decentralized-optimizer) sets τ_i to the second
/// largest neighbour distance, which clips only the farthest neighbour. We use neither as is:
///
///     τ_i = 2 · the lower median of { ‖x̂_j − x̂_self‖ : j a neighbour }
///
/// each neighbour counting once (not by p_ij, so a lied-about sample count cannot buy a vote).
/// Why:
/// - While fewer than half of a peer's neighbours are attackers, the lower median is one of the
///   honest distances or smaller, so attackers cannot inflate τ_i; with the
///   second-largest rule, two colluding neighbours of one peer set each other's radius.
/// - Honest neighbours are clipped only when they are more than twice the median distance
///   away, so without attackers the step is almost always exactly CHOCO's — and the cut set
///   stays a meaningful signal for peer scoring (the second-largest rule clips some honest
///   neighbour every round).
/// - The factor 2 is close to the paper's radius for equal honest distances d and one
///   Byzantine neighbour among equal weights: d·√(honest weight ÷ δ_i) is √3·d ≈ 1.7·d with
///   four neighbours and 2·d with five.
///
/// A peer with a single neighbour is not protected (the median is that neighbour's own
/// distance); `plexus topology check` warns about such peers.
///
/// ## What it preserves
///
/// Unclipped, the step is CHOCO's and keeps the sample-weighted mean fixed. Each clipped
/// neighbour breaks that symmetry for the step (p_ij and p_ji no longer move equal amounts),
/// so the network's fixed point drifts from the exact sample-weighted mean by what clipping
/// removed — measured in README ("Robust aggregation").
///
/// Finite inputs give a finite result: a difference that overflows Float (an attacker's ±3e38)
/// makes that neighbour's distance +∞ and its clipped contribution 0, and the update is
/// written w·x̂_j − w·x̂_self so no product overflows. NaN gives NaN, which the instance refuses.
/// Work: two passes over each copy (distances, then the update), both vectorized; measured
/// with `plexus bench consensus`.
public struct ClippedConsensus: ConsensusRule {
    /// γ in (0, 1].
    public var step: Float
    /// τ_i ÷ the median neighbour distance. Default: 2.
    public var radiusFactor: Double
    /// An upper bound on τ_i that neighbours cannot move (the plan's `clip_anchor` × this peer's
    /// own last local training step; ``GossipSettings/clipAnchor``), or `nil` for none.
    public var radiusCap: Double?

    public init(step: Float, radiusFactor: Double = 2) {
        self.step = step
        self.radiusFactor = radiusFactor
    }

    /// The clipping radius for these neighbour distances (NaN counts as +∞): `radiusFactor` times
    /// the lower median, 0 when there are none.
    public func radius(distances: [Double]) -> Double {
        guard !distances.isEmpty else { return 0 }
        let sorted = distances.map { $0.isNaN ? Double.infinity : $0 }.sorted()
        let tau = radiusFactor * sorted[(sorted.count - 1) / 2]
        guard let radiusCap, radiusCap >= 0 else { return tau }
        return min(tau, radiusCap)
    }

    /// Returns the neighbours whose difference was scaled down (‖x̂_j − x̂_self‖ > τ_i).
    public func step(
        candidate x: UnsafeMutableBufferPointer<Float>, publicCopy s: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour]
    ) -> Set<PeerID> {
        guard !neighbours.isEmpty else { return [] }
        let count = x.count
        return withCopies(neighbours) { copies in
            var distances = [Double](repeating: 0, count: copies.count)
            for (k, c) in copies.enumerated() {
                // Float differences summed in blocks of 256, the blocks in Double: vectorizes, and
                // a difference that overflows Float (±3e38 against ∓3e38) makes the distance +∞,
                // which the radius below scales to nothing.
                var sum = 0.0
                var i = 0
                while i < count {
                    let end = min(i + 256, count)
                    // Eight independent sums, so the compiler may keep them in one vector register.
                    var lanes = SIMD8<Float>()
                    var j = i
                    while j + 8 <= end {
                        let d = SIMD8<Float>(
                            c[j] - s[j], c[j + 1] - s[j + 1], c[j + 2] - s[j + 2], c[j + 3] - s[j + 3],
                            c[j + 4] - s[j + 4], c[j + 5] - s[j + 5], c[j + 6] - s[j + 6], c[j + 7] - s[j + 7]
                        )
                        lanes += d * d
                        j += 8
                    }
                    var block = lanes.sum()
                    while j < end {
                        let d = c[j] - s[j]
                        block += d * d
                        j += 1
                    }
                    sum += Double(block)
                    i = end
                }
                distances[k] = sum.squareRoot()
            }
            let tau = radius(distances: distances)
            var cut: Set<PeerID> = []
            for (k, c) in copies.enumerated() {
                var scale = 1.0
                let d = distances[k]
                if d > tau {  // false for NaN: the NaN reaches x and the instance refuses the step
                    scale = tau / d
                    cut.insert(neighbours[k].peer)
                }
                let w = Float(Double(step) * neighbours[k].weight * scale)
                guard w != 0 else { continue }
                // w·x̂_j − w·x̂_self rather than w·(x̂_j − x̂_self): with w ≤ 1 neither product
                // overflows, so a clipped extreme copy adds a finite amount.
                for i in 0..<count { x[i] += w * c[i] - w * s[i] }
            }
            return cut
        }
    }
}

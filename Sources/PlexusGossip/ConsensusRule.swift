public import PlexusCore

/// One neighbour's part in a consensus step: its mixing weight p_ij (> 0, from ``MixingWeights``)
/// and its public copy x̂_j as this peer holds it.
public struct ConsensusNeighbour: Sendable {
    public var peer: PeerID
    public var weight: Double
    public var copy: [Float]

    public init(peer: PeerID, weight: Double, copy: [Float]) {
        self.peer = peer
        self.weight = weight
        self.copy = copy
    }
}

/// How a peer mixes its neighbours' public copies into its own model at the end of a round: the
/// aggregation seam. A rule is a value of the plan (the plan hash covers its choice), pure and
/// deterministic — the simulator and every node run the same one — and it only proposes: the
/// instance keeps the candidate only if every coordinate is finite (`nonFiniteModel` otherwise).
///
/// A new rule is one conformance plus its plan key (`Plan.Aggregation`, mapped to a rule by
/// ``PlexusCore/Plan/Aggregation/consensusRule(step:)``): ``ChocoConsensus`` (`"mean"`, the
/// default), ``ClippedConsensus`` (`"clipped"`), ``TrimmedMeanConsensus`` (`"trimmed-mean:B"`)
/// and ``MedianConsensus`` (`"median"`). They all take the same inputs: the peer's model, its own
/// public copy and each neighbour's weight and copy.
public protocol ConsensusRule: Sendable {
    /// Writes the stepped model into `candidate`, which holds this peer's model x on entry.
    /// `publicCopy` is x̂_self; `neighbours` are in peer-id order, each with a weight > 0 and a
    /// copy of the model's length. Returns the neighbours whose contribution the rule cut this
    /// step (clipped, or mostly trimmed away): peer scoring counts them.
    func step(
        candidate: UnsafeMutableBufferPointer<Float>, publicCopy: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour]
    ) -> Set<PeerID>
}

/// CHOCO-Gossip's consensus step (Koloskova, Stich & Jaggi 2019): x ← x + γ Σ_j p_ij (x̂_j − x̂_self).
///
/// With a lossless codec and γ = 1 the public copies equal the models, and the step is exact
/// neighbour averaging with the sample-weighted weights p_ij, whose fixed point is the
/// sample-weighted mean of the sites' models.
public struct ChocoConsensus: ConsensusRule {
    /// γ in (0, 1].
    public var step: Float

    public init(step: Float) { self.step = step }

    public func step(
        candidate x: UnsafeMutableBufferPointer<Float>, publicCopy s: UnsafeBufferPointer<Float>, neighbours: [ConsensusNeighbour]
    ) -> Set<PeerID> {
        for neighbour in neighbours {
            let w = step * Float(neighbour.weight)
            neighbour.copy.withUnsafeBufferPointer { c in
                for i in 0..<x.count { x[i] += w * (c[i] - s[i]) }
            }
        }
        return []
    }
}

extension Plan.Aggregation {
    /// The ``ConsensusRule`` this plan value names, with consensus step γ = `step`.
    public func consensusRule(step: Float) -> any ConsensusRule {
        switch self {
        case .mean: ChocoConsensus(step: step)
        case .clipped: ClippedConsensus(step: step)
        case .trimmedMean(let b): TrimmedMeanConsensus(step: step, trim: b)
        case .median: MedianConsensus(step: step)
        }
    }
}

/// Calls `body` with a buffer pointer to each neighbour's copy, in order (nested
/// `withUnsafeBufferPointer` calls, so no pointer outlives its array access).
func withCopies<R>(_ neighbours: [ConsensusNeighbour], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
    var buffers: [UnsafeBufferPointer<Float>] = []
    buffers.reserveCapacity(neighbours.count)
    func nest(_ k: Int) -> R {
        if k == neighbours.count { return body(buffers) }
        return neighbours[k].copy.withUnsafeBufferPointer { copy in
            buffers.append(copy)
            return nest(k + 1)
        }
    }
    return nest(0)
}

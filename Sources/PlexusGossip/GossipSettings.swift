public import PlexusCodec
public import PlexusCore
public import PlexusCrypto

/// A neighbour as the instance knows it: its pinned key and its base mixing weight.
public struct Neighbour: Hashable, Sendable {
    public var publicKey: Ed25519.PublicKey
    /// The symmetric base weight w_ij of the link (Metropolis–Hastings or explicit), in (0, 1).
    public var weight: Double

    public init(publicKey: Ed25519.PublicKey, weight: Double) {
        self.publicKey = publicKey
        self.weight = weight
    }
}

/// How the aggregate weights sites.
public enum SiteWeighting: String, Sendable, Hashable, CaseIterable {
    /// Each site counts by its sample count, as FedAvg does: consensus converges to
    /// Σ n_k x_k ÷ Σ n_k.
    case samples
    /// Each site counts the same: consensus converges to the plain mean.
    case uniform
}

/// Everything an instance is told at creation. Values only; validated by the caller (the
/// topology validator), so violations here are programmer errors.
public struct GossipSettings: Sendable {
    public var me: PeerID
    public var planHash: [UInt8]
    public var codec: CodecSpec
    /// Default: ``DeltaEncoder/defaultZstdLevel``.
    public var zstdLevel: Int = DeltaEncoder.defaultZstdLevel
    /// The CHOCO-Gossip consensus step γ in (0, 1]; 1 with a lossless codec is exact neighbour averaging.
    public var consensusStep: Double = 1
    public var synchrony: Plan.Synchrony = .synchronous
    /// Rounds to run; MUST be ≥ 1.
    public var rounds: Int
    /// How long a synchronous round waits for its neighbours. Default: 10 s.
    public var roundDeadline: Duration = .seconds(10)
    /// Asynchronous mode: a neighbour copy more than this many rounds behind is left out of the
    /// consensus step (its weight stays with the peer itself). Default: 5.
    public var maxStaleness: Int = 5
    /// Envelopes from a neighbour that are ahead of this peer's round are held, at most this
    /// many per neighbour; more are dropped (the neighbour will be asked for a keyframe). Default: 8.
    public var maxBufferedPerNeighbour: Int = 8
    public var weighting: SiteWeighting = .samples
    public var neighbours: [PeerID: Neighbour]

    public init(me: PeerID, planHash: [UInt8], codec: CodecSpec, rounds: Int, neighbours: [PeerID: Neighbour]) {
        precondition(planHash.count == 32, "plan hash must be 32 bytes")
        precondition(rounds >= 1, "rounds must be ≥ 1")
        self.me = me
        self.planHash = planHash
        self.codec = codec
        self.rounds = rounds
        self.neighbours = neighbours
    }
}

/// The mixing weights a peer applies in a consensus step.
///
/// With base weights w_ij (symmetric, rows summing to at most 1) and sample counts n, the
/// sample-weighted matrix is the Metropolis–Hastings chain whose stationary distribution is
/// π ∝ n: p_ij = w_ij · min(1, n_j ÷ n_i) for j ≠ i, p_ii = 1 − Σ_j p_ij. It is row-stochastic
/// and reversible (π_i p_ij = w_ij · min(n_i, n_j) = π_j p_ji), so π·P = π: a consensus step
/// keeps the sample-weighted mean Σ n_k x_k ÷ Σ n_k fixed, and repeated steps converge to it.
/// Between steps only local training moves that mean, by Σ π_k ∇f_k — FedAvg's weighting,
/// with no server.
public enum MixingWeights {
    /// p_ij for each neighbour j of a peer with `samples` rows. Neighbours with an unknown
    /// sample count (no keyframe yet) get weight 0.
    public static func row(
        selfSamples: Int,
        neighbours: [(id: PeerID, baseWeight: Double, samples: Int?)],
        weighting: SiteWeighting
    ) -> [PeerID: Double] {
        var row: [PeerID: Double] = [:]
        for n in neighbours {
            guard let samples = n.samples else {
                row[n.id] = 0
                continue
            }
            switch weighting {
            case .uniform:
                row[n.id] = n.baseWeight
            case .samples:
                let ratio = selfSamples > 0 ? Double(samples) / Double(selfSamples) : 1
                row[n.id] = n.baseWeight * min(1, ratio)
            }
        }
        return row
    }
}

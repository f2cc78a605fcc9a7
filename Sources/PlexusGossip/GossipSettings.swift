public import PlexusCodec
public import PlexusCore
public import PlexusCrypto

/// A neighbour as the instance knows it: its pinned key and its base mixing weight.
public struct Neighbour: Hashable, Sendable {
    public var publicKey: Ed25519.PublicKey
    /// The symmetric base weight w_ij of the link (Metropolis–Hastings or explicit), in (0, 1).
    public var weight: Double
    /// The sample count this neighbour declared in its signed statistics message, when known
    /// (a node knows it once the statistics round completed; the simulator does not): an
    /// envelope advertising another count is refused (`sampleCountMismatch`), so a count can
    /// be no larger a lie than the one the neighbour signed before training began.
    public var declaredSamples: Int?

    public init(publicKey: Ed25519.PublicKey, weight: Double, declaredSamples: Int? = nil) {
        self.publicKey = publicKey
        self.weight = weight
        self.declaredSamples = declaredSamples
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
    /// The plan's `aggregation`: how the peer mixes its neighbours' copies. Default:
    /// ``Plan/Aggregation/mean`` (CHOCO-Gossip).
    public var aggregation: Plan.Aggregation = .mean
    /// The rule of ``aggregation`` with step ``consensusStep``, derived from those two stored
    /// values (so they cannot disagree): every node and the simulator build it the same way
    /// from the plan (`Experiment.gossipSettings`).
    public var consensusRule: any ConsensusRule { aggregation.consensusRule(step: Float(consensusStep)) }
    public var synchrony: Plan.Synchrony = .synchronous
    /// Rounds to run; MUST be ≥ 1.
    public var rounds: Int
    /// The plan's `consensus_rounds`: the last this many of ``rounds`` take no local training
    /// step — the peer only publishes, applies and mixes — so the network ends at (near) one
    /// model. MUST be in 0..<``rounds``. Default: 0 (every round trains).
    public var consensusRounds: Int = 0
    /// The plan's `clip_anchor` κ (``ClippedConsensus/radiusCap``): under `clipped`, τ_i is at
    /// most κ × the norm of this peer's own last local training step, a bound no neighbour can
    /// inflate. 0 (the default): no bound.
    public var clipAnchor: Double = 0
    /// Whether round `r` trains (it is not one of the final ``consensusRounds``).
    public func trains(round r: Int) -> Bool { r <= rounds - consensusRounds }
    /// How long a synchronous round waits for its neighbours. Default: 10 s.
    public var roundDeadline: Duration = .seconds(10)
    /// Asynchronous mode: a neighbour copy more than this many rounds behind is left out of the
    /// consensus step (its weight stays with the peer itself). Default: 5.
    public var maxStaleness: Int = 5
    /// Envelopes from a neighbour that are ahead of this peer's round are held, at most this
    /// many per neighbour; more are dropped (the neighbour will be asked for a keyframe). It is
    /// also the synchronous look-ahead window: an envelope (keyframes included) more than this
    /// many rounds ahead is refused as `tooFarAhead`, except a keyframe reaching a peer that is
    /// joining (round 0). MUST be ≥ 1. Default: 8.
    public var maxBufferedPerNeighbour: Int = 8
    /// Rejected messages one neighbour may cause in one round; the next one makes the instance
    /// emit ``GossipDirective/disconnect(_:reason:)`` (once per round). MUST be ≥ 1. Default: 64.
    public var rejectionBudgetPerRound: Int = 64
    public var weighting: SiteWeighting = .samples
    /// The bounded sample counts (``SampleBasis``), once every site's signed count is known:
    /// the mixing weights use its n′ and S′ instead of the counts the envelopes advertise.
    /// `nil` (before the statistics round, or in a harness without one): the advertised counts.
    public var sampleBasis: SampleBasis?
    /// Where the base weights came from: Metropolis–Hastings (the default) lets sample
    /// weighting use the neighbourhood form of ``MixingWeights``; explicit weights are kept as
    /// the admin wrote them.
    public var mixing: Plan.Mixing = .metropolis
    public var neighbours: [PeerID: Neighbour]
    /// Whether the shell learns every neighbour's signed count (``Neighbour/declaredSamples``)
    /// before it calls ``GossipInstance/start()`` — a node does, from its statistics round.
    /// Then an envelope that arrives before the start, from a neighbour whose count is not
    /// known yet, is held (after its signature is checked) and takes every other check at the
    /// start, the count's included: a lie told early is refused like one told late. Default:
    /// `false` (the simulator and harnesses without a statistics round apply envelopes at once).
    public var countsArriveBeforeStart = false
    /// Peer scoring and quarantine (``PeerScoring``). Default: on, with its documented thresholds.
    public var scoring = PeerScoring.Settings()

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

/// The mixing weights a peer applies in a consensus step: row i of a matrix P that is
/// row-stochastic and reversible with respect to π ∝ n (the sites' sample counts), so that
/// π·P = π. A consensus step therefore keeps the sample-weighted mean Σ n_k x_k ÷ Σ n_k fixed and
/// repeated steps converge to it; between steps only local training moves that mean, by
/// Σ π_k ∇f_k — FedAvg's weighting, with no server.
///
/// - Sample weighting with Metropolis–Hastings base weights (the default):
///   p_ij = n_j ÷ max(S_i, S_j), where S_i = n_i + Σ_{k ~ i} n_k is the sample count of i's
///   closed neighbourhood. Then π_i p_ij = n_i n_j ÷ (N max(S_i, S_j)) is symmetric, and the row
///   sums Σ_j p_ij ≤ (S_i − n_i) ÷ S_i < 1. With equal sample counts this is exactly
///   Metropolis–Hastings, 1 ÷ (1 + max(d_i, d_j)); on a full mesh it is p_ij = n_j ÷ N, so one
///   consensus step is exactly FedAvg's weighted average.
/// - Sample weighting with explicit base weights w_ij (symmetric): the Metropolis–Hastings
///   chain for π, p_ij = w_ij · min(1, n_j ÷ n_i).
/// - Uniform weighting: p_ij = w_ij.
public enum MixingWeights {
    /// One neighbour's entry: its base weight, and its sample counts once known.
    public struct Entry: Sendable {
        public var id: PeerID
        public var baseWeight: Double
        public var samples: Int?
        public var neighbourhoodSamples: Int?

        public init(id: PeerID, baseWeight: Double, samples: Int?, neighbourhoodSamples: Int?) {
            self.id = id
            self.baseWeight = baseWeight
            self.samples = samples
            self.neighbourhoodSamples = neighbourhoodSamples
        }
    }

    /// p_ij for each neighbour j. Neighbours whose sample count is unknown (no envelope yet) get 0.
    public static func row(
        selfSamples: Int,
        selfNeighbourhood: Int,
        neighbours: [Entry],
        weighting: SiteWeighting,
        mixing: Plan.Mixing = .metropolis
    ) -> [PeerID: Double] {
        var row: [PeerID: Double] = [:]
        for n in neighbours {
            guard let samples = n.samples else {
                row[n.id] = 0
                continue
            }
            switch (weighting, mixing) {
            case (.uniform, _):
                row[n.id] = n.baseWeight
            case (.samples, .metropolis):
                if let theirs = n.neighbourhoodSamples, theirs > 0, selfNeighbourhood > 0 {
                    row[n.id] = Double(samples) / Double(max(selfNeighbourhood, theirs))
                } else {
                    row[n.id] = n.baseWeight * min(1, selfSamples > 0 ? Double(samples) / Double(selfSamples) : 1)
                }
            case (.samples, .explicit):
                row[n.id] = n.baseWeight * min(1, selfSamples > 0 ? Double(samples) / Double(selfSamples) : 1)
            }
        }
        return row
    }
}

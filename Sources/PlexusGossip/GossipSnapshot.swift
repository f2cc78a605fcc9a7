public import PlexusCodec
public import PlexusCore

/// Everything a restart needs to resume: the round in progress, both models, the version,
/// the neighbours' copies and the replay window (``GossipInstance/snapshot()``,
/// ``GossipInstance/restore(_:)``).
///
/// A snapshot read back from a state file is outside input: ``validate(parameterCount:rounds:)``
/// checks every field before the instance uses any of it.
public struct GossipSnapshot: Sendable, Equatable {
    /// The largest version a snapshot may hold: 2⁶², so that the instance's version arithmetic
    /// (+2 on restore, +1 per round) can never overflow.
    public static let maximumVersion: UInt64 = 1 << 62

    /// 0 (not started) … rounds + 1 (finished).
    public var round: Int
    public var version: UInt64
    public var parameters: [Float]
    public var publicCopy: [Float]
    public var neighbours: [PeerID: Neighbour]
    public var replayWindow: ReplayWindow
    /// Peer scoring's state per neighbour (``PeerScoring/Persisted``), so that a restart does
    /// not forget a quarantine. Empty in snapshots from before it was kept.
    public var scoring: [PeerID: PeerScoring.Persisted]

    public init(
        round: Int, version: UInt64, parameters: [Float], publicCopy: [Float], neighbours: [PeerID: Neighbour], replayWindow: ReplayWindow,
        scoring: [PeerID: PeerScoring.Persisted] = [:]
    ) {
        self.round = round
        self.version = version
        self.parameters = parameters
        self.publicCopy = publicCopy
        self.neighbours = neighbours
        self.replayWindow = replayWindow
        self.scoring = scoring
    }

    /// One neighbour as persisted.
    public struct Neighbour: Sendable, Equatable {
        public var copy: [Float]?
        public var version: UInt64
        /// The round of the copy (−1 = none).
        public var round: Int
        public var sampleCount: Int?
        public var neighbourhoodSampleCount: Int?

        public init(copy: [Float]?, version: UInt64, round: Int, sampleCount: Int?, neighbourhoodSampleCount: Int?) {
            self.copy = copy
            self.version = version
            self.round = round
            self.sampleCount = sampleCount
            self.neighbourhoodSampleCount = neighbourhoodSampleCount
        }
    }

    /// Why a snapshot cannot be restored: `reason` is ``Reason/wrongParameterCount``,
    /// ``Reason/outOfRange`` or ``Reason/nonFinite``; `message` names the field and quotes its value.
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public var reason: Reason
        public var message: String

        public init(_ reason: Reason, _ message: String) {
            self.reason = reason
            self.message = message
        }

        public var description: String { "snapshot \(reason): \(message)" }
    }

    /// Checks every field against the plan: model sizes, the round (0…rounds + 1), versions
    /// (≤ ``maximumVersion``), neighbour rounds (−1…rounds + 1), sample counts (the envelope's
    /// ranges) and that every vector is finite.
    public func validate(parameterCount n: Int, rounds: Int) throws(Error) {
        guard parameters.count == n, publicCopy.count == n else {
            throw Error(.wrongParameterCount, "a model of \(parameters.count) parameters and a public copy of \(publicCopy.count); the plan has \(n)")
        }
        guard (0...rounds + 1).contains(round) else {
            throw Error(.outOfRange, "round \(round) is outside 0…\(rounds + 1)")
        }
        guard version <= Self.maximumVersion else {
            throw Error(.outOfRange, "version \(version) exceeds the maximum 2^62")
        }
        try Self.checkFinite(parameters, "the model")
        try Self.checkFinite(publicCopy, "the public copy")
        for (peer, saved) in neighbours.sorted(by: { $0.key < $1.key }) {
            if let copy = saved.copy {
                guard copy.count == n else {
                    throw Error(.wrongParameterCount, "the copy of '\(peer)' has \(copy.count) parameters; the plan has \(n)")
                }
                try Self.checkFinite(copy, "the copy of '\(peer)'")
            }
            guard saved.version <= Self.maximumVersion else {
                throw Error(.outOfRange, "the version \(saved.version) of '\(peer)' exceeds the maximum 2^62")
            }
            guard (-1...rounds + 1).contains(saved.round) else {
                throw Error(.outOfRange, "the round \(saved.round) of '\(peer)' is outside -1…\(rounds + 1)")
            }
            if let samples = saved.sampleCount, !(0...Int(DeltaEnvelope.maximumSampleCount)).contains(samples) {
                throw Error(.outOfRange, "the sample count \(samples) of '\(peer)' is outside 0…2^40")
            }
            if let hood = saved.neighbourhoodSampleCount, !(0...Int(DeltaEnvelope.maximumNeighbourhoodSampleCount)).contains(hood) {
                throw Error(.outOfRange, "the neighbourhood sample count \(hood) of '\(peer)' is outside 0…2^52")
            }
        }
        for (peer, state) in scoring.sorted(by: { $0.key < $1.key }) {
            guard state.score.isFinite, (0...PeerScoring.Persisted.maximumScore).contains(state.score) else {
                throw Error(.outOfRange, "the scoring score \(state.score) of '\(peer)' is outside 0…\(Int(PeerScoring.Persisted.maximumScore))")
            }
            for (value, what) in [(state.goodRounds, "good rounds"), (state.quarantines, "quarantines"), (state.stillRounds, "still rounds")]
            where !(0...PeerScoring.Persisted.maximumCount).contains(value) {
                throw Error(.outOfRange, "the scoring \(what) \(value) of '\(peer)' is outside 0…2^31")
            }
        }
    }

    private static func checkFinite(_ values: [Float], _ what: String) throws(Error) {
        if let i = values.withUnsafeBufferPointer({ FiniteVector.firstNonFinite($0) }) {
            throw Error(.nonFinite, "value \(i) of \(what) is NaN or infinite")
        }
    }
}

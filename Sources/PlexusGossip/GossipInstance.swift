public import PlexusCodec
public import PlexusCore
public import PlexusCrypto

/// Local training, as the instance sees it: an injected, deterministic computation.
///
/// Implementations own their seeded randomness (mini-batch order, dropout); the instance
/// calls ``train(_:round:)`` once per round.
public protocol LocalLearner {
    /// The number of training rows at this peer (its weight in the aggregate).
    var sampleCount: Int { get }
    /// Runs the plan's local steps from `parameters`, in place, and returns the training loss.
    mutating func train(_ parameters: inout [Float], round: Int) -> Double
}

/// What the instance asks its shell to do, in order.
public enum GossipDirective: Sendable {
    /// Send these bytes (an encoded ``GossipMessage``) to a neighbour. Dropped by the shell when
    /// there is no session.
    case send(to: PeerID, bytes: [UInt8])
    /// Write this snapshot to stable storage (atomically, durably) before carrying out any
    /// `.send` that follows it in the same list. The instance emits one after sealing each
    /// round's envelope and ahead of that round's sends, and one when the plan's last round is
    /// done, so that every version a neighbour ever receives is covered by a persisted snapshot
    /// (the rule ``GossipInstance/restore(_:)``'s version jump relies on). Keyframes need none:
    /// they carry the current version, whose contents a restore reproduces. A shell without
    /// storage (the simulator) ignores it.
    case persist(GossipSnapshot)
    /// Call ``GossipInstance/deadlinePassed(round:)`` after this long, unless the round
    /// completes first (synchronous mode).
    case scheduleDeadline(round: Int, after: Duration)
    /// A round finished: log it.
    case roundCompleted(RoundReport)
    /// Something worth a log line of its own.
    case event(GossipEvent)
    /// Close the session with this neighbour and back it off before redialling. Emitted once
    /// per round per neighbour, when it exceeds ``GossipSettings/rejectionBudgetPerRound``
    /// (`reason` ``Reason/rejectionBudget``).
    case disconnect(PeerID, reason: Reason)
    /// A neighbour was quarantined, or is still quarantined and offended again: keep these
    /// signed envelopes of it (the last ones it sent, each exactly as received and verified,
    /// at most ``PeerScoring/Settings/evidenceCount`` of them and none kept before) as
    /// evidence for the consortium. A shell without storage (the simulator) counts them.
    case evidence(PeerID, [EvidenceEnvelope])
    /// The plan's last round is done.
    case finished
}

/// A signed envelope kept as evidence against a neighbour (``GossipDirective/evidence(_:_:)``):
/// the bytes verify with ``EnvelopeVerifier`` against the neighbour's pinned key.
public struct EvidenceEnvelope: Sendable, Hashable {
    /// The round this peer was in when the envelope arrived.
    public var round: Int
    /// The envelope's sequence number (its header's).
    public var sequence: UInt64
    public var bytes: [UInt8]

    public init(round: Int, sequence: UInt64, bytes: [UInt8]) {
        self.round = round
        self.sequence = sequence
        self.bytes = bytes
    }
}

/// A notable event, for the convergence log.
public enum GossipEvent: Sendable, Equatable {
    /// A message was dropped (or, `from` this peer itself, a step refused: ``Reason/nonFiniteModel``).
    /// At most one per (peer, reason) per round: the rest are only counted in
    /// ``RoundReport/rejected``, so no flood of bad messages can flood the log.
    case rejected(from: PeerID, reason: Reason, message: String)
    case keyframeSent(to: PeerID, version: UInt64)
    case keyframeRequested(from: PeerID, heldVersion: UInt64)
    /// A synchronous round completed at its deadline without these neighbours' deltas.
    case deadlineMissed(round: Int, missing: [PeerID])
    /// A neighbour added by a reload has never had a session: rounds go on without it until its
    /// first session opens (a hospital added to the file before it starts holds no one up).
    case awaitingFirstSession(PeerID)
    /// Peer scoring quarantined a neighbour (``PeerScoring``): from this round's consensus step
    /// on it has weight 0; its messages are still verified and counted.
    case quarantined(PeerID, why: PeerScoring.Why)
    /// A quarantined neighbour behaved for ``PeerScoring/Settings/releaseAfter`` rounds in a row:
    /// it is mixed in again from this round's step on.
    case released(PeerID)
}

/// One line of the convergence log, as the instance knows it.
public struct RoundReport: Sendable {
    public var peer: PeerID
    public var round: Int
    public var trainingLoss: Double
    /// ‖x − mean of the neighbours' public copies‖, after the consensus step.
    public var consensusDistance: Double
    /// ``consensusDistance`` ÷ ‖x‖ (0 when x = 0).
    public var relativeConsensusDistance: Double
    public var bytesSent: Int
    public var bytesReceived: Int
    /// float32 bytes of the model ÷ bytes of this round's envelope.
    public var compressionRatio: Double
    public var accepted: Int
    /// Every message dropped this round, by reason (events report only the first of each).
    public var rejected: [Reason: Int]
    /// Rounds each neighbour's copy lags this round (0 = up to date).
    public var staleness: [PeerID: Int]
    /// Wall-clock seconds spent training, encoding and applying, from the injected clock.
    public var trainSeconds: Double
    public var encodeSeconds: Double
    public var applySeconds: Double
    /// The model after the consensus step.
    public var parameters: [Float]
    /// Neighbours quarantined in this round's consensus step (``PeerScoring``), in id order.
    public var quarantined: [PeerID] = []
    /// Each measured neighbour's distance from the neighbourhood this round
    /// (``PeerScoring/distances(_:)``; its ratio is `ratio(floor:)` with the settings' floor),
    /// for diagnostics (not logged).
    public var distances: [PeerID: PeerScoring.Distance] = [:]
    /// Each measured neighbour's ``PeerScoring/Observation/movementRatio`` this round, for
    /// diagnostics (not logged).
    public var movements: [PeerID: Double] = [:]
}

/// One peer's side of the compressed gossip protocol (CHOCO-Gossip with sample-weighted
/// Metropolis–Hastings mixing), as a pure state machine.
///
/// - It performs no I/O and reads no clock of its own: the shell delivers messages and
///   deadlines and carries out the returned ``GossipDirective``s; `clock` (injected) is read
///   only to report phase times.
/// - Per round: local training; q = C(x − x̂_self) sealed as a signed envelope and sent to
///   every neighbour (x̂_self += q); verified neighbour deltas update their public copies x̂_j;
///   then the consensus step x ← x + γ Σ_j p_ij (x̂_j − x̂_self).
/// - Envelope sequence numbers are versions of the public copy x̂_self. The first message of a
///   session is a keyframe (the whole copy); a receiver that sees a delta whose base is not the
///   version it holds drops it and asks for a keyframe. So lost, duplicated and reordered
///   messages never corrupt a copy.
/// - Synchronous mode holds envelopes from future rounds until this peer reaches them, so the
///   result does not depend on message timing: the simulator and real nodes agree bit for bit.
///
/// Validly signed messages are still outside input. The instance MUST NOT trap or go silent on
/// any of them:
/// - header counts and rounds are range-checked by the verifier (`outOfRange`), the codec must
///   be the plan's (keyframes lossless; `wrongCodec`), and sums of counts saturate;
/// - a delta is decoded into a scratch buffer and added to a copy of x̂_j there; only a finite
///   result replaces the copy (`nonFinite`, `nonFiniteResult`), so a rejected message changes
///   nothing;
/// - a training or consensus step that would make x non-finite is refused (x keeps its last
///   good value, event `nonFiniteModel`) and the round's envelope is still sent;
/// - synchronous envelopes more than ``GossipSettings/maxBufferedPerNeighbour`` rounds ahead
///   are refused (`tooFarAhead`; a joining peer, at round 0, accepts keyframes of any round of
///   the plan), and rounds beyond the plan are refused in both modes (`outOfRange`); a
///   neighbour counts as ready for round r only once an envelope of round r was delivered;
/// - one keyframe answer per neighbour per round (`keyframeBudget`), one `.rejected` event
///   per (neighbour, reason) per round, and a `.disconnect` once a neighbour exceeds
///   ``GossipSettings/rejectionBudgetPerRound``.
public struct GossipInstance<Learner: LocalLearner> {
    public private(set) var settings: GossipSettings
    public private(set) var learner: Learner
    private var key: Ed25519.PrivateKey
    private let clock: () -> Duration

    /// x: this peer's model.
    public private(set) var parameters: [Float]
    /// x̂_self: the copy of x its neighbours hold.
    public private(set) var publicCopy: [Float]
    /// The version of ``publicCopy`` (the sequence of the last envelope made).
    public private(set) var version: UInt64
    /// The round in progress (1…rounds), or rounds + 1 when finished; 0 before ``start()``.
    public private(set) var round: Int = 0
    public private(set) var replayWindow = ReplayWindow()
    public private(set) var neighbourStates: [PeerID: NeighbourState]

    private var order: [PeerID]
    private let encoder: DeltaEncoder
    private let decoder = DeltaDecoder()
    private let verifier: EnvelopeVerifier
    /// Model-sized scratch buffers, reused so that the receive path allocates nothing per
    /// message: `scratch` holds q and the consensus step's candidate x, `incoming` a decoded
    /// delta (then the candidate copy it gives), `lastGood` x before training.
    private var scratch: [Float]
    private var incoming: [Float]
    private var lastGood: [Float]
    private var lastLoss: Double = .nan
    /// ‖x after − x before‖ of this peer's last local training step (kept through the
    /// consensus-only rounds): the anchor of ``GossipSettings/clipAnchor``.
    private var lastLocalStep = 0.0
    private var roundStats = RoundStats()
    private var lastEnvelope: [UInt8] = []
    /// S_i as advertised in this round's envelope, and the neighbours it counted: this round's
    /// consensus step uses the same value, and only those neighbours, so that p_ij and p_ji are
    /// computed from the same pair (S_i, S_j).
    private var advertisedNeighbourhood = 0
    private var advertisedKnown: Set<PeerID> = []
    private var started = false
    /// Envelopes verified before ``start()`` — while the statistics round, which brings every
    /// site's signed sample count, is still running — held per neighbour (a keyframe replaces
    /// what its sender had held) and checked in full, count included, when training starts:
    /// an envelope's count is never believed for want of the count it must match.
    private var beforeStart: [PeerID: [(envelope: DeltaEnvelope, bytes: [UInt8])]] = [:]
    /// Set while the envelopes held before the start are replayed: a round begins only after.
    private var replaying = false
    /// The publish seam (``PublishTransform``): rewrites each round's update before it is sealed;
    /// `nil` (every real node today) publishes u = x − x̂_self unchanged.
    private var publishTransform: (any PublishTransform)?
    /// Neighbours added by a reload that have not had a session yet: left out of the barrier.
    private var awaitingFirstSession: Set<PeerID> = []
    /// Peer scoring (issue 12): who is quarantined, and why.
    public private(set) var scoring: PeerScoring
    /// Offending rejections per neighbour since the last round completed (``PeerScoring``).
    private var offences: [PeerID: Int] = [:]
    /// The neighbours the consensus rule cut in the last step: they cost at the next round's end.
    private var lastCut: Set<PeerID> = []
    private var lastDistances: [PeerID: PeerScoring.Distance] = [:]
    /// How far each neighbour's copy moved since the last round completed (the sum of the norms
    /// of the changes applied to it; +∞ for a first copy), and how far this peer's own public
    /// copy moved in the round in progress, with its norm: the ``PeerScoring`` movement ratio.
    private var moved: [PeerID: Double] = [:]
    private var ownMoved = 0.0
    private var ownSize = 0.0
    private var lastMovements: [PeerID: Double] = [:]
    /// Per neighbour, its last verified envelopes (bounded by count and bytes), and whether each
    /// was already handed out as evidence.
    private var recentEnvelopes: [PeerID: [(envelope: EvidenceEnvelope, saved: Bool)]] = [:]

    /// S_i = n_i + the sample counts of the neighbours heard from so far, saturating at
    /// ``DeltaEnvelope/maximumNeighbourhoodSampleCount`` (never reached with ≤ 4095 neighbours,
    /// whose counts are each ≤ 2⁴⁰; the cap keeps this peer's own envelopes in range).
    private var neighbourhoodSampleCount: Int {
        let cap = Int(DeltaEnvelope.maximumNeighbourhoodSampleCount)
        var total = min(max(learner.sampleCount, 0), cap)
        for peer in order {
            guard let n = neighbourStates[peer]?.sampleCount else { continue }
            total = min(total + min(max(n, 0), cap), cap)  // both ≤ 2⁵²: no overflow
        }
        return total
    }

    /// What the instance holds about one neighbour.
    public struct NeighbourState: Sendable {
        /// x̂_j, once a keyframe arrived.
        public var copy: [Float]?
        /// The version of ``copy`` (0 = none).
        public var version: UInt64 = 0
        /// The round of the copy: the highest round of an envelope applied (−1 = none). A
        /// keyframe may carry a round ahead of this peer's.
        public var round: Int = -1
        /// The highest round r of which an envelope was delivered while this peer was at
        /// round r or later (−1 = none): a synchronous round r is complete for this neighbour
        /// only when this is ≥ r, and staleness is measured from it. A joining peer (round 0)
        /// counts the rounds of the keyframes it adopts.
        public var deliveredRound: Int = -1
        public var sampleCount: Int?
        /// S_j from its latest envelope: its sample count plus its neighbours'.
        public var neighbourhoodSampleCount: Int?
        /// Verified envelopes from rounds this peer has not reached yet, in arrival order.
        var held: [(header: DeltaEnvelope.Header, delta: EncodedDelta)] = []
        /// The round in which a keyframe was last requested, while one is outstanding.
        var keyframeRequestedInRound: Int?
    }

    private struct RejectionKey: Hashable {
        var peer: PeerID
        var reason: Reason
    }

    /// Counters of the round in progress (reset when a round begins).
    private struct RoundStats {
        var bytesSent = 0
        var bytesReceived = 0
        var accepted = 0
        var rejected: [Reason: Int] = [:]
        var applySeconds = 0.0
        /// (peer, reason) pairs already reported by an event this round.
        var reported: Set<RejectionKey> = []
        /// Rejected messages per neighbour this round, against the rejection budget.
        var rejectedBy: [PeerID: Int] = [:]
        /// Neighbours asked to be disconnected this round.
        var disconnected: Set<PeerID> = []
        /// Neighbours whose keyframe request was answered this round.
        var keyframesAnswered: Set<PeerID> = []
    }

    /// - Parameters:
    ///   - initialParameters: x₀; every peer of a plan starts from the same x₀.
    ///   - version: the last version this peer ever signed (0 for a new peer; MUST be ≤
    ///     ``GossipSnapshot/maximumVersion``); restored state passes its persisted value so that
    ///     sequence numbers never repeat.
    ///   - clock: a monotonic clock, read only for the phase times in ``RoundReport``.
    ///   - publishTransform: rewrites each round's update before it is sealed (see
    ///     ``PublishTransform``). Default: none, the protocol as specified.
    public init(
        settings: GossipSettings,
        key: Ed25519.PrivateKey,
        learner: Learner,
        initialParameters: [Float],
        version: UInt64 = 0,
        clock: @escaping () -> Duration,
        publishTransform: (any PublishTransform)? = nil
    ) {
        precondition(version <= GossipSnapshot.maximumVersion, "version \(version) exceeds 2^62")
        self.settings = settings
        self.key = key
        self.learner = learner
        self.clock = clock
        self.parameters = initialParameters
        self.publicCopy = initialParameters
        self.version = version + 1
        self.order = settings.neighbours.keys.sorted()
        self.neighbourStates = Dictionary(uniqueKeysWithValues: order.map { ($0, NeighbourState()) })
        self.encoder = DeltaEncoder(codec: settings.codec, zstdLevel: settings.zstdLevel)
        self.verifier = EnvelopeVerifier(planHash: settings.planHash, parameterCount: initialParameters.count, codec: settings.codec)
        self.scratch = [Float](repeating: 0, count: initialParameters.count)
        self.incoming = scratch
        self.lastGood = scratch
        self.publishTransform = publishTransform
        self.scoring = PeerScoring(settings: settings.scoring)
    }

    public var isFinished: Bool { round > settings.rounds }

    /// Gives the shell access to the learner, e.g. to hand it its standardized data once the
    /// pooled statistics are known (before ``start()``).
    public mutating func withLearner<R>(_ body: (inout Learner) -> R) -> R { body(&learner) }

    // MARK: Persistence and reconfiguration

    /// What ``snapshot()`` returns and ``restore(_:)`` takes (the same for every learner).
    public typealias Snapshot = GossipSnapshot
    public typealias PersistedNeighbour = GossipSnapshot.Neighbour

    public func snapshot() -> Snapshot {
        Snapshot(
            round: round, version: version, parameters: parameters, publicCopy: publicCopy,
            neighbours: neighbourStates.mapValues {
                PersistedNeighbour(copy: $0.copy, version: $0.version, round: $0.round, sampleCount: $0.sampleCount, neighbourhoodSampleCount: $0.neighbourhoodSampleCount)
            },
            replayWindow: replayWindow,
            scoring: scoring.persisted
        )
    }

    /// Resumes from `snapshot` (taken by a previous run of this peer).
    ///
    /// The snapshot is validated first (``GossipSnapshot/validate(parameterCount:rounds:)``);
    /// when it throws, the instance is unchanged.
    ///
    /// The version jumps by 2 past the snapshot's, so that no sequence number this peer signed
    /// before a crash is ever signed again with other contents: a snapshot is persisted
    /// (``GossipDirective/persist(_:)``) before the messages of the version it holds are sent,
    /// so at most the next version was signed after it. Every new session starts with a
    /// keyframe, which brings neighbours to the restored copy. A neighbour's round-r delivery is
    /// not trusted across the restart for the round in progress: its keyframe on the new
    /// session (or the deadline) completes the round.
    public mutating func restore(_ snapshot: Snapshot) throws(GossipSnapshot.Error) {
        try snapshot.validate(parameterCount: parameters.count, rounds: settings.rounds)
        round = snapshot.round
        version = snapshot.version + 2
        parameters = snapshot.parameters
        publicCopy = snapshot.publicCopy
        replayWindow = snapshot.replayWindow
        for peer in order {
            guard let saved = snapshot.neighbours[peer] else { continue }
            var state = NeighbourState()
            state.copy = saved.copy
            state.version = saved.version
            state.round = saved.round
            state.deliveredRound = min(saved.round, round - 1)
            state.sampleCount = saved.sampleCount
            state.neighbourhoodSampleCount = saved.neighbourhoodSampleCount
            neighbourStates[peer] = state
        }
        scoring.restore(snapshot.scoring, peers: Set(order))
        started = round >= 1
    }

    /// After a restore: carry on with the round in progress (its deadline, and completion if
    /// every neighbour already delivered it).
    public mutating func resume() -> [GossipDirective] {
        var directives: [GossipDirective] = []
        if isFinished {
            directives.append(.finished)
            return directives
        }
        guard round >= 1 else { return start() }
        started = true
        replayHeldBeforeStart(into: &directives)
        if settings.synchrony == .synchronous {
            directives.append(.scheduleDeadline(round: round, after: settings.roundDeadline))
            completeIfReady(into: &directives)
        }
        return directives
    }

    /// Every site's signed count is known (the statistics round completed, or a reload changed
    /// the pins or the graph): the mixing weights use `basis` from the next consensus step on.
    public mutating func updateSampleBasis(_ basis: SampleBasis?) {
        settings.sampleBasis = basis
    }

    /// This peer's key was rotated: envelopes from now on are signed with `newKey` (neighbours
    /// that still pin the old key drop them as `badSignature` and ask for a keyframe once they
    /// reload). Each open session gets a keyframe signed with the new key.
    public mutating func updateKey(_ newKey: Ed25519.PrivateKey) -> [GossipDirective] {
        key = newKey
        var directives: [GossipDirective] = []
        for peer in order { sendKeyframe(to: peer, into: &directives) }
        return directives
    }

    /// The topology changed (a live reload): neighbours added get a fresh state (their first
    /// envelope will be a keyframe), neighbours removed are forgotten, weights and keys change
    /// from the next message on.
    public mutating func updateNeighbours(_ neighbours: [PeerID: Neighbour]) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        settings.neighbours = neighbours
        order = neighbours.keys.sorted()
        for peer in neighbourStates.keys where neighbours[peer] == nil {
            neighbourStates[peer] = nil
            awaitingFirstSession.remove(peer)
            scoring.forget(peer)
            offences[peer] = nil
            lastCut.remove(peer)
            moved[peer] = nil
            recentEnvelopes[peer] = nil
            beforeStart[peer] = nil
        }
        for peer in order where neighbourStates[peer] == nil {
            neighbourStates[peer] = NeighbourState()
            // A neighbour added while rounds run: until its first session it holds no round.
            if started && round >= 1 {
                awaitingFirstSession.insert(peer)
                directives.append(.event(.awaitingFirstSession(peer)))
            }
        }
        completeIfReady(into: &directives)
        return directives
    }

    // MARK: Events from the shell

    /// Begins round 1 — in synchronous mode once every neighbour's keyframe has arrived (or
    /// the round deadline passed), so that the first round already knows every sample count.
    public mutating func start() -> [GossipDirective] {
        precondition(!started, "start() called twice")
        started = true
        var directives: [GossipDirective] = []
        replayHeldBeforeStart(into: &directives)
        if settings.synchrony == .synchronous && !order.allSatisfy({ neighbourStates[$0]?.copy != nil }) {
            directives.append(.scheduleDeadline(round: 0, after: settings.roundDeadline))
        } else {
            beginRound(1, into: &directives)
        }
        return directives
    }

    /// A session with `peer` opened: it gets a keyframe of the current public copy.
    public mutating func sessionOpened(with peer: PeerID) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        guard settings.neighbours[peer] != nil else { return directives }
        awaitingFirstSession.remove(peer)
        sendKeyframe(to: peer, into: &directives)
        return directives
    }

    /// Bytes arrived from `peer` (the authenticated sender, for the network shell).
    public mutating func receive(_ bytes: [UInt8], from peer: PeerID) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        guard settings.neighbours[peer] != nil else {
            reject(from: peer, .unknownPeer, "message from '\(peer)', which is not a neighbour", into: &directives)
            return directives
        }
        roundStats.bytesReceived += bytes.count
        let message: GossipMessage
        do {
            message = try GossipMessage(decoding: bytes)
        } catch {
            reject(from: peer, .badMessage, error.description, into: &directives)
            return directives
        }
        switch message {
        case .keyframeRequest(let held):
            guard roundStats.keyframesAnswered.insert(peer).inserted else {
                reject(from: peer, .keyframeBudget, "another keyframe request in round \(round); one is answered per round", into: &directives)
                return directives
            }
            directives.append(.event(.keyframeRequested(from: peer, heldVersion: held)))
            sendKeyframe(to: peer, into: &directives)
        case .envelope(let envelopeBytes):
            receiveEnvelope(envelopeBytes, from: peer, into: &directives)
        }
        return directives
    }

    /// The deadline of `round` passed (synchronous mode): complete it with what has arrived.
    public mutating func deadlinePassed(round deadlineRound: Int) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        guard deadlineRound == round, !isFinished, settings.synchrony == .synchronous, started else { return directives }
        if round == 0 {
            beginFirstRound(into: &directives)
            return directives
        }
        let missing = order.filter { !isReady($0) }
        if !missing.isEmpty { directives.append(.event(.deadlineMissed(round: round, missing: missing))) }
        completeRound(into: &directives)
        return directives
    }

    /// Asynchronous mode: this peer's own round timer fired; complete the round with what has
    /// arrived (copies more than `maxStaleness` rounds old are left out) and begin the next.
    public mutating func tick() -> [GossipDirective] {
        var directives: [GossipDirective] = []
        guard settings.synchrony == .asynchronous, round >= 1, !isFinished else { return directives }
        completeRound(into: &directives)
        return directives
    }

    // MARK: Rounds

    /// Whether `peer` delivered an envelope of the round in progress — or was added by a reload
    /// and has never had a session, so there is nothing to wait for.
    private func isReady(_ peer: PeerID) -> Bool {
        awaitingFirstSession.contains(peer) || (neighbourStates[peer]?.deliveredRound ?? -1) >= round
    }

    /// Round 1 — or, for a peer joining a network that is already under way (its neighbours'
    /// keyframes come from later rounds), the neighbours' round, starting from the
    /// sample-weighted mean of their models rather than from x₀.
    private mutating func beginFirstRound(into directives: inout [GossipDirective]) {
        let rounds = order.compactMap { peer in neighbourStates[peer].flatMap { $0.copy != nil ? $0.round : nil } }
        guard let joinRound = rounds.min(), joinRound >= 1 else {
            beginRound(1, into: &directives)
            return
        }
        adoptNeighbourhoodMean(into: &directives)
        beginRound(min(joinRound, settings.rounds), into: &directives)
    }

    /// x ← the sample-weighted mean of the neighbours' copies (a joining or rejoining peer); under
    /// a robust `aggregation`, their coordinate-wise median instead (one vote each), so that one
    /// neighbour cannot set the model a peer starts from.
    private mutating func adoptNeighbourhoodMean(into directives: inout [GossipDirective]) {
        if settings.aggregation.isRobust {
            let copies = order.compactMap { peer in neighbourStates[peer]?.copy.map { (peer: peer, copy: $0) } }
            guard let joined = MedianConsensus.median(of: copies) else { return }
            if joined.withUnsafeBufferPointer(FiniteVector.allFinite) {
                parameters = joined
            } else {
                reject(from: settings.me, .nonFiniteModel, "the median of the neighbours' models is not finite; keeping this model", into: &directives)
            }
            return
        }
        var total = 0.0
        var mean = [Double](repeating: 0, count: parameters.count)
        for peer in order {
            guard let state = neighbourStates[peer], let copy = state.copy else { continue }
            let weight = Double(max(settings.sampleBasis?.counts[peer] ?? state.sampleCount ?? 1, 1))
            total += weight
            for i in mean.indices { mean[i] += weight * Double(copy[i]) }
        }
        // Finite copies and weights ≤ 2⁴⁰ give a finite mean; keep x₀ if not (it is already good).
        let joined = mean.map { Float($0 / total) }
        if joined.withUnsafeBufferPointer(FiniteVector.allFinite) {
            parameters = joined
        } else {
            reject(from: settings.me, .nonFiniteModel, "the mean of the neighbours' models is not finite; keeping this model", into: &directives)
        }
    }

    private mutating func beginRound(_ r: Int, into directives: inout [GossipDirective]) {
        round = r
        roundStats = RoundStats()
        let t0 = clock()
        lastGood.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: parameters) }
        // The plan's final `consensus_rounds` only gossip: no local step, no training loss.
        lastLoss = settings.trains(round: r) ? learner.train(&parameters, round: r) : .nan
        if settings.trains(round: r) && settings.clipAnchor > 0 {
            lastLocalStep = lastGood.withUnsafeBufferPointer { a in parameters.withUnsafeBufferPointer { Self.distance(a, $0) } }
        }
        if !parameters.withUnsafeBufferPointer(FiniteVector.allFinite) {
            swap(&parameters, &lastGood)
            reject(from: settings.me, .nonFiniteModel, "training in round \(r) gave a non-finite model; it keeps the model from before the step", into: &directives)
        }
        let t1 = clock()
        advertisedNeighbourhood = neighbourhoodSampleCount
        advertisedKnown = Set(order.filter { neighbourStates[$0]?.sampleCount != nil })
        let header = DeltaEnvelope.Header(
            kind: .delta, planHash: settings.planHash, origin: settings.me, sequence: version + 1,
            round: UInt64(r), baseSequence: version, sampleCount: UInt64(clamping: learner.sampleCount),
            neighbourhoodSampleCount: UInt64(advertisedNeighbourhood)
        )
        // q = C(x − x̂_self); x̂_self += q exactly as receivers will decode it, computed into
        // `incoming` and kept only if finite.
        for i in parameters.indices { scratch[i] = parameters[i] - publicCopy[i] }
        if publishTransform != nil { transformUpdate(round: r) }
        ownMoved = 0
        var envelope = sealDelta(header: header)
        if envelope == nil {
            // x − x̂_self or x̂_self + q is not finite: x falls back to x̂_self and this round
            // sends an empty delta, so neighbours still hear from this peer.
            reject(from: settings.me, .nonFiniteModel, "the round-\(r) delta or the public copy it gives is not finite; it falls back to its public copy", into: &directives)
            parameters.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: publicCopy) }
            scratch.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            envelope = sealDelta(header: header)
        }
        if let envelope {
            version += 1
            lastEnvelope = envelope
            // Persisted before the new version leaves (restore's version-jump rule).
            directives.append(.persist(snapshot()))
            let message = GossipMessage.envelope(envelope).encoded()
            for peer in order {
                directives.append(.send(to: peer, bytes: message))
                roundStats.bytesSent += message.count
            }
        }
        let t2 = clock()
        afterSend(trainSeconds: seconds(t1 - t0), encodeSeconds: seconds(t2 - t1), into: &directives)
    }

    /// Lets the publish transform rewrite the update in `scratch` (u = x − x̂_self). The context
    /// shares the model's and the copies' storage only for the call, so the buffers the seal
    /// swaps stay uniquely owned.
    private mutating func transformUpdate(round r: Int) {
        guard var transform = publishTransform else { return }
        let context = PublishContext(
            round: r, model: parameters, publicCopy: publicCopy,
            neighbours: order.compactMap { peer in
                guard let copy = neighbourStates[peer]?.copy, let neighbour = settings.neighbours[peer] else { return nil }
                return PublishNeighbour(peer: peer, weight: neighbour.weight, copy: copy)
            }
        )
        publishTransform = nil  // `transform` owns its state during the call
        scratch.withUnsafeMutableBufferPointer { transform.transform(update: $0, context: context) }
        publishTransform = transform
    }

    /// Seals `scratch` (q) under `header` and moves x̂_self by what receivers will decode;
    /// `nil`, with nothing changed, when q or the new x̂_self would not be finite.
    private mutating func sealDelta(header: DeltaEnvelope.Header) -> [UInt8]? {
        let sealed: [UInt8]
        let (encoder, key) = (self.encoder, self.key)
        do {
            sealed = try scratch.withUnsafeBufferPointer { q in
                try incoming.withUnsafeMutableBufferPointer { d in try encoder.seal(q, header: header, key: key, reconstruct: d) }
            }
        } catch {
            return nil
        }
        let step = settings.scoring.enabled ? incoming.withUnsafeBufferPointer(Self.norm) : 0
        let finite = publicCopy.withUnsafeBufferPointer { s in incoming.withUnsafeMutableBufferPointer { FiniteVector.add(s, into: $0) } }
        guard finite else { return nil }
        swap(&publicCopy, &incoming)
        if settings.scoring.enabled {
            ownMoved = step
            ownSize = publicCopy.withUnsafeBufferPointer(Self.norm)
        }
        return sealed
    }

    private var phaseTimes = (train: 0.0, encode: 0.0)

    private mutating func afterSend(trainSeconds: Double, encodeSeconds: Double, into directives: inout [GossipDirective]) {
        phaseTimes = (trainSeconds, encodeSeconds)
        guard settings.synchrony == .synchronous else { return }
        // Envelopes held for this round can be applied now.
        for peer in order { applyHeld(from: peer, into: &directives) }
        directives.append(.scheduleDeadline(round: round, after: settings.roundDeadline))
        completeIfReady(into: &directives)
    }

    private mutating func completeIfReady(into directives: inout [GossipDirective]) {
        guard settings.synchrony == .synchronous, started, !isFinished else { return }
        if round == 0 {
            if order.allSatisfy({ neighbourStates[$0]?.copy != nil }) { beginFirstRound(into: &directives) }
            return
        }
        if order.allSatisfy(isReady) {
            completeRound(into: &directives)
        }
    }

    private mutating func completeRound(into directives: inout [GossipDirective]) {
        let t0 = clock()
        // Consensus step (the plan's ``ConsensusRule``; CHOCO: x ← x + γ Σ_j p_ij (x̂_j − x̂_self)),
        // neighbours in id order, computed into `scratch` and kept only if finite.
        // With a sample basis, n′ and S′ come from it (the same values at both ends of every
        // link); a neighbour it does not know yet (added by a reload) is weighed by what it
        // advertises, its count held to the basis's bound.
        let basis = settings.sampleBasis
        let selfBasis = basis.flatMap { b in b.counts[settings.me].flatMap { n in b.neighbourhoods[settings.me].map { (n, $0) } } }
        let row = MixingWeights.row(
            selfSamples: selfBasis?.0 ?? learner.sampleCount,
            selfNeighbourhood: selfBasis?.1 ?? advertisedNeighbourhood,
            neighbours: order.map { peer in
                let state = neighbourStates[peer]!
                let current = settings.synchrony == .synchronous || round - state.round <= settings.maxStaleness
                if selfBasis != nil, let n = basis?.counts[peer], let hood = basis?.neighbourhoods[peer] {
                    return MixingWeights.Entry(
                        id: peer, baseWeight: settings.neighbours[peer]!.weight,
                        samples: current && state.sampleCount != nil ? n : nil, neighbourhoodSamples: hood
                    )
                }
                let fresh = current && advertisedKnown.contains(peer)
                let advertised = state.sampleCount.map { n in basis?.bound.map { min(n, $0) } ?? n }
                return MixingWeights.Entry(
                    id: peer, baseWeight: settings.neighbours[peer]!.weight,
                    samples: fresh ? advertised : nil, neighbourhoodSamples: state.neighbourhoodSampleCount
                )
            },
            weighting: settings.weighting,
            mixing: settings.mixing
        )
        let candidates = order.compactMap { peer -> ConsensusNeighbour? in
            guard let weight = row[peer], weight > 0, let copy = neighbourStates[peer]?.copy else { return nil }
            return ConsensusNeighbour(peer: peer, weight: weight, copy: copy)
        }
        // Peer scoring, before the step: a neighbour quarantined now is already left out of it.
        score(candidates, into: &directives)
        let inputs = candidates.filter { !scoring.isQuarantined($0.peer) }
        scratch.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: parameters) }
        var rule = settings.consensusRule
        if settings.clipAnchor > 0, var clipped = rule as? ClippedConsensus {
            clipped.radiusCap = settings.clipAnchor * lastLocalStep
            rule = clipped
        }
        lastCut = scratch.withUnsafeMutableBufferPointer { x in
            publicCopy.withUnsafeBufferPointer { rule.step(candidate: x, publicCopy: $0, neighbours: inputs) }
        }
        if scratch.withUnsafeBufferPointer(FiniteVector.allFinite) {
            swap(&parameters, &scratch)
        } else {
            reject(from: settings.me, .nonFiniteModel, "the consensus step of round \(round) gave a non-finite model; it keeps the model from before the step", into: &directives)
        }
        let t1 = clock()
        // Consensus distance: ‖x − mean of neighbours' copies‖.
        var distance = 0.0
        var norm = 0.0
        let copies = order.compactMap { neighbourStates[$0]?.copy }
        if !copies.isEmpty {
            let inverse = 1 / Double(copies.count)
            for i in parameters.indices {
                var mean = 0.0
                for c in copies { mean += Double(c[i]) }
                let d = Double(parameters[i]) - mean * inverse
                distance += d * d
                norm += Double(parameters[i]) * Double(parameters[i])
            }
        }
        distance = distance.squareRoot()
        norm = norm.squareRoot()
        let report = RoundReport(
            peer: settings.me,
            round: round,
            trainingLoss: lastLoss,
            consensusDistance: distance,
            relativeConsensusDistance: norm > 0 ? distance / norm : 0,
            bytesSent: roundStats.bytesSent,
            bytesReceived: roundStats.bytesReceived,
            compressionRatio: lastEnvelope.isEmpty ? 0 : Double(4 * parameters.count) / Double(lastEnvelope.count),
            accepted: roundStats.accepted,
            rejected: roundStats.rejected,
            staleness: Dictionary(uniqueKeysWithValues: order.map { ($0, max(0, round - (neighbourStates[$0]?.deliveredRound ?? 0))) }),
            trainSeconds: phaseTimes.train,
            encodeSeconds: phaseTimes.encode,
            applySeconds: roundStats.applySeconds + seconds(t1 - t0),
            parameters: parameters,
            quarantined: order.filter(scoring.isQuarantined),
            distances: lastDistances,
            movements: lastMovements
        )
        directives.append(.roundCompleted(report))
        if round >= settings.rounds {
            round = settings.rounds + 1
            directives.append(.persist(snapshot()))
            directives.append(.finished)
        } else {
            beginRound(round + 1, into: &directives)
        }
    }

    // MARK: Peer scoring

    /// One round of ``PeerScoring``: each neighbour's offending rejections since the last round,
    /// whether the rule cut it in the last step, and — when its copy enters this step — its
    /// distance ratio in the closed neighbourhood (this peer's public copy and the copies of
    /// `candidates`, quarantined ones included). Emits the transitions as events, and evidence
    /// for a neighbour quarantined now or offending again while quarantined.
    private mutating func score(_ candidates: [ConsensusNeighbour], into directives: inout [GossipDirective]) {
        guard settings.scoring.enabled else { return }
        var distances: [PeerID: PeerScoring.Distance] = [:]
        let measured = PeerScoring.distances([publicCopy] + candidates.map(\.copy))
        for (i, candidate) in candidates.enumerated() where i + 1 < measured.count { distances[candidate.peer] = measured[i + 1] }
        let floor = settings.scoring.distanceFloor
        // The movement ratio: only for a neighbour that delivered this round, and only when this
        // peer's own copy moved measurably (the ratio is +∞ for a first copy, NaN-free: ownMoved > 0).
        let ownMoves = ownMoved > 0 && ownMoved.isFinite && ownMoved >= settings.scoring.movementFloor * ownSize
        var movements: [PeerID: Double] = [:]
        var observations: [PeerID: PeerScoring.Observation] = [:]
        for peer in order {
            if ownMoves, (neighbourStates[peer]?.deliveredRound ?? -1) >= round, let m = moved[peer] { movements[peer] = m / ownMoved }
            observations[peer] = PeerScoring.Observation(
                offendingRejections: offences[peer] ?? 0, cut: lastCut.contains(peer), distanceRatio: distances[peer]?.ratio(floor: floor),
                movementRatio: movements[peer]
            )
        }
        offences.removeAll(keepingCapacity: true)
        moved.removeAll(keepingCapacity: true)
        lastDistances = distances
        lastMovements = movements
        let before = scoring.quarantined
        var newly: Set<PeerID> = []
        for transition in scoring.observe(observations) {
            switch transition {
            case .quarantined(let peer, let why):
                newly.insert(peer)
                directives.append(.event(.quarantined(peer, why: why)))
            case .released(let peer):
                directives.append(.event(.released(peer)))
            }
        }
        for peer in order
        where newly.contains(peer)
            || (before.contains(peer) && scoring.isQuarantined(peer)
                && scoring.penalty(observations[peer]!, stillRounds: scoring.states[peer]?.stillRounds ?? 0).total > 0)
        {
            guard var recent = recentEnvelopes[peer] else { continue }
            let unsaved = recent.filter { !$0.saved }.map(\.envelope)
            guard !unsaved.isEmpty else { continue }
            for i in recent.indices { recent[i].saved = true }
            recentEnvelopes[peer] = recent
            directives.append(.evidence(peer, unsaved))
        }
    }

    /// Keeps a verified envelope of `peer` among its recent ones (the evidence if it is
    /// quarantined): the last ``PeerScoring/Settings/evidenceCount``, within
    /// ``PeerScoring/Settings/evidenceBytes`` (the newest always kept).
    private mutating func remember(_ bytes: [UInt8], sequence: UInt64, from peer: PeerID) {
        guard settings.scoring.enabled else { return }
        var recent = recentEnvelopes[peer] ?? []
        recent.append((EvidenceEnvelope(round: round, sequence: sequence, bytes: bytes), false))
        var total = recent.reduce(0) { $0 + $1.envelope.bytes.count }
        while recent.count > 1 && (recent.count > settings.scoring.evidenceCount || total > settings.scoring.evidenceBytes) {
            total -= recent.removeFirst().envelope.bytes.count
        }
        recentEnvelopes[peer] = recent
    }

    // MARK: Envelopes

    private mutating func receiveEnvelope(_ bytes: [UInt8], from peer: PeerID, into directives: inout [GossipDirective]) {
        let envelope: DeltaEnvelope
        do {
            envelope = try verifier.verify(bytes, publicKey: { [settings] in settings.neighbours[$0]?.publicKey })
        } catch {
            reject(from: peer, error.code, error.message, into: &directives)
            return
        }
        let header = envelope.header
        guard header.origin == peer else {
            reject(from: peer, .originMismatch, "envelope signed by '\(header.origin)' arrived from '\(peer)'", into: &directives)
            return
        }
        guard started || !settings.countsArriveBeforeStart || settings.neighbours[peer]?.declaredSamples != nil else {
            holdBeforeStart(envelope, bytes, from: peer, into: &directives)
            return
        }
        accept(envelope, bytes, from: peer, into: &directives)
    }

    /// Holds a verified envelope that arrived before the start (see ``beforeStart``): a keyframe
    /// replaces everything its sender had held (it replaces the copy too); behind it, at most the
    /// held-envelope window of deltas waits, and more are refused (`tooFarAhead`).
    private mutating func holdBeforeStart(_ envelope: DeltaEnvelope, _ bytes: [UInt8], from peer: PeerID, into directives: inout [GossipDirective]) {
        if envelope.header.kind == .keyframe {
            beforeStart[peer] = [(envelope, bytes)]
            return
        }
        let held = beforeStart[peer]?.count ?? 0
        guard held <= settings.maxBufferedPerNeighbour else {
            reject(from: peer, .tooFarAhead, "\(held) envelopes already wait for the statistics round to complete", into: &directives)
            return
        }
        beforeStart[peer, default: []].append((envelope, bytes))
    }

    /// At the start: every held envelope goes through the checks it skipped, in arrival order,
    /// against the neighbours' signed counts (``Neighbour/declaredSamples``), now known.
    private mutating func replayHeldBeforeStart(into directives: inout [GossipDirective]) {
        let held = beforeStart
        beforeStart = [:]
        replaying = true
        defer { replaying = false }
        for peer in held.keys.sorted() where settings.neighbours[peer] != nil {
            for (envelope, bytes) in held[peer]! { accept(envelope, bytes, from: peer, into: &directives) }
        }
    }

    /// The checks after the signature, then the envelope's effect.
    private mutating func accept(_ envelope: DeltaEnvelope, _ bytes: [UInt8], from peer: PeerID, into directives: inout [GossipDirective]) {
        let header = envelope.header
        remember(bytes, sequence: header.sequence, from: peer)
        if let declared = settings.neighbours[peer]?.declaredSamples, header.sampleCount != UInt64(clamping: declared) {
            reject(from: peer, .sampleCountMismatch, "envelope advertises \(header.sampleCount) samples; the signed statistics of '\(peer)' declare \(declared)", into: &directives)
            return
        }
        do {
            try replayWindow.check(origin: peer, sequence: header.sequence)
        } catch {
            reject(from: peer, error.code, error.message, into: &directives)
            return
        }
        let envelopeRound = Int(clamping: header.round)
        guard envelopeRound <= settings.rounds else {
            reject(from: peer, .outOfRange, "round \(envelopeRound) is beyond the plan's \(settings.rounds) rounds", into: &directives)
            return
        }
        if settings.synchrony == .synchronous && header.kind == .delta {
            // No delta further ahead than the held-envelope window is taken. A keyframe of any
            // round of the plan is (a joining or restarted peer catches up from it), but it
            // counts as a delivery for at most the window's rounds (see `apply`).
            guard envelopeRound - round <= settings.maxBufferedPerNeighbour else {
                reject(from: peer, .tooFarAhead, "round \(envelopeRound) is more than \(settings.maxBufferedPerNeighbour) rounds ahead of round \(round)", into: &directives)
                return
            }
            // Deltas from rounds ahead wait until this peer gets there.
            if envelopeRound > round {
                guard neighbourStates[peer]!.held.count < settings.maxBufferedPerNeighbour else {
                    reject(from: peer, .tooFarAhead, "\(settings.maxBufferedPerNeighbour) envelopes from rounds ahead are already held", into: &directives)
                    return
                }
                neighbourStates[peer]!.held.append((header, envelope.delta))
                return
            }
        }
        apply(header, envelope.delta, from: peer, into: &directives)
        guard !replaying else { return }
        catchUpIfFarBehind(into: &directives)
        completeIfReady(into: &directives)
    }

    /// A peer restarted after a long outage (synchronous mode): when every neighbour's copy is
    /// more than the held-envelope window ahead, waiting round by round would cost a deadline
    /// per round — on both sides. It rejoins instead, as a joining peer does: at the lowest of
    /// its neighbours' rounds, from the sample-weighted mean of their copies. One hostile
    /// neighbour cannot trigger it while another is near this peer's round.
    private mutating func catchUpIfFarBehind(into directives: inout [GossipDirective]) {
        guard settings.synchrony == .synchronous, started, round >= 1, !isFinished, !order.isEmpty else { return }
        var lowest = Int.max
        for peer in order {
            guard let state = neighbourStates[peer], state.copy != nil else { return }
            lowest = min(lowest, state.round)
        }
        guard lowest > round + settings.maxBufferedPerNeighbour else { return }
        for peer in order { neighbourStates[peer]!.deliveredRound = neighbourStates[peer]!.round }
        adoptNeighbourhoodMean(into: &directives)
        beginRound(min(lowest, settings.rounds), into: &directives)
    }

    private mutating func applyHeld(from peer: PeerID, into directives: inout [GossipDirective]) {
        while let first = neighbourStates[peer]!.held.first, Int(clamping: first.header.round) <= round {
            neighbourStates[peer]!.held.removeFirst()
            do {
                try replayWindow.check(origin: peer, sequence: first.header.sequence)
            } catch {
                reject(from: peer, error.code, error.message, into: &directives)
                continue
            }
            apply(first.header, first.delta, from: peer, into: &directives)
        }
    }

    /// Applies a verified envelope: decodes into `incoming`, forms the candidate copy there,
    /// and only when it is finite swaps it in — a rejected envelope changes nothing.
    private mutating func apply(
        _ header: DeltaEnvelope.Header,
        _ delta: EncodedDelta,
        from peer: PeerID,
        into directives: inout [GossipDirective]
    ) {
        let t0 = clock()
        defer { roundStats.applySeconds += seconds(clock() - t0) }
        let heldVersion = neighbourStates[peer]!.version
        let hasCopy = neighbourStates[peer]!.copy != nil
        if header.kind == .delta && (!hasCopy || header.baseSequence != heldVersion) {
            // A gap: this delta does not apply to the copy held. Ask for a keyframe, at most
            // once a round (the request itself may be lost).
            reject(
                from: peer, .gap, "delta \(header.sequence) applies to version \(header.baseSequence), this peer holds \(heldVersion)",
                into: &directives
            )
            if neighbourStates[peer]!.keyframeRequestedInRound.map({ $0 < round }) ?? true {
                neighbourStates[peer]!.keyframeRequestedInRound = round
                directives.append(.send(to: peer, bytes: GossipMessage.keyframeRequest(heldVersion: heldVersion).encoded()))
            }
            return
        }
        let decoder = self.decoder
        do {
            try incoming.withUnsafeMutableBufferPointer { v throws(DeltaError) in try decoder.decode(delta, into: v) }
        } catch {
            reject(from: peer, error.code, error.message, into: &directives)
            return
        }
        let measure = settings.scoring.enabled
        switch header.kind {
        case .keyframe:
            // Decoded values are finite (the decoder checks); the keyframe replaces the copy.
            if measure {
                let change = hasCopy ? neighbourStates[peer]!.copy!.withUnsafeBufferPointer { c in incoming.withUnsafeBufferPointer { Self.distance(c, $0) } } : .infinity
                moved[peer, default: 0] += change
            }
            if hasCopy {
                swap(&incoming, &neighbourStates[peer]!.copy!)
            } else {
                neighbourStates[peer]!.copy = incoming
                incoming = [Float](repeating: 0, count: parameters.count)
            }
            neighbourStates[peer]!.keyframeRequestedInRound = nil
        case .delta:
            let change = measure ? incoming.withUnsafeBufferPointer(Self.norm) : 0
            let finite = neighbourStates[peer]!.copy!.withUnsafeBufferPointer { c in
                incoming.withUnsafeMutableBufferPointer { FiniteVector.add(c, into: $0) }
            }
            guard finite else {
                reject(from: peer, .nonFiniteResult, "delta \(header.sequence) would make the copy of '\(peer)' non-finite", into: &directives)
                return
            }
            if measure { moved[peer, default: 0] += change }
            swap(&incoming, &neighbourStates[peer]!.copy!)
        }
        let r = Int(clamping: header.round)
        neighbourStates[peer]!.version = header.sequence
        neighbourStates[peer]!.round = max(neighbourStates[peer]!.round, r)
        // A keyframe of a later round says the neighbour is already there: it will not send the
        // rounds in between, so it counts as delivered through its round — but for at most the
        // held-envelope window ahead, so no envelope buys readiness for the rounds beyond.
        let credited = settings.synchrony == .asynchronous || round == 0 ? r : min(r, round + settings.maxBufferedPerNeighbour)
        if settings.synchrony == .asynchronous || round == 0 || header.kind == .keyframe || r <= round {
            neighbourStates[peer]!.deliveredRound = max(neighbourStates[peer]!.deliveredRound, credited)
        }
        neighbourStates[peer]!.sampleCount = Int(clamping: header.sampleCount)
        neighbourStates[peer]!.neighbourhoodSampleCount = Int(clamping: header.neighbourhoodSampleCount)
        replayWindow.record(origin: peer, sequence: header.sequence)
        roundStats.accepted += 1
    }

    private mutating func sendKeyframe(to peer: PeerID, into directives: inout [GossipDirective]) {
        let header = DeltaEnvelope.Header(
            kind: .keyframe, planHash: settings.planHash, origin: settings.me, sequence: version,
            round: UInt64(min(max(round, 0), settings.rounds)), baseSequence: 0, sampleCount: UInt64(clamping: learner.sampleCount),
            neighbourhoodSampleCount: UInt64(neighbourhoodSampleCount)
        )
        // Keyframes are always lossless (receivers accept nothing else). The public copy is
        // always finite: it only ever moves by checked deltas.
        let keyframeEncoder = DeltaEncoder(codec: .lossless, zstdLevel: settings.zstdLevel)
        guard let envelope = try? publicCopy.withUnsafeBufferPointer({ try keyframeEncoder.seal($0, header: header, key: key) })
        else { return }
        let message = GossipMessage.envelope(envelope).encoded()
        roundStats.bytesSent += message.count
        directives.append(.send(to: peer, bytes: message))
        directives.append(.event(.keyframeSent(to: peer, version: version)))
    }

    /// Counts a rejection; reports it by an event only the first time this round for the pair
    /// (peer, reason); asks for a disconnect once a neighbour exceeds its rejection budget.
    private mutating func reject(
        from peer: PeerID,
        _ reason: Reason,
        _ message: String,
        into directives: inout [GossipDirective]
    ) {
        roundStats.rejected[reason, default: 0] += 1
        if roundStats.reported.insert(RejectionKey(peer: peer, reason: reason)).inserted {
            directives.append(.event(.rejected(from: peer, reason: reason, message: message)))
        }
        guard peer != settings.me, settings.neighbours[peer] != nil else { return }
        if PeerScoring.offendingReasons.contains(reason) { offences[peer, default: 0] += 1 }
        let count = roundStats.rejectedBy[peer, default: 0] + 1
        roundStats.rejectedBy[peer] = count
        if count > settings.rejectionBudgetPerRound && roundStats.disconnected.insert(peer).inserted {
            directives.append(.disconnect(peer, reason: .rejectionBudget))
        }
    }

    /// ‖v‖₂: Float squares in blocks of 256 (eight lanes, so it vectorizes), the blocks summed
    /// in Double; finite input of any size gives a finite or +∞ result, never a trap.
    static func norm(_ v: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        var i = 0
        while i < v.count {
            let end = min(i + 256, v.count)
            var lanes = SIMD8<Float>()
            var j = i
            while j + 8 <= end {
                let x = SIMD8<Float>(v[j], v[j + 1], v[j + 2], v[j + 3], v[j + 4], v[j + 5], v[j + 6], v[j + 7])
                lanes += x * x
                j += 8
            }
            var block = lanes.sum()
            while j < end {
                block += v[j] * v[j]
                j += 1
            }
            sum += Double(block)
            i = end
        }
        return sum.squareRoot()
    }

    /// ‖a − b‖₂ over the common length, summed in Double.
    static func distance(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        for i in 0..<min(a.count, b.count) {
            let d = Double(a[i]) - Double(b[i])
            sum += d * d
        }
        return sum.squareRoot()
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

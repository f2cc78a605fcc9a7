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

/// What the instance asks its shell to do.
public enum GossipDirective: Sendable {
    /// Send these bytes (an encoded ``GossipMessage``) to a neighbour. Dropped by the shell when
    /// there is no session.
    case send(to: PeerID, bytes: [UInt8])
    /// Call ``GossipInstance/deadlinePassed(round:)`` after this long, unless the round
    /// completes first (synchronous mode).
    case scheduleDeadline(round: Int, after: Duration)
    /// A round finished: log it.
    case roundCompleted(RoundReport)
    /// Something worth a log line of its own.
    case event(GossipEvent)
    /// The plan's last round is done.
    case finished
}

/// A notable event, for the convergence log.
public enum GossipEvent: Sendable, Equatable {
    /// A message was dropped; `reason` is a stable code (e.g. `badSignature`, `replay`, `gap`).
    case rejected(from: PeerID, reason: String, message: String)
    case keyframeSent(to: PeerID, version: UInt64)
    case keyframeRequested(from: PeerID, heldVersion: UInt64)
    /// A synchronous round completed at its deadline without these neighbours' deltas.
    case deadlineMissed(round: Int, missing: [PeerID])
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
    public var rejected: [String: Int]
    /// Rounds each neighbour's copy lags this round (0 = up to date).
    public var staleness: [PeerID: Int]
    /// Wall-clock seconds spent training, encoding and applying, from the injected clock.
    public var trainSeconds: Double
    public var encodeSeconds: Double
    public var applySeconds: Double
    /// The model after the consensus step.
    public var parameters: [Float]
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
public struct GossipInstance<Learner: LocalLearner> {
    public private(set) var settings: GossipSettings
    public private(set) var learner: Learner
    private let key: Ed25519.PrivateKey
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
    private var scratch: [Float]
    private var lastLoss: Double = .nan
    private var roundStats = RoundStats()
    private var lastEnvelope: [UInt8] = []
    /// S_i as advertised in this round's envelope, and the neighbours it counted: this round's
    /// consensus step uses the same value, and only those neighbours, so that p_ij and p_ji are
    /// computed from the same pair (S_i, S_j).
    private var advertisedNeighbourhood = 0
    private var advertisedKnown: Set<PeerID> = []
    private var started = false

    /// S_i = n_i + the sample counts of the neighbours heard from so far.
    private var neighbourhoodSampleCount: Int {
        learner.sampleCount + order.compactMap { neighbourStates[$0]?.sampleCount }.reduce(0, +)
    }

    /// What the instance holds about one neighbour.
    public struct NeighbourState: Sendable {
        /// x̂_j, once a keyframe arrived.
        public var copy: [Float]?
        /// The version of ``copy`` (0 = none).
        public var version: UInt64 = 0
        /// The round of the last envelope applied (−1 = none).
        public var round: Int = -1
        public var sampleCount: Int?
        /// S_j from its latest envelope: its sample count plus its neighbours'.
        public var neighbourhoodSampleCount: Int?
        /// Verified envelopes from rounds this peer has not reached yet, in arrival order.
        var held: [(header: DeltaEnvelope.Header, delta: EncodedDelta)] = []
        /// The round in which a keyframe was last requested, while one is outstanding.
        var keyframeRequestedInRound: Int?
    }

    private struct RoundStats {
        var bytesSent = 0
        var bytesReceived = 0
        var accepted = 0
        var rejected: [String: Int] = [:]
        var applySeconds = 0.0
    }

    /// - Parameters:
    ///   - initialParameters: x₀; every peer of a plan starts from the same x₀.
    ///   - version: the last version this peer ever signed (0 for a new peer); restored state
    ///     passes its persisted value so that sequence numbers never repeat.
    ///   - clock: a monotonic clock, read only for the phase times in ``RoundReport``.
    public init(
        settings: GossipSettings,
        key: Ed25519.PrivateKey,
        learner: Learner,
        initialParameters: [Float],
        version: UInt64 = 0,
        clock: @escaping () -> Duration
    ) {
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
        self.verifier = EnvelopeVerifier(planHash: settings.planHash, parameterCount: initialParameters.count)
        self.scratch = [Float](repeating: 0, count: initialParameters.count)
    }

    public var isFinished: Bool { round > settings.rounds }

    /// Gives the shell access to the learner, e.g. to hand it its standardized data once the
    /// pooled statistics are known (before ``start()``).
    public mutating func withLearner<R>(_ body: (inout Learner) -> R) -> R { body(&learner) }

    // MARK: Persistence and reconfiguration

    /// Everything a restart needs to resume: the round in progress, both models, the version,
    /// the neighbours' copies and the replay window.
    public struct Snapshot: Sendable, Equatable {
        public var round: Int
        public var version: UInt64
        public var parameters: [Float]
        public var publicCopy: [Float]
        public var neighbours: [PeerID: PersistedNeighbour]
        public var replayWindow: ReplayWindow

        public init(round: Int, version: UInt64, parameters: [Float], publicCopy: [Float], neighbours: [PeerID: PersistedNeighbour], replayWindow: ReplayWindow) {
            self.round = round
            self.version = version
            self.parameters = parameters
            self.publicCopy = publicCopy
            self.neighbours = neighbours
            self.replayWindow = replayWindow
        }
    }

    public struct PersistedNeighbour: Sendable, Equatable {
        public var copy: [Float]?
        public var version: UInt64
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

    public func snapshot() -> Snapshot {
        Snapshot(
            round: round, version: version, parameters: parameters, publicCopy: publicCopy,
            neighbours: neighbourStates.mapValues {
                PersistedNeighbour(copy: $0.copy, version: $0.version, round: $0.round, sampleCount: $0.sampleCount, neighbourhoodSampleCount: $0.neighbourhoodSampleCount)
            },
            replayWindow: replayWindow
        )
    }

    /// Resumes from `snapshot` (taken by a previous run of this peer).
    ///
    /// The version jumps by 2 past the snapshot's, so that no sequence number this peer signed
    /// before a crash is ever signed again with other contents: a snapshot is written before the
    /// messages of the round it ends are sent, so at most the next version was signed after it.
    /// Every new session starts with a keyframe, which brings neighbours to the restored copy.
    public mutating func restore(_ snapshot: Snapshot) {
        precondition(snapshot.parameters.count == parameters.count, "snapshot of another model")
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
            state.sampleCount = saved.sampleCount
            state.neighbourhoodSampleCount = saved.neighbourhoodSampleCount
            neighbourStates[peer] = state
        }
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
        if settings.synchrony == .synchronous {
            directives.append(.scheduleDeadline(round: round, after: settings.roundDeadline))
            completeIfReady(into: &directives)
        }
        return directives
    }

    /// The topology changed (a live reload): neighbours added get a fresh state (their first
    /// envelope will be a keyframe), neighbours removed are forgotten, weights and keys change
    /// from the next message on.
    public mutating func updateNeighbours(_ neighbours: [PeerID: Neighbour]) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        settings.neighbours = neighbours
        order = neighbours.keys.sorted()
        for peer in neighbourStates.keys where neighbours[peer] == nil { neighbourStates[peer] = nil }
        for peer in order where neighbourStates[peer] == nil { neighbourStates[peer] = NeighbourState() }
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
        sendKeyframe(to: peer, into: &directives)
        return directives
    }

    /// Bytes arrived from `peer` (the authenticated sender, for the network shell).
    public mutating func receive(_ bytes: [UInt8], from peer: PeerID) -> [GossipDirective] {
        var directives: [GossipDirective] = []
        guard settings.neighbours[peer] != nil else {
            reject(from: peer, reason: "unknownPeer", "message from '\(peer)', which is not a neighbour", into: &directives)
            return directives
        }
        roundStats.bytesReceived += bytes.count
        let message: GossipMessage
        do {
            message = try GossipMessage(decoding: bytes)
        } catch {
            reject(from: peer, reason: "badMessage", error.description, into: &directives)
            return directives
        }
        switch message {
        case .keyframeRequest(let held):
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
        let missing = order.filter { (neighbourStates[$0]?.round ?? -1) < round }
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

    /// Round 1 — or, for a peer joining a network that is already under way (its neighbours'
    /// keyframes come from later rounds), the neighbours' round, starting from the
    /// sample-weighted mean of their models rather than from x₀.
    private mutating func beginFirstRound(into directives: inout [GossipDirective]) {
        let rounds = order.compactMap { peer in neighbourStates[peer].flatMap { $0.copy != nil ? $0.round : nil } }
        guard let joinRound = rounds.min(), joinRound >= 1 else {
            beginRound(1, into: &directives)
            return
        }
        var total = 0.0
        var mean = [Double](repeating: 0, count: parameters.count)
        for peer in order {
            guard let state = neighbourStates[peer], let copy = state.copy else { continue }
            let weight = Double(max(state.sampleCount ?? 1, 1))
            total += weight
            for i in mean.indices { mean[i] += weight * Double(copy[i]) }
        }
        parameters = mean.map { Float($0 / total) }
        beginRound(min(joinRound, settings.rounds), into: &directives)
    }

    private mutating func beginRound(_ r: Int, into directives: inout [GossipDirective]) {
        round = r
        roundStats = RoundStats()
        let t0 = clock()
        lastLoss = learner.train(&parameters, round: r)
        let t1 = clock()
        // q = C(x − x̂_self); x̂_self += q exactly as receivers will decode it.
        for i in parameters.indices { scratch[i] = parameters[i] - publicCopy[i] }
        var decoded = [Float](repeating: 0, count: parameters.count)
        advertisedNeighbourhood = neighbourhoodSampleCount
        advertisedKnown = Set(order.filter { neighbourStates[$0]?.sampleCount != nil })
        let header = DeltaEnvelope.Header(
            kind: .delta, planHash: settings.planHash, origin: settings.me, sequence: version + 1,
            round: UInt64(r), baseSequence: version, sampleCount: UInt64(learner.sampleCount),
            neighbourhoodSampleCount: UInt64(advertisedNeighbourhood)
        )
        let envelope: [UInt8]
        do {
            envelope = try scratch.withUnsafeBufferPointer { q in
                try decoded.withUnsafeMutableBufferPointer { d in try encoder.seal(q, header: header, key: key, reconstruct: d) }
            }
        } catch {
            // Training produced NaN/Inf: keep the last good model, send nothing this round.
            directives.append(.event(.rejected(from: settings.me, reason: "nonFiniteModel", message: "\(error)")))
            parameters = publicCopy
            roundStats.rejected["nonFiniteModel", default: 0] += 1
            afterSend(trainSeconds: seconds(t1 - t0), encodeSeconds: 0, into: &directives)
            return
        }
        for i in publicCopy.indices { publicCopy[i] += decoded[i] }
        version += 1
        lastEnvelope = envelope
        let message = GossipMessage.envelope(envelope).encoded()
        for peer in order {
            directives.append(.send(to: peer, bytes: message))
            roundStats.bytesSent += message.count
        }
        let t2 = clock()
        afterSend(trainSeconds: seconds(t1 - t0), encodeSeconds: seconds(t2 - t1), into: &directives)
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
        if order.allSatisfy({ (neighbourStates[$0]?.round ?? -1) >= round }) {
            completeRound(into: &directives)
        }
    }

    private mutating func completeRound(into directives: inout [GossipDirective]) {
        let t0 = clock()
        // Consensus step: x ← x + γ Σ_j p_ij (x̂_j − x̂_self), neighbours in id order.
        let row = MixingWeights.row(
            selfSamples: learner.sampleCount,
            selfNeighbourhood: advertisedNeighbourhood,
            neighbours: order.map { peer in
                let state = neighbourStates[peer]!
                let fresh = (settings.synchrony == .synchronous || round - state.round <= settings.maxStaleness)
                    && advertisedKnown.contains(peer)
                return MixingWeights.Entry(
                    id: peer, baseWeight: settings.neighbours[peer]!.weight,
                    samples: fresh ? state.sampleCount : nil, neighbourhoodSamples: state.neighbourhoodSampleCount
                )
            },
            weighting: settings.weighting,
            mixing: settings.mixing
        )
        let gamma = Float(settings.consensusStep)
        for peer in order {
            guard let weight = row[peer], weight > 0, let copy = neighbourStates[peer]?.copy else { continue }
            let w = gamma * Float(weight)
            parameters.withUnsafeMutableBufferPointer { x in
                copy.withUnsafeBufferPointer { c in
                    publicCopy.withUnsafeBufferPointer { s in
                        for i in 0..<x.count { x[i] += w * (c[i] - s[i]) }
                    }
                }
            }
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
            staleness: Dictionary(uniqueKeysWithValues: order.map { ($0, max(0, round - (neighbourStates[$0]?.round ?? 0))) }),
            trainSeconds: phaseTimes.train,
            encodeSeconds: phaseTimes.encode,
            applySeconds: roundStats.applySeconds + seconds(t1 - t0),
            parameters: parameters
        )
        directives.append(.roundCompleted(report))
        if round >= settings.rounds {
            round = settings.rounds + 1
            directives.append(.finished)
        } else {
            beginRound(round + 1, into: &directives)
        }
    }

    // MARK: Envelopes

    private mutating func receiveEnvelope(_ bytes: [UInt8], from peer: PeerID, into directives: inout [GossipDirective]) {
        let envelope: DeltaEnvelope
        do {
            envelope = try verifier.verify(bytes, publicKey: { [settings] in settings.neighbours[$0]?.publicKey })
        } catch {
            reject(from: peer, reason: error.code.description, error.message, into: &directives)
            return
        }
        guard envelope.header.origin == peer else {
            reject(from: peer, reason: "originMismatch", "envelope signed by '\(envelope.header.origin)' arrived from '\(peer)'", into: &directives)
            return
        }
        do {
            try replayWindow.check(origin: peer, sequence: envelope.header.sequence)
        } catch {
            reject(from: peer, reason: error.code.description, error.message, into: &directives)
            return
        }
        let envelopeRound = Int(clamping: envelope.header.round)
        // Deltas from rounds ahead wait until this peer gets there; a keyframe is a whole copy
        // and applies at once (a restarted or newly joined peer catches up from it).
        if settings.synchrony == .synchronous && envelopeRound > round && envelope.header.kind == .delta {
            var state = neighbourStates[peer]!
            if state.held.count >= settings.maxBufferedPerNeighbour {
                reject(from: peer, reason: "tooFarAhead", "round \(envelopeRound) is too far ahead of round \(round)", into: &directives)
                return
            }
            state.held.append((envelope.header, envelope.delta))
            neighbourStates[peer] = state
            return
        }
        apply(envelope.header, envelope.delta, from: peer, into: &directives)
        completeIfReady(into: &directives)
    }

    private mutating func applyHeld(from peer: PeerID, into directives: inout [GossipDirective]) {
        while let first = neighbourStates[peer]!.held.first, Int(clamping: first.header.round) <= round {
            neighbourStates[peer]!.held.removeFirst()
            do {
                try replayWindow.check(origin: peer, sequence: first.header.sequence)
            } catch {
                reject(from: peer, reason: error.code.description, error.message, into: &directives)
                continue
            }
            apply(first.header, first.delta, from: peer, into: &directives)
        }
    }

    private mutating func apply(
        _ header: DeltaEnvelope.Header,
        _ delta: EncodedDelta,
        from peer: PeerID,
        into directives: inout [GossipDirective]
    ) {
        let t0 = clock()
        defer { roundStats.applySeconds += seconds(clock() - t0) }
        var state = neighbourStates[peer]!
        if header.kind == .delta && (state.copy == nil || header.baseSequence != state.version) {
            // A gap: this delta does not apply to the copy held. Ask for a keyframe, at most
            // once a round (the request itself may be lost).
            reject(
                from: peer, reason: "gap",
                "delta \(header.sequence) applies to version \(header.baseSequence), this peer holds \(state.version)",
                into: &directives
            )
            if state.keyframeRequestedInRound.map({ $0 < round }) ?? true {
                state.keyframeRequestedInRound = round
                neighbourStates[peer] = state
                directives.append(.send(to: peer, bytes: GossipMessage.keyframeRequest(heldVersion: state.version).encoded()))
            }
            return
        }
        let values: [Float]
        do {
            values = try decoder.decode(delta)
        } catch {
            reject(from: peer, reason: error.code.description, error.message, into: &directives)
            return
        }
        switch header.kind {
        case .keyframe:
            state.copy = values
            state.keyframeRequestedInRound = nil
        case .delta:
            state.copy!.withUnsafeMutableBufferPointer { c in
                for i in 0..<c.count { c[i] += values[i] }
            }
        }
        state.version = header.sequence
        state.round = max(state.round, Int(clamping: header.round))
        state.sampleCount = Int(clamping: header.sampleCount)
        state.neighbourhoodSampleCount = Int(clamping: header.neighbourhoodSampleCount)
        neighbourStates[peer] = state
        replayWindow.record(origin: peer, sequence: header.sequence)
        roundStats.accepted += 1
    }

    private mutating func sendKeyframe(to peer: PeerID, into directives: inout [GossipDirective]) {
        let header = DeltaEnvelope.Header(
            kind: .keyframe, planHash: settings.planHash, origin: settings.me, sequence: version,
            round: UInt64(max(round, 0)), baseSequence: 0, sampleCount: UInt64(learner.sampleCount),
            neighbourhoodSampleCount: UInt64(neighbourhoodSampleCount)
        )
        // The public copy is always finite: it only ever moves by decoded, checked deltas.
        let keyframeEncoder = DeltaEncoder(codec: .lossless, zstdLevel: settings.zstdLevel)
        guard let envelope = try? publicCopy.withUnsafeBufferPointer({ try keyframeEncoder.seal($0, header: header, key: key) })
        else { return }
        let message = GossipMessage.envelope(envelope).encoded()
        roundStats.bytesSent += message.count
        directives.append(.send(to: peer, bytes: message))
        directives.append(.event(.keyframeSent(to: peer, version: version)))
    }

    private mutating func reject(from peer: PeerID, reason: String, _ message: String, into directives: inout [GossipDirective]) {
        roundStats.rejected[reason, default: 0] += 1
        directives.append(.event(.rejected(from: peer, reason: reason, message: message)))
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

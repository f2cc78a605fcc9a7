import Logging
import NIOCore
import PlexusCore
import PlexusCrypto
import Synchronization


/// The mesh's shared bookkeeping: sessions, counters, events. Every method is synchronous and
/// short, so connection handlers call it straight from their event loop; the lock also orders
/// events, so a session's `sessionOpened` always precedes its messages.
package final class MeshCore: Sendable {
    struct Session {
        var channel: any Channel
        /// Who dialled this connection: the simultaneous-dial tie-break keeps the one dialled by the lower id.
        var dialler: PeerID
    }

    struct State {
        var peers: [PeerID: MeshPeer]
        var sessions: [PeerID: Session] = [:]
        var channels: [ObjectIdentifier: any Channel] = [:]
        var pendingInbound = 0
        var counters = MeshCounters()
        var stopping = false
        var boundPort: Int?
        var portWaiters: [CheckedContinuation<Int, Never>] = []
        var sessionWaiters: [PeerID: [CheckedContinuation<Void, Never>]] = [:]
        var dialGeneration: [PeerID: Int] = [:]
        /// Peers whose session the other side superseded: a replacement is expected, so the close
        /// is reported only if none arrives in time. The value is a token for the expiry check.
        var handovers: [PeerID: Int] = [:]
        var nextHandoverToken = 0
        var handoverWaiters: [PeerID: [CheckedContinuation<(any Channel)?, Never>]] = [:]
        /// Connections with a peer that lost the duplicate tie-break here and are draining: what
        /// the peer sent on them before it learnt is delivered first, so messages that arrive
        /// meanwhile on the surviving session are held back until every draining one has closed.
        var draining: [PeerID: Set<ObjectIdentifier>] = [:]
        var held: [PeerID: [[UInt8]]] = [:]
        var dialCommands: AsyncStream<(PeerID, Int)>.Continuation?
        var rng: SplitMix64
    }

    let configuration: MeshConfiguration
    let logger: Logger
    let state: Mutex<State>
    let eventContinuation: AsyncStream<MeshEvent>.Continuation
    let events: AsyncStream<MeshEvent>
    private let started = Mutex(false)

    /// Marks the mesh as running; `false` if it already was (``PeerMesh/run()`` runs once).
    func markStarted() -> Bool {
        started.withLock { started in
            defer { started = true }
            return !started
        }
    }

    init(configuration: MeshConfiguration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "mesh.me"] = "\(configuration.me)"
        self.logger = logger
        let seed = configuration.reconnect.seed ?? secureRandomBytes(count: 8).reduce(0) { $0 << 8 | UInt64($1) }
        self.state = Mutex(State(peers: configuration.peers, rng: SplitMix64(seed: seed)))
        (events, eventContinuation) = AsyncStream<MeshEvent>.makeStream()
    }

    var me: PeerID { configuration.me }

    // MARK: Handshakes

    func handshakeContext() -> HandshakeContext {
        let peers = state.withLock { $0.peers }
        return HandshakeContext(
            me: configuration.me, key: configuration.key, planHash: configuration.planHash,
            peers: peers.mapValues(\.publicKey)
        )
    }

    /// Takes a pending-handshake slot for an inbound connection, or refuses it.
    func admitInbound(remote: String) -> Bool {
        let admitted = state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            guard state.pendingInbound < configuration.maximumPendingConnections else {
                state.counters.handshakeFailures[HandshakeFailure.Reason.tooManyPending.rawValue, default: 0] += 1
                eventContinuation.yield(.refused(peer: nil, reason: HandshakeFailure.Reason.tooManyPending.rawValue))
                return false
            }
            state.pendingInbound += 1
            return true
        }
        if !admitted {
            logger.info(
                "Refused an inbound connection: too many pending handshakes",
                metadata: ["remote": "\(remote)", "reason": "\(HandshakeFailure.Reason.tooManyPending.rawValue)"]
            )
        }
        return admitted
    }

    func releasePending() {
        state.withLock { $0.pendingInbound -= 1 }
    }

    func register(_ channel: any Channel) -> Bool {
        state.withLock { state in
            guard !state.stopping else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func unregister(_ channel: any Channel) {
        _ = state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func handshakeFailed(_ failure: HandshakeFailure, remote: String) {
        state.withLock { state in
            state.counters.handshakeFailures[failure.reason.rawValue, default: 0] += 1
            eventContinuation.yield(.refused(peer: failure.claimedPeer, reason: failure.description))
        }
        logger.info(
            "Handshake failed",
            metadata: [
                "peer": "\(failure.claimedPeer ?? "?")", "remote": "\(remote)", "reason": "\(failure.reason.rawValue)",
                "detail": "\(failure.detail)",
            ]
        )
    }

    enum Admission {
        /// The connection is the peer's session.
        case keep
        /// It lost the duplicate tie-break: say `superseded` and drain it.
        case duplicate
        /// The mesh is stopping or the peer was removed meanwhile: close it.
        case refuse
    }

    /// Records an authenticated connection and says what to do with it.
    func established(peer: PeerID, channel: any Channel, initiatedByUs: Bool) -> Admission {
        let dialler = initiatedByUs ? me : peer
        let preferred = min(me, peer)
        var replaced: (any Channel)?
        let admission = state.withLock { state -> Admission in
            guard !state.stopping, state.peers[peer] != nil else { return .refuse }
            if let existing = state.sessions[peer] {
                if existing.dialler == preferred && dialler != preferred {
                    state.counters.duplicateSessionsClosed += 1
                    state.draining[peer, default: []].insert(ObjectIdentifier(channel))
                    return .duplicate
                }
                state.draining[peer, default: []].insert(ObjectIdentifier(existing.channel))
                // The new one was dialled by the lower id, or both go the same way (a reconnect): newest wins.
                replaced = existing.channel
                state.counters.duplicateSessionsClosed += 1
                state.sessions[peer] = Session(channel: channel, dialler: dialler)
                return .keep
            }
            state.sessions[peer] = Session(channel: channel, dialler: dialler)
            if state.handovers.removeValue(forKey: peer) != nil {
                // The replacement of a superseded session: already reported open.
                for waiter in state.handoverWaiters.removeValue(forKey: peer) ?? [] { waiter.resume(returning: channel) }
                return .keep
            }
            state.counters.sessionsOpened += 1
            eventContinuation.yield(.sessionOpened(peer))
            return .keep
        }
        switch admission {
        case .keep:
            if let replaced {
                logger.debug("Replaced a duplicate session", metadata: ["peer": "\(peer)", "dialler": "\(dialler)"])
                replaced.triggerUserOutboundEvent(SupersedeEvent(), promise: nil)
            } else {
                logger.info("Session opened", metadata: ["peer": "\(peer)", "dialler": "\(dialler)"])
            }
        case .duplicate:
            logger.debug("Closing a duplicate connection", metadata: ["peer": "\(peer)", "dialler": "\(dialler)"])
        case .refuse:
            logger.debug("Closing an authenticated connection: stopping or peer removed", metadata: ["peer": "\(peer)"])
        }
        return admission
    }

    func deliver(_ payload: [UInt8], from peer: PeerID, channel: any Channel) {
        state.withLock { state in
            guard state.sessions[peer] != nil || state.handovers[peer] != nil else { return }
            state.counters.messagesReceived += 1
            if let draining = state.draining[peer], !draining.isEmpty, !draining.contains(ObjectIdentifier(channel)) {
                state.held[peer, default: []].append(payload)
                return
            }
            eventContinuation.yield(.message(peer, payload))
        }
    }

    /// A connection closed: if it was draining and the last one, release what was held back.
    func connectionClosed(peer: PeerID, channel: any Channel) {
        state.withLock { state in
            guard var draining = state.draining[peer], draining.remove(ObjectIdentifier(channel)) != nil else { return }
            if !draining.isEmpty {
                state.draining[peer] = draining
                return
            }
            state.draining[peer] = nil
            for payload in state.held.removeValue(forKey: peer) ?? [] {
                eventContinuation.yield(.message(peer, payload))
            }
        }
    }

    func frameRejected(peer: PeerID, reason: String, detail: String) {
        state.withLock { $0.counters.framesRejected[reason, default: 0] += 1 }
        logger.info("Rejected a frame; closing the session", metadata: ["peer": "\(peer)", "reason": "\(reason)", "detail": "\(detail)"])
    }

    func sessionEnded(peer: PeerID, channel: any Channel, reason: String, superseded: Bool) {
        enum Outcome { case notCurrent, closed, handover(token: Int) }
        let outcome = state.withLock { state -> Outcome in
            guard let session = state.sessions[peer], session.channel === channel else { return .notCurrent }
            state.sessions[peer] = nil
            for waiter in state.sessionWaiters.removeValue(forKey: peer) ?? [] { waiter.resume() }
            if superseded && !state.stopping && state.peers[peer] != nil {
                state.nextHandoverToken += 1
                state.handovers[peer] = state.nextHandoverToken
                return .handover(token: state.nextHandoverToken)
            }
            state.counters.sessionsClosed += 1
            eventContinuation.yield(.sessionClosed(peer, reason: reason))
            return .closed
        }
        switch outcome {
        case .notCurrent:
            break
        case .closed:
            logger.info("Session closed", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
        case .handover(let token):
            logger.debug("Session superseded by the peer; expecting its replacement", metadata: ["peer": "\(peer)"])
            // The replacement is already established on the superseding side; only its last
            // handshake flight is in flight, so the wait is short.
            let grace = TimeAmount.nanoseconds(min(nanoseconds(configuration.handshakeTimeout), 2_000_000_000))
            channel.eventLoop.scheduleTask(in: grace) { [self] in
                self.handoverExpired(peer: peer, token: token)
            }
        }
    }

    /// A superseded session's replacement never came: report the close after all.
    func handoverExpired(peer: PeerID, token: Int) {
        let expired = state.withLock { state -> Bool in
            guard state.handovers[peer] == token, state.sessions[peer] == nil else { return false }
            state.handovers[peer] = nil
            for waiter in state.handoverWaiters.removeValue(forKey: peer) ?? [] { waiter.resume(returning: nil) }
            state.counters.sessionsClosed += 1
            eventContinuation.yield(.sessionClosed(peer, reason: "superseded connection was not replaced"))
            return true
        }
        if expired {
            logger.info("Session closed", metadata: ["peer": "\(peer)", "reason": "superseded connection was not replaced"])
        }
    }

    func messageSent() {
        state.withLock { $0.counters.messagesSent += 1 }
    }

    // MARK: Dialling

    func sessionChannel(for peer: PeerID) -> (any Channel)? {
        state.withLock { $0.sessions[peer]?.channel }
    }

    /// The session's channel; while the peer hands a superseded session over to its replacement,
    /// waits for the replacement (at most the handshake timeout).
    func sessionChannelAwaitingHandover(for peer: PeerID) async -> (any Channel)? {
        await withCheckedContinuation { (continuation: CheckedContinuation<(any Channel)?, Never>) in
            let now = state.withLock { state -> (any Channel)?? in
                if let session = state.sessions[peer] { return .some(session.channel) }
                guard !state.stopping, state.handovers[peer] != nil else { return .some(nil) }
                state.handoverWaiters[peer, default: []].append(continuation)
                return .none
            }
            if case .some(let channel) = now { continuation.resume(returning: channel) }
        }
    }

    /// Waits until `peer` has no session (returns at once when it has none), or the mesh stops.
    func waitUntilNoSession(with peer: PeerID) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.stopping || state.sessions[peer] == nil { return true }
                state.sessionWaiters[peer, default: []].append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// The endpoint to dial for `peer`, or `nil` when the dial loop of `generation` should end.
    func dialTarget(_ peer: PeerID, generation: Int) -> MeshPeer? {
        state.withLock { state in
            guard !state.stopping, state.dialGeneration[peer] == generation else { return nil }
            return state.peers[peer]
        }
    }

    func isStopping() -> Bool { state.withLock { $0.stopping } }

    func jitterUnit() -> Double {
        state.withLock { Double.random(in: 0..<1, using: &$0.rng) }
    }

    /// Starts dial loops for the initial peers; later ones come from ``updatePeers(_:)``.
    func startDialling(_ commands: AsyncStream<(PeerID, Int)>.Continuation) {
        let initial = state.withLock { state -> [(PeerID, Int)] in
            guard !state.stopping else {
                commands.finish()
                return []
            }
            state.dialCommands = commands
            var list: [(PeerID, Int)] = []
            for peer in state.peers.keys.sorted() where peer != me {
                let generation = (state.dialGeneration[peer] ?? 0) + 1
                state.dialGeneration[peer] = generation
                list.append((peer, generation))
            }
            return list
        }
        for entry in initial { commands.yield(entry) }
    }

    func updatePeers(_ peers: [PeerID: MeshPeer]) {
        var toClose: [(PeerID, any Channel)] = []
        state.withLock { state in
            let old = state.peers
            state.peers = peers
            for (peer, session) in state.sessions where peers[peer] == nil {
                toClose.append((peer, session.channel))
            }
            for peer in old.keys where peers[peer] == nil {
                state.dialGeneration[peer] = (state.dialGeneration[peer] ?? 0) + 1
                if state.handovers.removeValue(forKey: peer) != nil {
                    state.counters.sessionsClosed += 1
                    eventContinuation.yield(.sessionClosed(peer, reason: "removed"))
                    for waiter in state.handoverWaiters.removeValue(forKey: peer) ?? [] { waiter.resume(returning: nil) }
                }
            }
            for (peer, entry) in peers where peer != me && (old[peer] == nil || old[peer]?.host != entry.host || old[peer]?.port != entry.port) {
                let generation = (state.dialGeneration[peer] ?? 0) + 1
                state.dialGeneration[peer] = generation
                state.dialCommands?.yield((peer, generation))
            }
        }
        logger.info("Peers updated", metadata: ["peers": "\(peers.keys.sorted().map(\.rawValue))"])
        for (peer, channel) in toClose {
            logger.info("Closing the session with a removed peer", metadata: ["peer": "\(peer)", "reason": "removed"])
            channel.triggerUserOutboundEvent(CloseWithReasonEvent(reason: "removed"), promise: nil)
        }
    }

    // MARK: Lifecycle

    func didBind(port: Int) {
        let waiters = state.withLock { state in
            state.boundPort = port
            defer { state.portWaiters = [] }
            return state.portWaiters
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    func boundPort() async -> Int {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let port = state.withLock { state -> Int? in
                if let port = state.boundPort { return port }
                if state.stopping { return 0 }
                state.portWaiters.append(continuation)
                return nil
            }
            if let port { continuation.resume(returning: port) }
        }
    }

    /// Stops dialling and closes every connection. Idempotent.
    func stop() {
        let (channels, commands, waiters, sessionWaiters, handoverWaiters) = state.withLock { state in
            state.stopping = true
            defer {
                state.channels = [:]
                state.dialCommands = nil
                state.portWaiters = []
                state.sessionWaiters = [:]
                state.handoverWaiters = [:]
            }
            return (
                Array(state.channels.values), state.dialCommands, state.portWaiters,
                state.sessionWaiters.values.flatMap { $0 }, state.handoverWaiters.values.flatMap { $0 }
            )
        }
        for waiter in handoverWaiters { waiter.resume(returning: nil) }
        commands?.finish()
        for waiter in waiters { waiter.resume(returning: state.withLock { $0.boundPort } ?? 0) }
        for waiter in sessionWaiters { waiter.resume() }
        for channel in channels { channel.close(promise: nil) }
    }

    func finish() {
        eventContinuation.finish()
    }

    var counters: MeshCounters { state.withLock { $0.counters } }
}

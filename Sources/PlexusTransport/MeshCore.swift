import Logging
import NIOCore
import PlexusCore
import PlexusCrypto
import Synchronization

/// Bytes sealed onto one connection and not yet written to its socket.
final class OutboundGauge: Sendable {
    private let bytes = Atomic<Int>(0)
    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }
    func remove(_ count: Int) { bytes.subtract(count, ordering: .relaxed) }
    var queued: Int { bytes.load(ordering: .relaxed) }
}

/// Outbound user event: what the ``SessionTable`` asked of this connection.
enum ConnectionCommand {
    /// Seal a `select` record: this connection is the session.
    case select(SelectToken)
    /// Seal `superseded`, then only read, until the peer closes (or the drain grace ends).
    case supersede
    case close(Reason, String)
    /// Seal a `topology` record with this fingerprint (the file changed).
    case announceTopology([UInt8])
}

/// The mesh's shell around the ``SessionTable``: connections, pending handshakes, counters,
/// events, waiters and timers. Every method is synchronous and short, so connection handlers
/// call it from their event loop; the lock orders events, so a session's `sessionOpened` always
/// precedes its messages. Protocol decisions are the table's; this only carries out its actions.
package final class MeshCore: Sendable {
    struct Connection {
        var channel: any Channel
        var gauge = OutboundGauge()
        /// The source address of an inbound connection still in its handshake (holds a pending slot).
        var pendingAddress: String?
        var admittedAt: UInt64 = 0
        var established = false
    }

    struct State {
        var peers: [PeerID: MeshPeer]
        /// This peer's identity key: the configuration's, until ``updateIdentity(_:)``.
        var key: Ed25519.PrivateKey
        /// This peer's topology-file fingerprint: the configuration's, until
        /// ``updateTopologyFingerprint(_:)``.
        var topologyFingerprint: [UInt8]?
        var table: SessionTable
        var connections: [ConnectionID: Connection] = [:]
        var nextConnection: UInt64 = 0
        var pendingCount = 0
        var pendingByAddress: [String: Int] = [:]
        /// Refusals of unauthenticated connections since the last summary, and which of them were
        /// already reported one by one (the first per claimed neighbour and reason).
        var refusals: [Reason: Int] = [:]
        var reportedIndividually: Set<String> = []
        var suppressed = 0
        var summaryScheduled = false
        var counters = MeshCounters()
        var stopping = false
        var boundPort: Int?
        var portWaiters: [CheckedContinuation<Int, Never>] = []
        var sendWaiters: [PeerID: [CheckedContinuation<Void, Never>]] = [:]
        var dialWaiters: [PeerID: [CheckedContinuation<Void, Never>]] = [:]
        var dialGeneration: [PeerID: Int] = [:]
        var dialCommands: AsyncStream<(PeerID, Int)>.Continuation?
        var rng: SplitMix64
        var bufferedEvents = 0
        var readingPaused = false
    }

    let configuration: MeshConfiguration
    let logger: Logger
    let group: any EventLoopGroup
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

    init(configuration: MeshConfiguration, logger: Logger, group: any EventLoopGroup) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "mesh.me"] = "\(configuration.me)"
        self.logger = logger
        self.group = group
        let random = secureRandomBytes(count: 16)
        let seed = configuration.reconnect.seed ?? random.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
        let incarnation = random.suffix(8).reduce(0) { $0 << 8 | UInt64($1) }
        self.state = Mutex(
            State(
                peers: configuration.peers,
                key: configuration.key,
                topologyFingerprint: configuration.topologyFingerprint,
                table: SessionTable(
                    me: configuration.me, incarnation: incarnation,
                    maximumHeldBytes: max(64 << 20, 2 * configuration.maximumFrameSize)
                ),
                rng: SplitMix64(seed: seed)
            )
        )
        (events, eventContinuation) = AsyncStream<MeshEvent>.makeStream()
    }

    var me: PeerID { configuration.me }

    // MARK: Carrying out the table's actions

    /// Deferred work: what must not run under the lock (channel operations, logs, resumptions).
    typealias Effects = [@Sendable () -> Void]

    private func perform(_ actions: [SessionTable.Action], _ state: inout State, _ effects: inout Effects) {
        for action in actions {
            switch action {
            case .select(let id, let token):
                command(id, .select(token), state, &effects)
            case .supersede(let id):
                state.counters.duplicateSessionsClosed += 1
                command(id, .supersede, state, &effects)
            case .close(let id, let reason, let detail):
                command(id, .close(reason, detail), state, &effects)
            case .sessionOpened(let peer):
                state.counters.sessionsOpened += 1
                yield(.sessionOpened(peer), &state, &effects)
                let dialler = state.table.session(of: peer).flatMap { state.table.connections[$0]?.dialledByMe }
                let logger = self.logger
                effects.append {
                    logger.info(
                        "Session opened",
                        metadata: ["peer": "\(peer)", "dialler": "\(dialler.map { $0 ? "\(self.me)" : "\(peer)" } ?? "?")"]
                    )
                }
            case .sessionClosed(let peer, let reason, let detail):
                state.counters.sessionsClosed += 1
                state.counters.sessionsClosedBy[reason, default: 0] += 1
                yield(.sessionClosed(peer, reason: reason, detail: detail), &state, &effects)
                let logger = self.logger
                effects.append {
                    logger.info("Session closed", metadata: ["peer": "\(peer)", "reason": "\(reason)", "detail": "\(detail)"])
                }
            case .deliver(let peer, let payload):
                state.counters.messagesReceived += 1
                yield(.message(peer, payload), &state, &effects)
            case .scheduleHandoverExpiry(let peer, let token):
                let grace = TimeAmount.nanoseconds(min(nanoseconds(configuration.handshakeTimeout), 2_000_000_000))
                effects.append { [self] in
                    _ = group.any().scheduleTask(in: grace) { self.input { $0.handoverExpired(peer, token: token) } }
                }
            case .scheduleUnblock(let peer, let backoff):
                effects.append { [self] in
                    _ = group.any().scheduleTask(in: .nanoseconds(nanoseconds(backoff))) {
                        self.input { $0.unblock(peer) }
                    }
                }
            }
        }
        settleWaiters(&state, &effects)
    }

    private func command(_ id: ConnectionID, _ command: ConnectionCommand, _ state: State, _ effects: inout Effects) {
        guard let channel = state.connections[id]?.channel else { return }
        effects.append { channel.triggerUserOutboundEvent(command, promise: nil) }
    }

    /// Resumes the sends that waited for a writable session and the dial loops that waited for
    /// the session to end, where the table says so.
    private func settleWaiters(_ state: inout State, _ effects: inout Effects) {
        for peer in Array(state.sendWaiters.keys) where state.stopping || !state.table.isAwaiting(peer) {
            let waiters = state.sendWaiters.removeValue(forKey: peer) ?? []
            effects.append { for waiter in waiters { waiter.resume() } }
        }
        for peer in Array(state.dialWaiters.keys) where state.stopping || !state.table.needsNoDial(peer) {
            let waiters = state.dialWaiters.removeValue(forKey: peer) ?? []
            effects.append { for waiter in waiters { waiter.resume() } }
        }
    }

    /// Feeds the table one input and carries out what it says.
    private func input(_ body: (inout SessionTable) -> [SessionTable.Action]) {
        var effects: Effects = []
        state.withLock { state in
            let actions = body(&state.table)
            perform(actions, &state, &effects)
        }
        for effect in effects { effect() }
    }

    // MARK: Events and inbound back-pressure

    private func yield(_ event: MeshEvent, _ state: inout State, _ effects: inout Effects) {
        eventContinuation.yield(event)
        state.bufferedEvents += 1
        state.counters.maximumBufferedEvents = max(state.counters.maximumBufferedEvents, state.bufferedEvents)
        if state.bufferedEvents > configuration.inboundEventWatermark && !state.readingPaused {
            state.readingPaused = true
            state.counters.readPauses += 1
            let channels = state.connections.values.filter(\.established).map(\.channel)
            effects.append { for channel in channels { channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } } }
        }
    }

    /// The consumer took one event from ``PeerMesh/events``.
    func eventConsumed() {
        let channels = state.withLock { state -> [any Channel] in
            state.bufferedEvents = max(0, state.bufferedEvents - 1)
            guard state.readingPaused, state.bufferedEvents <= configuration.inboundEventWatermark / 2 else { return [] }
            state.readingPaused = false
            return state.connections.values.filter(\.established).map(\.channel)
        }
        for channel in channels { channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in } }
    }

    var isReadingPaused: Bool { state.withLock { $0.readingPaused } }

    // MARK: Connections before authentication

    func handshakeContext() -> HandshakeContext {
        let (peers, key) = state.withLock { state in (state.peers.filter { !state.table.isBlocked($0.key) }, state.key) }
        return HandshakeContext(
            me: configuration.me, key: key, planHash: configuration.planHash,
            peers: peers.mapValues(\.publicKey)
        )
    }

    /// Registers a connection we dialled; `nil` when the mesh is stopping.
    func registerOutbound(_ channel: any Channel) -> ConnectionID? {
        state.withLock { state in
            guard !state.stopping else { return nil }
            state.nextConnection += 1
            let id = ConnectionID(state.nextConnection)
            state.connections[id] = Connection(channel: channel)
            return id
        }
    }

    /// The outbound gauge of `connection` (a fresh one if it is already gone).
    func gauge(_ connection: ConnectionID) -> OutboundGauge {
        state.withLock { $0.connections[connection]?.gauge } ?? OutboundGauge()
    }

    /// Takes a pending-handshake slot for an inbound connection from `address`, or refuses it.
    ///
    /// At most ``MeshConfiguration/maximumPendingPerAddress`` per address. When all
    /// ``MeshConfiguration/maximumPendingConnections`` are taken, the oldest pending connection
    /// of the address holding the most is evicted to make room, unless that is `address` itself:
    /// idle connections from a few addresses cannot keep a neighbour out.
    func admitInbound(_ channel: any Channel, address: String) -> ConnectionID? {
        var effects: Effects = []
        let id = state.withLock { state -> ConnectionID? in
            guard !state.stopping else { return nil }
            let mine = state.pendingByAddress[address, default: 0]
            guard mine < configuration.maximumPendingPerAddress else {
                countRefusal(.tooManyPending, claimedPeer: nil, detail: "", individually: false, &state, &effects)
                return nil
            }
            if state.pendingCount >= configuration.maximumPendingConnections {
                let busiest = state.pendingByAddress.max { a, b in (a.value, b.key) < (b.value, a.key) }
                guard let busiest, busiest.key != address, busiest.value > mine,
                    let victim = state.connections.filter({ $0.value.pendingAddress == busiest.key })
                        .min(by: { $0.value.admittedAt < $1.value.admittedAt })
                else {
                    countRefusal(.tooManyPending, claimedPeer: nil, detail: "", individually: false, &state, &effects)
                    return nil
                }
                releasePending(victim.key, &state)
                state.connections[victim.key] = nil
                countRefusal(.tooManyPending, claimedPeer: nil, detail: "", individually: false, &state, &effects)
                let evicted = victim.value.channel
                effects.append { evicted.close(promise: nil) }
            }
            state.nextConnection += 1
            let id = ConnectionID(state.nextConnection)
            state.connections[id] = Connection(channel: channel, pendingAddress: address, admittedAt: state.nextConnection)
            state.pendingCount += 1
            state.pendingByAddress[address, default: 0] += 1
            return id
        }
        for effect in effects { effect() }
        return id
    }

    private func releasePending(_ id: ConnectionID, _ state: inout State) {
        guard let address = state.connections[id]?.pendingAddress else { return }
        state.connections[id]?.pendingAddress = nil
        state.pendingCount -= 1
        let left = state.pendingByAddress[address, default: 1] - 1
        state.pendingByAddress[address] = left > 0 ? left : nil
    }

    func releasePending(_ id: ConnectionID) {
        state.withLock { releasePending(id, &$0) }
    }

    /// A handshake failed. The first failure per claimed neighbour (or per stranger) and reason in
    /// each summary interval is logged and reported on its own; the rest only in the summary.
    func handshakeFailed(_ failure: HandshakeFailure, remote: String, connection: ConnectionID) {
        var effects: Effects = []
        state.withLock { state in
            // An evicted connection was already counted when it was evicted.
            guard state.connections[connection] != nil else { return }
            releasePending(connection, &state)
            countRefusal(
                failure.reason, claimedPeer: failure.claimedPeer, detail: failure.detail, remote: remote, individually: true,
                &state, &effects
            )
        }
        for effect in effects { effect() }
    }

    private func countRefusal(
        _ reason: Reason,
        claimedPeer: String?,
        detail: String,
        remote: String = "?",
        individually: Bool,
        _ state: inout State,
        _ effects: inout Effects
    ) {
        state.counters.handshakeFailures[reason, default: 0] += 1
        state.refusals[reason, default: 0] += 1
        let neighbour = claimedPeer.flatMap { PeerID($0) }.flatMap { state.peers[$0] != nil ? $0 : nil }
        let key = "\(neighbour?.rawValue ?? "?")|\(reason)"
        if individually && state.reportedIndividually.insert(key).inserted {
            yield(.refused(peer: claimedPeer, reason: reason, detail: detail), &state, &effects)
            let logger = self.logger
            effects.append {
                logger.info(
                    "Handshake failed",
                    metadata: ["peer": "\(claimedPeer ?? "?")", "remote": "\(remote)", "reason": "\(reason)", "detail": "\(detail)"]
                )
            }
        } else {
            state.suppressed += 1
        }
        if !state.summaryScheduled {
            state.summaryScheduled = true
            let interval = TimeAmount.nanoseconds(nanoseconds(configuration.refusalSummaryInterval))
            effects.append { [self] in _ = group.any().scheduleTask(in: interval) { self.flushRefusalSummary() } }
        }
    }

    /// Logs (and reports) one line for the refusals of the last interval that were not reported one by one.
    private func flushRefusalSummary() {
        var effects: Effects = []
        state.withLock { state in
            defer {
                state.refusals = [:]
                state.reportedIndividually = []
                state.suppressed = 0
                state.summaryScheduled = false
            }
            guard state.suppressed > 0, !state.stopping else { return }
            let total = state.refusals.values.reduce(0, +)
            let byReason = state.refusals.sorted { ($0.value, $1.key.rawValue) > ($1.value, $0.key.rawValue) }
            let list = byReason.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            let detail = "refused \(total) connections in the last \(configuration.refusalSummaryInterval) (\(list))"
            yield(.refused(peer: nil, reason: byReason.first?.key ?? .tooManyPending, detail: detail), &state, &effects)
            var metadata: Logger.Metadata = ["refused": "\(total)", "reason": "\(byReason.first?.key ?? .tooManyPending)"]
            for (reason, count) in byReason { metadata["refused.\(reason)"] = "\(count)" }
            let logger = self.logger
            let summary = metadata
            effects.append { logger.info("Refused unauthenticated connections: \(detail)", metadata: summary) }
        }
        for effect in effects { effect() }
    }

    // MARK: Authenticated connections

    /// `connection` authenticated `peer`; `false` when it must close (stopping, or the peer was
    /// removed meanwhile) — the table decides everything else.
    func established(_ connection: ConnectionID, peer: PeerID, dialledByMe: Bool) -> Bool {
        var effects: Effects = []
        let admitted = state.withLock { state -> Bool in
            releasePending(connection, &state)
            guard !state.stopping, state.peers[peer] != nil, state.connections[connection] != nil else { return false }
            state.connections[connection]?.established = true
            if state.readingPaused, let channel = state.connections[connection]?.channel {
                effects.append { channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
            }
            let actions = state.table.handshakeCompleted(peer: peer, connection: connection, dialledByMe: dialledByMe)
            perform(actions, &state, &effects)
            return true
        }
        for effect in effects { effect() }
        return admitted
    }

    func selectReceived(_ connection: ConnectionID, token: SelectToken) {
        input { $0.selectReceived(on: connection, token: token) }
    }

    func supersededReceived(_ connection: ConnectionID) {
        input { $0.supersededReceived(on: connection) }
    }

    func messageReceived(_ connection: ConnectionID, _ payload: [UInt8]) {
        input { $0.messageReceived(on: connection, payload) }
    }

    /// A connection closed (channelInactive): forget it and tell the table.
    func connectionClosed(_ connection: ConnectionID, reason: Reason, detail: String) {
        var effects: Effects = []
        state.withLock { state in
            releasePending(connection, &state)
            state.connections[connection] = nil
            let reason = state.stopping && reason == .closedByPeer ? .stopping : reason
            perform(state.table.connectionClosed(connection, reason: reason, detail: detail), &state, &effects)
        }
        for effect in effects { effect() }
    }

    func frameRejected(peer: PeerID, reason: Reason, detail: String) {
        state.withLock { $0.counters.framesRejected[reason, default: 0] += 1 }
        logger.info("Rejected a frame; closing the session", metadata: ["peer": "\(peer)", "reason": "\(reason)", "detail": "\(detail)"])
    }

    func messageSent() {
        state.withLock { $0.counters.messagesSent += 1 }
    }

    /// Closes every connection with `peer` and refuses it (handshakes and dials) for `backoff`.
    func disconnect(_ peer: PeerID, reason: Reason, detail: String, backoff: Duration) {
        input { $0.disconnect(peer, reason: reason, detail: detail, backoff: backoff) }
    }

    // MARK: Sending

    struct Target {
        var connection: ConnectionID
        var channel: any Channel
        var gauge: OutboundGauge
    }

    /// The connection to write `peer`'s messages on; while a session is being handed over to
    /// another connection, waits for it (bounded by the handover and drain timers).
    func sendTarget(for peer: PeerID) async -> Target? {
        while true {
            enum Step { case target(Target), none, wait }
            let step = state.withLock { state -> Step in
                guard !state.stopping else { return .none }
                if let id = state.table.sendTarget(for: peer), let entry = state.connections[id] {
                    return .target(Target(connection: id, channel: entry.channel, gauge: entry.gauge))
                }
                return state.table.isAwaiting(peer) ? .wait : .none
            }
            switch step {
            case .target(let target): return target
            case .none: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        guard !state.stopping, state.table.isAwaiting(peer) else { return true }
                        state.sendWaiters[peer, default: []].append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    // MARK: Dialling

    /// Waits until the dial loop for `peer` should dial: no session is open and the peer is not
    /// blocked (returns at once when that holds), or the mesh stops.
    func waitUntilDialNeeded(_ peer: PeerID) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.stopping || !state.table.needsNoDial(peer) { return true }
                state.dialWaiters[peer, default: []].append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func needsNoDial(_ peer: PeerID) -> Bool { state.withLock { $0.table.needsNoDial(peer) } }

    /// The endpoint to dial for `peer`, or `nil` when the dial loop of `generation` should end.
    func dialTarget(_ peer: PeerID, generation: Int) -> MeshPeer? {
        state.withLock { state in
            guard !state.stopping, state.dialGeneration[peer] == generation else { return nil }
            return state.peers[peer]
        }
    }

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

    /// A rotated identity key: every handshake from now on uses it; sessions opened under the
    /// old one stay valid until they close (as WireGuard does).
    func updateIdentity(_ key: Ed25519.PrivateKey) {
        state.withLock { $0.key = key }
    }

    /// What a new connection announces first, once authenticated.
    func topologyFingerprint() -> [UInt8]? { state.withLock { $0.topologyFingerprint } }

    /// The topology file changed: announce the new fingerprint on every authenticated connection
    /// (new ones announce it anyway).
    func updateTopologyFingerprint(_ fingerprint: [UInt8]) {
        let channels = state.withLock { state -> [any Channel] in
            guard state.topologyFingerprint != fingerprint else { return [] }
            state.topologyFingerprint = fingerprint
            return state.connections.values.filter(\.established).map(\.channel)
        }
        for channel in channels { channel.triggerUserOutboundEvent(ConnectionCommand.announceTopology(fingerprint), promise: nil) }
    }

    /// A neighbour's `topology` record, on any of its authenticated connections.
    func topologyReceived(_ connection: ConnectionID, peer: PeerID, fingerprint: [UInt8]) {
        var effects: Effects = []
        state.withLock { state in
            guard !state.stopping, state.connections[connection]?.established == true, state.peers[peer] != nil else { return }
            yield(.topologyAnnounced(peer, fingerprint: fingerprint), &state, &effects)
        }
        for effect in effects { effect() }
    }

    func updatePeers(_ peers: [PeerID: MeshPeer]) {
        var effects: Effects = []
        state.withLock { state in
            let old = state.peers
            state.peers = peers
            for peer in old.keys where peers[peer] == nil {
                state.dialGeneration[peer] = (state.dialGeneration[peer] ?? 0) + 1
                perform(state.table.peerRemoved(peer), &state, &effects)
            }
            for (peer, entry) in peers where peer != me && (old[peer] == nil || old[peer]?.host != entry.host || old[peer]?.port != entry.port) {
                let generation = (state.dialGeneration[peer] ?? 0) + 1
                state.dialGeneration[peer] = generation
                state.dialCommands?.yield((peer, generation))
            }
        }
        logger.info("Peers updated", metadata: ["peers": "\(peers.keys.sorted().map(\.rawValue))"])
        for effect in effects { effect() }
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

    func isStopping() -> Bool { state.withLock { $0.stopping } }

    /// Stops dialling and closes every connection. Idempotent.
    func stop() {
        var effects: Effects = []
        let (channels, commands, waiters, port) = state.withLock { state in
            state.stopping = true
            settleWaiters(&state, &effects)
            defer {
                state.dialCommands = nil
                state.portWaiters = []
            }
            return (state.connections.values.map(\.channel), state.dialCommands, state.portWaiters, state.boundPort ?? 0)
        }
        for effect in effects { effect() }
        commands?.finish()
        for waiter in waiters { waiter.resume(returning: port) }
        for channel in channels { channel.close(promise: nil) }
    }

    func finish() {
        eventContinuation.finish()
    }

    var counters: MeshCounters { state.withLock { $0.counters } }
}

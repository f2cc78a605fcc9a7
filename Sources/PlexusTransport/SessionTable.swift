package import PlexusCore

/// One TCP connection, for the lifetime of a mesh (never reused).
package struct ConnectionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    package var raw: UInt64
    package init(_ raw: UInt64) { self.raw = raw }
    package static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    package var description: String { "#\(raw)" }
}

/// The authority's choice of a connection as the session, sealed as a `select` record on it.
///
/// ```
/// select payload = incarnation: u64 LE ‖ sequence: u64 LE      (16 bytes)
/// ```
///
/// `incarnation` is random per mesh instance (a restarted authority draws a new one); `sequence`
/// counts the authority's choices toward this peer from 1, so a larger one is a later choice.
package struct SelectToken: Hashable, Sendable, CustomStringConvertible {
    package var incarnation: UInt64
    package var sequence: UInt64

    package init(incarnation: UInt64, sequence: UInt64) {
        self.incarnation = incarnation
        self.sequence = sequence
    }

    package static let byteCount = 16

    package var encoded: [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        writer.write(littleEndian: incarnation)
        writer.write(littleEndian: sequence)
        return writer.bytes
    }

    /// Parses a select payload from the peer; `nil` unless it is exactly 16 bytes with a sequence ≥ 1.
    package init?(bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else { return nil }
        var incarnation: UInt64 = 0
        var sequence: UInt64 = 0
        for i in 0..<8 {
            incarnation |= UInt64(bytes[i]) << (8 * UInt64(i))
            sequence |= UInt64(bytes[8 + i]) << (8 * UInt64(i))
        }
        guard sequence >= 1 else { return nil }
        self.init(incarnation: incarnation, sequence: sequence)
    }

    package var description: String { "\(sequence)" }
}

/// The mesh's session table as a pure state machine: inputs in, ``Action``s out; no I/O, no
/// clock, no NIO. ``MeshCore`` feeds it what its connections report and carries out the actions.
///
/// ## One session per pair, by construction
///
/// Of each pair of peers, the one with the lower id is the pair's *authority*; the other is the
/// *follower*. Only the authority decides which TCP connection is the session:
///
/// - **Authority.** Every connection that completes its handshake becomes the session at once
///   (newest wins, so a restarted peer's fresh connection replaces a half-open old one). It seals
///   a `select` record carrying a ``SelectToken`` as the connection's first record, and seals
///   `superseded` on the connection it replaces. It keeps *no* other connection: every older one
///   has been superseded and closes as soon as the follower has read to its end.
/// - **Follower.** A connection that completed its handshake is only *provisional*. Its session is
///   the open connection with the largest ``SelectToken`` received (a token from a new
///   incarnation beats any from the previous one); it never goes back to an older token, even
///   after the newest connection closed. On `superseded` it closes that connection;
///   if it was the session, it waits (a *handover*, bounded by a timer) for the replacement's
///   `select`, which the authority sent at the same moment.
///
/// Both ends therefore converge on the authority's newest connection whatever the order in which
/// handshakes complete, records arrive and connections close — the exhaustive two-table test
/// (`SessionTableTests`) checks every interleaving of two simultaneous dials.
///
/// Why the old table lost links. It kept the decision inline in the shell, per end, under a
/// lock that a close crossed twice: `channelInactive` first removed the connection from the
/// draining set, then (in a second critical section) from the session slot. A handshake that
/// completed on another event loop in between still saw the dying connection as the session,
/// replaced it and put it into the draining set *after* its close had been processed; nothing
/// ever removed it again, so every later message from that peer on the surviving connection was
/// held back "until the drain ends" — forever, and without bound. The race window is exactly a
/// simultaneous dial: the follower supersedes its duplicate and, a moment later on the other
/// connection, the last handshake flight arrives. (Measured on the old code with the 4-mesh start
/// test: 2 of 400 starts lost a link's messages, each time right after exactly that insertion of
/// an inactive channel on that link.) On top of that each end applied the tie-break
/// alone ("the lower id's dial wins, otherwise the newest"), and "newest" is judged from the
/// local completion order, which two ends do not share once a redial lands in a handover gap.
/// Here a close is one input that removes the connection from every set at once, and only the
/// authority chooses.
///
/// ## Order of messages across a handover
///
/// - Authority → follower: the authority sends nothing on a new session until every connection
///   it superseded has closed (``sendTarget(for:)`` is `nil` meanwhile), and the follower closes
///   a superseded connection only after reading it to the `superseded` record: nothing is lost or
///   reordered.
/// - Follower → authority: the follower writes on its newest selected connection; the authority
///   delivers messages from the oldest open chosen connection and holds the others' (at most
///   `maximumHeld` messages and `maximumHeldBytes` bytes, beyond which the oldest is closed with
///   ``Reason/drainOverflow``) until the older ones close.
package struct SessionTable: Hashable, Sendable {
    package enum Action: Hashable, Sendable {
        /// Seal `select(token)` on this connection: it is the session (authority only).
        case select(ConnectionID, SelectToken)
        /// Seal `superseded` on this connection and keep reading it until the peer closes it.
        case supersede(ConnectionID)
        /// Close this connection now (after what was already written).
        case close(ConnectionID, Reason, String)
        case sessionOpened(PeerID)
        case sessionClosed(PeerID, Reason, String)
        case deliver(PeerID, [UInt8])
        /// Call ``handoverExpired(_:token:)`` after the handover grace period.
        case scheduleHandoverExpiry(PeerID, token: UInt64)
        /// Call ``unblock(_:)`` after this long.
        case scheduleUnblock(PeerID, after: Duration)
    }

    package struct Connection: Hashable, Sendable {
        package var peer: PeerID
        package var dialledByMe: Bool
        /// The order of the choice that made it a session; `nil` while provisional (follower).
        var generation: Generation?
        /// Messages held back until every older chosen connection has closed.
        var held: [[UInt8]] = []
    }

    struct Generation: Comparable, Hashable, Sendable {
        var rank: UInt64
        var sequence: UInt64
        static func < (a: Self, b: Self) -> Bool { (a.rank, a.sequence) < (b.rank, b.sequence) }
    }

    struct Peer: Hashable, Sendable {
        var current: ConnectionID?
        /// `sessionOpened` was reported and `sessionClosed` not yet.
        var isOpen = false
        /// The token of a pending handover expiry (follower).
        var handover: UInt64?
        /// The chosen connections still open, oldest choice first.
        var order: [ConnectionID] = []
        var heldCount = 0
        var heldBytes = 0
        /// Authority: choices made so far.
        var sequence: UInt64 = 0
        /// Follower: the authority's latest incarnation seen and its rank.
        var incarnation: UInt64?
        var rank: UInt64 = 0
        /// Follower: the newest choice received.
        var highest: Generation?
    }

    package let me: PeerID
    package let incarnation: UInt64
    package let maximumHeld: Int
    package let maximumHeldBytes: Int
    package private(set) var connections: [ConnectionID: Connection] = [:]
    private var peers: [PeerID: Peer] = [:]
    private var blocked: Set<PeerID> = []
    private var nextHandoverToken: UInt64 = 0

    /// - Parameters:
    ///   - incarnation: random per mesh instance.
    ///   - maximumHeld: messages held per peer behind a draining connection. MUST be ≥ 1.
    ///   - maximumHeldBytes: their payload bytes. MUST be ≥ 1.
    package init(me: PeerID, incarnation: UInt64, maximumHeld: Int = 4096, maximumHeldBytes: Int = 64 << 20) {
        precondition(maximumHeld >= 1 && maximumHeldBytes >= 1, "the held-message bounds must be at least 1")
        self.me = me
        self.incarnation = incarnation
        self.maximumHeld = maximumHeld
        self.maximumHeldBytes = maximumHeldBytes
    }

    package func isAuthority(toward peer: PeerID) -> Bool { me < peer }

    // MARK: Queries

    /// The connection to write `peer`'s messages on, or `nil` (no session, or waiting).
    package func sendTarget(for peer: PeerID) -> ConnectionID? {
        guard let state = peers[peer], let current = state.current else { return nil }
        if isAuthority(toward: peer) && state.order != [current] { return nil }
        return current
    }

    /// Whether a session with `peer` is open or being handed over (a send should wait for it).
    package func isOpen(_ peer: PeerID) -> Bool { peers[peer]?.isOpen ?? false }

    /// Whether a send to `peer` should wait: the session is open but has no writable connection yet.
    package func isAwaiting(_ peer: PeerID) -> Bool { isOpen(peer) && sendTarget(for: peer) == nil }

    /// The session's connection (also while the authority waits for superseded ones to close).
    package func session(of peer: PeerID) -> ConnectionID? { peers[peer]?.current }

    /// Whether the dial loop should leave `peer` alone: a session is open, or the peer is blocked.
    package func needsNoDial(_ peer: PeerID) -> Bool { isOpen(peer) || blocked.contains(peer) }

    package func isBlocked(_ peer: PeerID) -> Bool { blocked.contains(peer) }

    // MARK: Inputs

    /// A connection authenticated `peer`. `dialledByMe`: this end initiated it (for logs).
    package mutating func handshakeCompleted(peer: PeerID, connection: ConnectionID, dialledByMe: Bool) -> [Action] {
        var actions: [Action] = []
        guard peer != me, connections[connection] == nil else {
            actions.append(.close(connection, .malformedHandshake, "a connection authenticated twice or as this node"))
            return actions
        }
        guard !blocked.contains(peer) else {
            actions.append(.close(connection, .disconnected, "the peer was disconnected and its backoff has not elapsed"))
            return actions
        }
        connections[connection] = Connection(peer: peer, dialledByMe: dialledByMe)
        guard isAuthority(toward: peer) else { return actions }  // provisional until selected
        var state = peers[peer] ?? Peer()
        state.sequence += 1
        connections[connection]?.generation = Generation(rank: 0, sequence: state.sequence)
        state.order.append(connection)
        actions.append(.select(connection, SelectToken(incarnation: incarnation, sequence: state.sequence)))
        if let old = state.current { actions.append(.supersede(old)) }
        makeSession(connection, of: peer, &state, &actions)
        peers[peer] = state
        return actions
    }

    /// The follower received `select(token)` on `connection`.
    package mutating func selectReceived(on connection: ConnectionID, token: SelectToken) -> [Action] {
        var actions: [Action] = []
        guard let entry = connections[connection] else { return actions }
        let peer = entry.peer
        guard !isAuthority(toward: peer), entry.generation == nil else {
            actions.append(.close(connection, .malformedRecord, "an unexpected select record"))
            return actions
        }
        var state = peers[peer] ?? Peer()
        if state.incarnation != token.incarnation {
            if state.incarnation != nil { state.rank += 1 }
            state.incarnation = token.incarnation
        }
        let generation = Generation(rank: state.rank, sequence: token.sequence)
        connections[connection]?.generation = generation
        let index = state.order.firstIndex { (connections[$0]?.generation ?? generation) > generation } ?? state.order.count
        state.order.insert(connection, at: index)
        // Never back to an older choice, even when the newest one has closed meanwhile: the
        // authority has superseded every older connection, and anything written on one would
        // overtake what it holds from the newer one.
        if state.highest.map({ generation > $0 }) ?? true {
            state.highest = generation
            makeSession(connection, of: peer, &state, &actions)
        }
        peers[peer] = state
        return actions
    }

    /// The peer sealed `superseded` on `connection`.
    package mutating func supersededReceived(on connection: ConnectionID) -> [Action] {
        var actions: [Action] = []
        guard let entry = connections[connection] else { return actions }
        let peer = entry.peer
        guard !isAuthority(toward: peer) else {
            actions.append(.close(connection, .malformedRecord, "superseded sent by the follower"))
            return actions
        }
        actions.append(.close(connection, .superseded, "the peer keeps another connection"))
        guard var state = peers[peer], state.current == connection else { return actions }
        state.current = nil
        nextHandoverToken += 1
        state.handover = nextHandoverToken
        peers[peer] = state
        actions.append(.scheduleHandoverExpiry(peer, token: nextHandoverToken))
        return actions
    }

    /// An application message arrived on `connection`.
    package mutating func messageReceived(on connection: ConnectionID, _ payload: [UInt8]) -> [Action] {
        var actions: [Action] = []
        guard let entry = connections[connection] else { return actions }
        let peer = entry.peer
        guard entry.generation != nil, var state = peers[peer] else {
            actions.append(.close(connection, .malformedRecord, "a message on a connection that is not the session"))
            return actions
        }
        guard state.order.first != connection else {
            actions.append(.deliver(peer, payload))
            return actions
        }
        guard state.order.contains(connection) else { return actions }  // dropped after a drain overflow
        connections[connection]?.held.append(payload)
        state.heldCount += 1
        state.heldBytes += payload.count
        if state.heldCount > maximumHeld || state.heldBytes > maximumHeldBytes, let oldest = state.order.first {
            actions.append(
                .close(oldest, .drainOverflow, "more than \(maximumHeld) messages or \(maximumHeldBytes) bytes held behind it")
            )
            state.order.removeFirst()
            peers[peer] = state
            flush(peer, into: &actions)
            return actions
        }
        peers[peer] = state
        return actions
    }

    /// `connection` closed (either side). Unknown ids (never authenticated, or already forgotten) are ignored.
    package mutating func connectionClosed(_ connection: ConnectionID, reason: Reason, detail: String) -> [Action] {
        var actions: [Action] = []
        guard let entry = connections.removeValue(forKey: connection), var state = peers[entry.peer] else { return actions }
        let peer = entry.peer
        state.heldCount -= entry.held.count
        state.heldBytes -= entry.held.reduce(0) { $0 + $1.count }
        state.order.removeAll { $0 == connection }
        if state.current == connection {
            state.current = nil
            if state.isOpen {
                state.isOpen = false
                state.handover = nil
                actions.append(.sessionClosed(peer, reason, detail))
            }
        }
        peers[peer] = state
        flush(peer, into: &actions)
        return actions
    }

    /// The handover grace period of `token` ended.
    package mutating func handoverExpired(_ peer: PeerID, token: UInt64) -> [Action] {
        var actions: [Action] = []
        guard var state = peers[peer], state.handover == token else { return actions }
        state.handover = nil
        if state.current == nil && state.isOpen {
            state.isOpen = false
            actions.append(.sessionClosed(peer, .superseded, "the superseded session was not replaced in time"))
        }
        peers[peer] = state
        return actions
    }

    /// The peer left the topology: close all its connections now.
    package mutating func peerRemoved(_ peer: PeerID) -> [Action] {
        forget(peer, reason: .removed, detail: "the peer was removed from the topology")
    }

    /// Closes all connections with `peer` and refuses it until ``unblock(_:)``.
    package mutating func disconnect(_ peer: PeerID, reason: Reason, detail: String, backoff: Duration) -> [Action] {
        blocked.insert(peer)
        var actions = forget(peer, reason: reason, detail: detail)
        actions.append(.scheduleUnblock(peer, after: backoff))
        return actions
    }

    /// The backoff of a ``disconnect(_:reason:detail:backoff:)`` elapsed: the peer may connect again.
    @discardableResult
    package mutating func unblock(_ peer: PeerID) -> [Action] {
        blocked.remove(peer)
        return []
    }

    // MARK: Helpers

    /// `connection` is now the session (a handover ends silently; a first one is reported).
    private func makeSession(_ connection: ConnectionID, of peer: PeerID, _ state: inout Peer, _ actions: inout [Action]) {
        state.current = connection
        state.handover = nil
        if !state.isOpen {
            state.isOpen = true
            actions.append(.sessionOpened(peer))
        }
    }

    private mutating func forget(_ peer: PeerID, reason: Reason, detail: String) -> [Action] {
        var actions: [Action] = []
        for (id, entry) in connections where entry.peer == peer {
            connections[id] = nil
            actions.append(.close(id, reason, detail))
        }
        actions.sort { a, b in
            if case .close(let x, _, _) = a, case .close(let y, _, _) = b { return x < y }
            return false
        }
        if var state = peers[peer] {
            if state.isOpen { actions.append(.sessionClosed(peer, reason, detail)) }
            // The choice counter and the incarnation seen survive: later tokens stay larger.
            state.current = nil
            state.isOpen = false
            state.handover = nil
            state.order = []
            state.heldCount = 0
            state.heldBytes = 0
            peers[peer] = state
        }
        return actions
    }

    /// Delivers what the (new) oldest chosen connection held.
    private mutating func flush(_ peer: PeerID, into actions: inout [Action]) {
        guard var state = peers[peer], let head = state.order.first, let held = connections[head]?.held, !held.isEmpty else {
            return
        }
        connections[head]?.held = []
        state.heldCount -= held.count
        state.heldBytes -= held.reduce(0) { $0 + $1.count }
        peers[peer] = state
        for payload in held { actions.append(.deliver(peer, payload)) }
    }
}

import PlexusCore
import PlexusTransport
import Testing

/// Two ``SessionTable``s, one per end of a pair, wired together by a deterministic model of the
/// wire, explored over every interleaving of two simultaneous dials.
///
/// The model: connection X is dialled by `a` (the authority), Y by `b`. On each, the responder
/// completes its handshake first and the initiator one flight later (on `ready`). Every record a
/// table asks for (`select`, `superseded`, messages) and every close (a FIN after what was
/// written) travels in a FIFO per connection and direction; the two connections are not ordered
/// with respect to each other. An end that closes a connection reads nothing more on it and
/// learns of its own close later (as a channel's `channelInactive` comes after `close()`).
/// Handover timers may fire at any moment. Each end sends two messages whenever it has a send
/// target. Optionally one connection fails abruptly at any moment (both ends see it close, what
/// was in flight is lost). The drain grace timer of a superseded connection (seconds in the real
/// shell) is not modelled: it only backs up a peer that never closes.
struct SessionTableTests {
    enum Frame: Hashable { case select(SelectToken), superseded, message(UInt8), fin }

    struct Wire: Hashable {
        var responderDone = false
        var initiatorDone = false
        /// Indexed by the sending end (0 = a, 1 = b).
        var queues: [[Frame]] = [[], []]
        var closed = [false, false]
        /// A close this end made or saw, not yet reported to its table.
        var pendingReport: [Reason?] = [nil, nil]
        var failed = false
    }

    struct World: Hashable {
        var tables: [SessionTable]
        var wires: [Wire] = [Wire(), Wire()]
        var sent = [0, 0]
        var delivered: [[UInt8]] = [[], []]
        var opened = [0, 0]
        var closedEvents = [0, 0]
        var timers: [[UInt64]] = [[], []]
        var timerFired = false
        var failures = 0
        var violation: String?
    }

    static let ids = [PeerID("a")!, PeerID("b")!]
    static let messagesPerEnd = 2
    /// X (index 0) is dialled by a, Y (index 1) by b: the responder of wire `w` is end `1 − w`.
    static func responder(_ wire: Int) -> Int { 1 - wire }
    static func initiator(_ wire: Int) -> Int { wire }

    static func start() -> World {
        World(tables: [
            SessionTable(me: ids[0], incarnation: 0xA11CE, maximumHeld: 16),
            SessionTable(me: ids[1], incarnation: 0xB0B, maximumHeld: 16),
        ])
    }

    // MARK: The model

    static func connection(_ wire: Int) -> ConnectionID { ConnectionID(UInt64(wire)) }

    static func apply(_ actions: [SessionTable.Action], at end: Int, to world: inout World) {
        for action in actions {
            switch action {
            case .select(let id, let token): enqueue(.select(token), on: Int(id.raw), from: end, in: &world)
            case .supersede(let id): enqueue(.superseded, on: Int(id.raw), from: end, in: &world)
            case .close(let id, let reason, _): close(Int(id.raw), at: end, reason: reason, in: &world)
            case .sessionOpened:
                if world.opened[end] != world.closedEvents[end] { world.violation = "end \(end) opened twice" }
                world.opened[end] += 1
            case .sessionClosed:
                if world.opened[end] != world.closedEvents[end] + 1 { world.violation = "end \(end) closed unopened" }
                world.closedEvents[end] += 1
            case .deliver(_, let payload): world.delivered[end] += payload
            case .scheduleHandoverExpiry(_, let token): world.timers[end].append(token)
            case .scheduleUnblock: world.violation = "unexpected unblock"
            }
        }
    }

    static func enqueue(_ frame: Frame, on wire: Int, from end: Int, in world: inout World) {
        guard !world.wires[wire].closed[end], !world.wires[wire].failed else { return }
        world.wires[wire].queues[end].append(frame)
    }

    static func close(_ wire: Int, at end: Int, reason: Reason, in world: inout World) {
        guard !world.wires[wire].closed[end] else { return }
        world.wires[wire].closed[end] = true
        world.wires[wire].pendingReport[end] = reason
        if !world.wires[wire].failed { world.wires[wire].queues[end].append(.fin) }
        world.wires[wire].queues[1 - end] = []  // this end reads nothing more
    }

    /// Every world one step away, with a label for failure messages.
    static func successors(of world: World, allowFailure: Bool) -> [(String, World)] {
        var next: [(String, World)] = []
        for w in 0..<2 {
            let wire = world.wires[w]
            let id = connection(w)
            // Handshakes.
            let r = responder(w), i = initiator(w)
            if !wire.responderDone && !wire.failed && !wire.closed[r] {
                var copy = world
                copy.wires[w].responderDone = true
                let actions = copy.tables[r].handshakeCompleted(peer: ids[i], connection: id, dialledByMe: false)
                apply(actions, at: r, to: &copy)
                next.append(("complete \(w) at responder", copy))
            }
            if wire.responderDone && !wire.initiatorDone && !wire.failed && !wire.closed[i] {
                var copy = world
                copy.wires[w].initiatorDone = true
                let actions = copy.tables[i].handshakeCompleted(peer: ids[r], connection: id, dialledByMe: true)
                apply(actions, at: i, to: &copy)
                next.append(("complete \(w) at initiator", copy))
            }
            // Frames: the receiver of end e's queue is 1 − e, once its handshake completed.
            for sender in 0..<2 {
                let receiver = 1 - sender
                let done = receiver == r ? wire.responderDone : wire.initiatorDone
                guard let frame = wire.queues[sender].first, done, !wire.closed[receiver] else { continue }
                var copy = world
                copy.wires[w].queues[sender].removeFirst()
                let actions: [SessionTable.Action]
                switch frame {
                case .select(let token): actions = copy.tables[receiver].selectReceived(on: id, token: token)
                case .superseded: actions = copy.tables[receiver].supersededReceived(on: id)
                case .message(let byte): actions = copy.tables[receiver].messageReceived(on: id, [byte])
                case .fin:
                    actions = []
                    close(w, at: receiver, reason: .closedByPeer, in: &copy)
                }
                apply(actions, at: receiver, to: &copy)
                next.append(("deliver \(frame) on \(w) to \(receiver)", copy))
            }
            // A close reaches the table that made or saw it.
            for end in 0..<2 {
                guard let reason = wire.pendingReport[end] else { continue }
                var copy = world
                copy.wires[w].pendingReport[end] = nil
                apply(copy.tables[end].connectionClosed(id, reason: reason, detail: ""), at: end, to: &copy)
                next.append(("report close of \(w) at \(end)", copy))
            }
            if allowFailure && world.failures == 0 && !wire.failed && !(wire.closed[0] && wire.closed[1]) {
                var copy = world
                copy.failures += 1
                copy.wires[w].failed = true
                copy.wires[w].queues = [[], []]
                for end in 0..<2 where !copy.wires[w].closed[end] {
                    copy.wires[w].closed[end] = true
                    let started = end == r ? wire.responderDone : wire.initiatorDone
                    // An end that never completed the handshake never told its table about it.
                    if started { copy.wires[w].pendingReport[end] = .connectionError }
                }
                next.append(("fail \(w)", copy))
            }
        }
        for end in 0..<2 {
            // Sends.
            if world.sent[end] < messagesPerEnd, let target = world.tables[end].sendTarget(for: ids[1 - end]) {
                var copy = world
                let w = Int(target.raw)
                if copy.wires[w].closed[end] && !copy.wires[w].failed {
                    copy.violation = "end \(end) sends on a connection it closed"
                }
                copy.sent[end] += 1
                enqueue(.message(UInt8(end * 100 + copy.sent[end])), on: w, from: end, in: &copy)
                next.append(("send at \(end)", copy))
            }
            // Timers.
            for (index, token) in world.timers[end].enumerated() {
                var copy = world
                copy.timers[end].remove(at: index)
                copy.timerFired = true
                apply(copy.tables[end].handoverExpired(ids[1 - end], token: token), at: end, to: &copy)
                next.append(("handover timer at \(end)", copy))
            }
        }
        return next
    }

    /// What must hold in a world where nothing more can happen; `nil` when it does.
    static func check(final world: World) -> String? {
        if let violation = world.violation { return violation }
        let a = world.tables[0], b = world.tables[1]
        let sessionA = a.session(of: ids[1]), sessionB = b.session(of: ids[0])
        for end in 0..<2 {
            let got = world.delivered[end]
            let expected = (1...messagesPerEnd).map { UInt8((1 - end) * 100 + $0) }
            if world.failures == 0 {
                if got != expected { return "end \(end) delivered \(got), sent \(expected)" }
            } else if got != expected.filter(got.contains) || Set(got).count != got.count {
                return "end \(end) delivered \(got) out of order or twice (sent \(expected))"
            }
            if !world.timerFired && world.failures == 0 && (world.opened[end] != 1 || world.closedEvents[end] != 0) {
                return "end \(end) reported \(world.opened[end]) opens and \(world.closedEvents[end]) closes"
            }
        }
        if let sessionA, let sessionB {
            guard sessionA == sessionB else { return "split: a keeps \(sessionA), b keeps \(sessionB)" }
            let w = Int(sessionA.raw)
            guard !world.wires[w].closed[0] && !world.wires[w].closed[1] else { return "the session \(sessionA) is closed" }
            guard a.isOpen(ids[1]), b.isOpen(ids[0]), a.sendTarget(for: ids[1]) != nil, b.sendTarget(for: ids[0]) != nil else {
                return "the session is not open and writable at both ends"
            }
            for other in 0..<2 where other != w {
                if !(world.wires[other].closed[0] && world.wires[other].closed[1]) && world.wires[other].initiatorDone {
                    return "the other connection \(other) is still open"
                }
            }
            return nil
        }
        guard world.failures > 0, sessionA == nil, sessionB == nil else {
            return "no common session: a \(sessionA.map(\.description) ?? "none"), b \(sessionB.map(\.description) ?? "none")"
        }
        // Only a failure may leave no session, and then nothing may stay open (the dial loops redial).
        for w in 0..<2 where world.wires[w].responderDone && !(world.wires[w].closed[0] && world.wires[w].closed[1]) {
            if world.wires[w].initiatorDone { return "no session but connection \(w) is open" }
        }
        if a.isOpen(ids[1]) || b.isOpen(ids[0]) { return "a session is reported open without a connection" }
        return nil
    }

    struct Exploration {
        var states = 0
        var terminals = 0
        var interleavings: Double = 0
        var failures: [String] = []
    }

    /// Depth-first over every interleaving, memoised on the world (equal worlds have equal futures);
    /// `interleavings` counts complete paths.
    static func explore(allowFailure: Bool) -> Exploration {
        var result = Exploration()
        var paths: [World: Double] = [:]
        func visit(_ world: World, trace: [String]) -> Double {
            if let known = paths[world] { return known }
            result.states += 1
            let next = successors(of: world, allowFailure: allowFailure)
            var count: Double = 0
            if next.isEmpty {
                result.terminals += 1
                count = 1
                if let problem = check(final: world), result.failures.count < 5 {
                    result.failures.append("\(problem)\n  after: \(trace.joined(separator: "; "))")
                }
            } else {
                for (label, successor) in next { count += visit(successor, trace: trace + [label]) }
            }
            paths[world] = count
            return count
        }
        result.interleavings = visit(start(), trace: [])
        return result
    }

    @Test func everyInterleavingOfTwoSimultaneousDialsConvergesOnOneConnection() {
        let result = Self.explore(allowFailure: false)
        print("SessionTable without failures: \(result.states) states, \(result.terminals) final, \(Int(result.interleavings)) interleavings")
        #expect(result.failures.isEmpty, "\(result.failures.joined(separator: "\n"))")
        #expect(result.interleavings > 10_000, "explored only \(result.interleavings) interleavings")
        #expect(result.terminals > 1)
    }

    @Test func everyInterleavingWithOneConnectionFailingConvergesOrClosesBoth() {
        let result = Self.explore(allowFailure: true)
        print("SessionTable with one failure: \(result.states) states, \(result.terminals) final, \(Int(result.interleavings)) interleavings")
        #expect(result.failures.isEmpty, "\(result.failures.joined(separator: "\n"))")
        #expect(result.interleavings > 100_000, "explored only \(result.interleavings) interleavings")
    }

    // MARK: Single scenarios

    @Test func aSecondSelectOrASupersededFromTheFollowerIsAViolation() {
        var a = SessionTable(me: Self.ids[0], incarnation: 1)
        var b = SessionTable(me: Self.ids[1], incarnation: 2)
        let x = ConnectionID(7)
        let opened = a.handshakeCompleted(peer: Self.ids[1], connection: x, dialledByMe: true)
        #expect(opened == [.select(x, SelectToken(incarnation: 1, sequence: 1)), .sessionOpened(Self.ids[1])])
        #expect(a.supersededReceived(on: x).first == .close(x, .malformedRecord, "superseded sent by the follower"))
        #expect(b.handshakeCompleted(peer: Self.ids[0], connection: x, dialledByMe: false).isEmpty)
        #expect(b.messageReceived(on: x, [1]).first == .close(x, .malformedRecord, "a message on a connection that is not the session"))
        #expect(b.selectReceived(on: x, token: SelectToken(incarnation: 1, sequence: 1)) == [.sessionOpened(Self.ids[0])])
        #expect(b.selectReceived(on: x, token: SelectToken(incarnation: 1, sequence: 2)).first == .close(x, .malformedRecord, "an unexpected select record"))
    }

    @Test func aRestartedAuthoritysNewIncarnationWinsOverAHalfOpenSession() {
        var b = SessionTable(me: Self.ids[1], incarnation: 2)
        let old = ConnectionID(1), new = ConnectionID(2)
        _ = b.handshakeCompleted(peer: Self.ids[0], connection: old, dialledByMe: true)
        _ = b.selectReceived(on: old, token: SelectToken(incarnation: 10, sequence: 9))
        _ = b.handshakeCompleted(peer: Self.ids[0], connection: new, dialledByMe: false)
        #expect(b.selectReceived(on: new, token: SelectToken(incarnation: 11, sequence: 1)).isEmpty)
        #expect(b.sendTarget(for: Self.ids[0]) == new)
        // The new session's messages wait behind the old one until it closes.
        #expect(b.messageReceived(on: new, [5]).isEmpty)
        #expect(b.connectionClosed(old, reason: .idleTimeout, detail: "") == [.deliver(Self.ids[0], [5])])
    }

    @Test func heldMessagesAreBoundedAndTheOldestConnectionGivesWay() {
        var a = SessionTable(me: Self.ids[0], incarnation: 1, maximumHeld: 3)
        let x = ConnectionID(1), y = ConnectionID(2)
        _ = a.handshakeCompleted(peer: Self.ids[1], connection: x, dialledByMe: true)
        let second = a.handshakeCompleted(peer: Self.ids[1], connection: y, dialledByMe: false)
        #expect(second == [.select(y, SelectToken(incarnation: 1, sequence: 2)), .supersede(x)])
        #expect(a.sendTarget(for: Self.ids[1]) == nil, "the authority waits for the superseded connection to close")
        for byte: UInt8 in 1...3 { #expect(a.messageReceived(on: y, [byte]).isEmpty) }
        #expect(a.messageReceived(on: x, [0]) == [.deliver(Self.ids[1], [0])])
        let overflow = a.messageReceived(on: y, [4])
        #expect(overflow.first == .close(x, .drainOverflow, "more than 3 messages or 67108864 bytes held behind it"))
        #expect(Array(overflow.dropFirst()) == (1...4).map { .deliver(Self.ids[1], [$0]) })
        #expect(a.connectionClosed(x, reason: .drainOverflow, detail: "").isEmpty)
        #expect(a.sendTarget(for: Self.ids[1]) == y)
    }

    @Test func disconnectClosesEverythingAndBlocksUntilUnblocked() {
        var a = SessionTable(me: Self.ids[0], incarnation: 1)
        let x = ConnectionID(1), y = ConnectionID(2)
        _ = a.handshakeCompleted(peer: Self.ids[1], connection: x, dialledByMe: true)
        let actions = a.disconnect(Self.ids[1], reason: .rejectionBudget, detail: "12 rejected", backoff: .seconds(3))
        #expect(actions == [
            .close(x, .rejectionBudget, "12 rejected"), .sessionClosed(Self.ids[1], .rejectionBudget, "12 rejected"),
            .scheduleUnblock(Self.ids[1], after: .seconds(3)),
        ])
        #expect(a.needsNoDial(Self.ids[1]))
        #expect(a.handshakeCompleted(peer: Self.ids[1], connection: y, dialledByMe: false).first?.isClose == true)
        a.unblock(Self.ids[1])
        #expect(!a.needsNoDial(Self.ids[1]))
        #expect(a.handshakeCompleted(peer: Self.ids[1], connection: y, dialledByMe: false) == [
            .select(y, SelectToken(incarnation: 1, sequence: 2)), .sessionOpened(Self.ids[1]),
        ])
    }

    @Test func selectTokenRoundTripsAndRefusesBadPayloads() {
        let token = SelectToken(incarnation: 0x0102_0304_0506_0708, sequence: 42)
        #expect(SelectToken(bytes: token.encoded) == token)
        #expect(SelectToken(bytes: Array(token.encoded.dropLast())) == nil)
        #expect(SelectToken(bytes: SelectToken(incarnation: 1, sequence: 0).encoded) == nil)
    }
}

extension SessionTable.Action {
    var isClose: Bool {
        if case .close = self { return true }
        return false
    }
}

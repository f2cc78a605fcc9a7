import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusSimulator
import Testing

/// The statistics round as a state machine: flooding, loss, duplication, partitions, re-keyed
/// origins, a joiner adopting the running network's basis, deadlines and hostile senders.
@Suite struct StatisticsRoundTests {
    static let planHash = [UInt8](repeating: 7, count: 32)

    struct Network {
        var ids: [PeerID]
        var keys: [PeerID: Ed25519.PrivateKey]
        var links: [PeerID: [PeerID]]

        /// A ring of `n` peers with chords every third peer (so several paths exist).
        static func ring(_ n: Int) -> Network {
            let ids = (0..<n).map { PeerID("site-" + ($0 < 10 ? "0" : "") + String($0))! }
            var links: [PeerID: Set<PeerID>] = [:]
            for i in 0..<n {
                for j in [(i + 1) % n] + (i % 3 == 0 ? [(i + n / 2) % n] : []) where j != i {
                    links[ids[i], default: []].insert(ids[j])
                    links[ids[j], default: []].insert(ids[i])
                }
            }
            return Network(
                ids: ids, keys: Dictionary(uniqueKeysWithValues: ids.map { ($0, Ed25519.PrivateKey()) }),
                links: links.mapValues { $0.sorted() }
            )
        }

        var pinned: [PeerID: Ed25519.PublicKey] { keys.mapValues(\.publicKey) }

        func round(_ peer: PeerID, payload: [UInt8]? = nil, key: Ed25519.PrivateKey? = nil, pinned: [PeerID: Ed25519.PublicKey]? = nil) -> StatisticsRound {
            var settings = StatisticsRound.Settings(me: peer, planHash: planHash, peers: pinned ?? self.pinned, neighbours: links[peer] ?? [])
            settings.timeout = .seconds(60)
            return StatisticsRound(settings: settings, key: key ?? keys[peer]!, payload: payload ?? Array("stats of \(peer)".utf8)) { _, payload in
                payload.first == 0xFF ? (.implausible, "starts with 0xFF") : nil
            }
        }
    }

    @Test func everyPeerCompletesWithEveryPayloadOverALosslessNetwork() {
        let net = Network.ring(8)
        let sim = StatisticsSimulation(rounds: net.ids.map { net.round($0) }, seed: 1)
        let outcome = sim.run()
        #expect(outcome.completedAt.count == 8)
        for peer in net.ids {
            let basis = outcome.basis[peer]!
            #expect(Set(basis.keys) == Set(net.ids))
            for origin in net.ids { #expect(basis[origin] == Array("stats of \(origin)".utf8)) }
        }
        #expect(outcome.rejected.isEmpty)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5])
    func completesUnderLossAndDuplication(seed: UInt64) {
        let net = Network.ring(10)
        var links = LinkConditions()
        links.loss = 0.2
        links.duplication = 0.2
        links.jitter = .milliseconds(20)
        let sim = StatisticsSimulation(rounds: net.ids.map { net.round($0) }, links: links, seed: seed)
        let outcome = sim.run()
        #expect(outcome.messagesLost > 0)
        #expect(outcome.messagesDuplicated > 0)
        #expect(outcome.completedAt.count == 10, "completed: \(outcome.completedAt.keys.sorted())")
        #expect(outcome.timedOut.isEmpty)
        // Every peer holds the same basis, payload for payload.
        let first = outcome.basis[net.ids[0]]
        for peer in net.ids { #expect(outcome.basis[peer] == first) }
        // Duplicates are dropped silently (they are not rejections).
        #expect(outcome.rejected.isEmpty, "\(outcome.rejected)")
    }

    @Test func aPartitionedPeerCompletesAfterHealing() {
        let net = Network.ring(6)
        let cut = Partition(start: .zero, end: .seconds(30), group: [net.ids[3]])
        let sim = StatisticsSimulation(rounds: net.ids.map { net.round($0) }, partitions: [cut], seed: 9)
        let outcome = sim.run()
        #expect(outcome.messagesCut > 0)
        #expect(outcome.completedAt.count == 6)
        for (peer, time) in outcome.completedAt {
            // No one can complete without the partitioned peer's blob, and all do soon after healing.
            #expect(time >= .seconds(30), "\(peer) at \(time)")
            #expect(time <= .seconds(35), "\(peer) at \(time)")
        }
    }

    @Test func aMissingPeerIsNamedThenTheRoundTimesOut() {
        let net = Network.ring(4)
        var settings = StatisticsRound.Settings(me: net.ids[0], planHash: Self.planHash, peers: net.pinned, neighbours: net.links[net.ids[0]]!)
        settings.warningInterval = .seconds(10)
        settings.timeout = .seconds(30)
        var round = StatisticsRound(settings: settings, key: net.keys[net.ids[0]]!, payload: [1]) { _, _ in nil }
        _ = round.start(now: .zero)
        var waiting: [[PeerID]] = []
        var timedOut: [PeerID]?
        for second in 1...40 {
            for directive in round.tick(now: .seconds(second)) {
                if case .waiting(let missing, _) = directive { waiting.append(missing) }
                if case .timedOut(let missing) = directive { timedOut = missing }
            }
        }
        // Warned at 10 s and 20 s (and at the deadline), naming every missing peer.
        #expect(waiting.count == 3)
        #expect(waiting.first == Array(net.ids.dropFirst()))
        #expect(timedOut == Array(net.ids.dropFirst()))
        #expect(!round.isComplete)
    }

    /// A relayed blob signed by an origin's retired key is refused, not fatal: once the origin
    /// signs with its new key, the peer completes; a reload that re-keys an origin drops the
    /// stored blob and asks for it again.
    @Test func aReKeyedOriginIsReplacedNotFatal() {
        let net = Network.ring(3)
        let (a, b, c) = (net.ids[0], net.ids[1], net.ids[2])
        let oldKeyOfA = net.keys[a]!
        let newKeyOfA = Ed25519.PrivateKey()
        var pinnedNow = net.pinned
        pinnedNow[a] = newKeyOfA.publicKey
        // C has the new key pinned; B relays A's blob signed with the old one.
        var atC = net.round(c, pinned: pinnedNow)
        _ = atC.start(now: .zero)
        let oldBlob = StatisticsRound.seal(payload: Array("stats of \(a)".utf8), origin: a, planHash: Self.planHash, key: oldKeyOfA)
        let refused = atC.receive(oldBlob, from: b, now: .seconds(1))
        #expect(refused.contains { if case .rejected(_, .badSignature, _) = $0 { true } else { false } })
        #expect(atC.missing.contains(a))
        var atB = net.round(b)
        _ = atB.start(now: .zero)
        for directive in atB.sessionOpened(with: c, now: .seconds(1)) {
            if case .send(c, let bytes) = directive { _ = atC.receive(bytes, from: b, now: .seconds(1)) }
        }
        // A restarted with its new key: its blob completes C.
        var atA = net.round(a, key: newKeyOfA, pinned: pinnedNow)
        _ = atA.start(now: .zero)
        var completed = false
        for directive in atA.sessionOpened(with: c, now: .seconds(2)) {
            guard case .send(c, let bytes) = directive else { continue }
            for out in atC.receive(bytes, from: a, now: .seconds(2)) { if case .completed = out { completed = true } }
        }
        // B's own blob reached C through the session above.
        #expect(completed)
        // B still holds A's old blob; the reload that pins A's new key drops it and asks again.
        _ = atB.receive(oldBlob, from: a, now: .seconds(3))
        #expect(!atB.missing.contains(a))
        let reload = atB.updatePeers(pinnedNow, neighbours: [a, c], now: .seconds(4))
        #expect(atB.missing.contains(a))
        let requests = reload.filter { if case .send = $0 { true } else { false } }
        #expect(requests.count == 2, "a request to each neighbour")
    }

    /// A peer added to a running network adopts the basis its neighbours trained with — the
    /// three original sites — not one over all four.
    @Test func aJoinerAdoptsTheRunningNetworksBasis() {
        var net = Network.ring(3)
        let sim = StatisticsSimulation(rounds: net.ids.map { net.round($0) }, seed: 2)
        _ = sim.run()
        var running = net.ids.map { sim.round($0)! }
        #expect(running.allSatisfy { $0.isComplete })
        let joiner = PeerID("site-03")!
        net.keys[joiner] = Ed25519.PrivateKey()
        net.links[joiner] = [net.ids[0]]
        net.links[net.ids[0], default: []].append(joiner)
        for i in running.indices {
            _ = running[i].updatePeers(net.pinned, neighbours: net.links[net.ids[i]]!, now: .seconds(10))
        }
        var atJoiner = net.round(joiner)
        _ = atJoiner.start(now: .seconds(10))
        var completedWith: [PeerID: [UInt8]]?
        var announced: [[UInt8]] = []
        for directive in running[0].sessionOpened(with: joiner, now: .seconds(10)) {
            guard case .send(joiner, let bytes) = directive else { continue }
            for out in atJoiner.receive(bytes, from: net.ids[0], now: .seconds(10)) {
                if case .completed(let payloads) = out { completedWith = payloads }
                if case .send(_, let bytes) = out, bytes.first == StatisticsRound.basisType { announced.append(bytes) }
            }
        }
        #expect(completedWith.map { Set($0.keys) } == Set(net.ids.prefix(3)))
        // Its own announcement agrees with the network's: no conflict at the running peer.
        for bytes in announced {
            let conflicts = running[0].receive(bytes, from: joiner, now: .seconds(11)).filter {
                if case .basisConflict = $0 { true } else { false }
            }
            #expect(conflicts.isEmpty)
        }
    }

    /// A request naming an origin 4096 times is answered once; further requests for it within
    /// half the request interval are refused (`requestBudget`; the first four silently, as
    /// duplicates), so requests cannot amplify.
    @Test func requestsAreAnsweredOncePerOriginPerHalfInterval() {
        let net = Network.ring(3)
        var round = net.round(net.ids[0])
        _ = round.start(now: .zero)
        let flood = StatisticsRound.request([PeerID](repeating: net.ids[0], count: StatisticsRound.maximumOrigins))
        func answers(_ directives: [StatisticsRound.Directive]) -> Int {
            directives.filter { if case .send = $0 { true } else { false } }.count
        }
        #expect(answers(round.receive(flood, from: net.ids[1], now: .seconds(1))) == 1)
        var refused = 0
        for i in 1...1_000 {
            let directives = round.receive(flood, from: net.ids[1], now: .seconds(1) + .microseconds(i))
            #expect(answers(directives) == 0)
            refused += directives.filter { if case .rejected(_, .requestBudget, _) = $0 { true } else { false } }.count
        }
        #expect(refused == 1, "one event per sender and reason per interval")
        #expect(answers(round.receive(flood, from: net.ids[2], now: .seconds(1))) == 1, "another requester is answered")
        #expect(answers(round.receive(flood, from: net.ids[1], now: .seconds(2))) == 1, "answered again after half an interval")
    }

    @Test func floodsAreCountedNotLogged() {
        let net = Network.ring(3)
        var round = net.round(net.ids[0])
        _ = round.start(now: .zero)
        let forged = StatisticsRound.seal(payload: [1, 2, 3], origin: net.ids[2], planHash: Self.planHash, key: Ed25519.PrivateKey())
        var events = 0
        for i in 0..<10_000 {
            let tick = i % 2_500 == 0 ? round.tick(now: .seconds(i / 2_500 + 1)) : []
            _ = tick
            events += round.receive(forged, from: net.ids[1], now: .seconds(1)).filter {
                if case .rejected(_, .badSignature, _) = $0 { true } else { false }
            }.count
        }
        // One event per sender and reason per tick interval: 4 intervals.
        #expect(events == 4)
        #expect(round.missing.contains(net.ids[2]))
    }

    /// Past its budget of refused statistics messages in one tick interval, a neighbour is cut
    /// off once (the shell closes its session); the budget starts again each interval.
    @Test func aNeighbourOverItsBudgetIsDisconnectedOncePerInterval() {
        let net = Network.ring(3)
        var round = net.round(net.ids[0])
        _ = round.start(now: .zero)
        let forged = StatisticsRound.seal(payload: [1], origin: net.ids[2], planHash: Self.planHash, key: Ed25519.PrivateKey())
        func disconnects(_ count: Int) -> Int {
            (0..<count).reduce(0) { total, _ in
                total + round.receive(forged, from: net.ids[1], now: .seconds(1)).filter {
                    if case .disconnect(let peer, .rejectionBudget) = $0 { peer == net.ids[1] } else { false }
                }.count
            }
        }
        #expect(disconnects(StatisticsRound.rejectionBudget) == 0)
        #expect(disconnects(1) == 1)
        #expect(disconnects(1_000) == 0)
        _ = round.tick(now: .seconds(2))
        #expect(disconnects(StatisticsRound.rejectionBudget + 1) == 1)
    }

    @Test func equivocationAndInvalidPayloadsAreRefused() {
        let net = Network.ring(3)
        var round = net.round(net.ids[0])
        _ = round.start(now: .zero)
        let key = net.keys[net.ids[2]]!
        let first = StatisticsRound.seal(payload: [1], origin: net.ids[2], planHash: Self.planHash, key: key)
        let second = StatisticsRound.seal(payload: [2], origin: net.ids[2], planHash: Self.planHash, key: key)
        _ = round.receive(first, from: net.ids[1], now: .zero)
        let out = round.receive(second, from: net.ids[2], now: .zero)
        #expect(out.contains { if case .rejected(_, .equivocation, _) = $0 { true } else { false } })
        let bad = StatisticsRound.seal(payload: [0xFF], origin: net.ids[1], planHash: Self.planHash, key: net.keys[net.ids[1]]!)
        let refused = round.receive(bad, from: net.ids[1], now: .zero)
        #expect(refused.contains { if case .rejected(_, .implausible, _) = $0 { true } else { false } })
        #expect(round.missing == [net.ids[1]])
    }

    /// An origin that signs different statistics for different peers is caught when the peers
    /// exchange their bases, and named.
    @Test func equivocationAcrossPeersIsCaughtByTheBasesAndNamesTheOrigin() {
        let net = Network.ring(3)
        let (a, b, x) = (net.ids[0], net.ids[1], net.ids[2])
        var atA = net.round(a)
        var atB = net.round(b)
        _ = atA.start(now: .zero)
        _ = atB.start(now: .zero)
        let toA = StatisticsRound.seal(payload: [1], origin: x, planHash: Self.planHash, key: net.keys[x]!)
        let toB = StatisticsRound.seal(payload: [2], origin: x, planHash: Self.planHash, key: net.keys[x]!)
        _ = atA.receive(toA, from: x, now: .zero)
        _ = atB.receive(toB, from: x, now: .zero)
        // a and b exchange their own blobs; each completes, and announces its basis.
        var announcementOfB: [UInt8]?
        for d in atB.sessionOpened(with: a, now: .zero) { if case .send(a, let bytes) = d, bytes.first == StatisticsRound.statisticsType { _ = atA.receive(bytes, from: b, now: .zero) } }
        for d in atA.sessionOpened(with: b, now: .zero) {
            guard case .send(b, let bytes) = d, bytes.first == StatisticsRound.statisticsType else { continue }
            for out in atB.receive(bytes, from: a, now: .zero) {
                if case .send(a, let announced) = out, announced.first == StatisticsRound.basisType { announcementOfB = announced }
            }
        }
        #expect(atA.isComplete && atB.isComplete)
        let conflict = atA.receive(announcementOfB ?? [], from: b, now: .zero).compactMap { d -> [PeerID]? in
            if case .basisConflict(a, b, let origins) = d { origins } else { nil }
        }
        #expect(conflict == [[x]])
    }

    @Test func everyTruncationAndByteFlipIsRefused() {
        let net = Network.ring(3)
        var round = net.round(net.ids[0])
        _ = round.start(now: .zero)
        let blob = StatisticsRound.seal(payload: Array("payload".utf8), origin: net.ids[2], planHash: Self.planHash, key: net.keys[net.ids[2]]!)
        for length in 0..<blob.count {
            var probe = round
            let out = probe.receive(Array(blob.prefix(length)), from: net.ids[1], now: .zero)
            #expect(out.contains { if case .rejected = $0 { true } else { false } }, "length \(length)")
            #expect(probe.missing.contains(net.ids[2]))
        }
        for index in blob.indices {
            var flipped = blob
            flipped[index] ^= 0x01
            var probe = round
            _ = probe.receive(flipped, from: net.ids[1], now: .zero)
            #expect(probe.missing.contains(net.ids[2]), "byte \(index) flipped was accepted")
        }
    }

    @Test func completedStatisticsRoundTripAndRefuseTampering() throws {
        let saved = CompletedStatistics(basis: [PeerID("a")!: [1, 2], PeerID("b")!: [3]], messages: [PeerID("a")!: [9, 9, 9]])
        let bytes = saved.encoded(planHash: Self.planHash)
        #expect(try CompletedStatistics(decoding: bytes, planHash: Self.planHash) == saved)
        for index in bytes.indices {
            var flipped = bytes
            flipped[index] ^= 0x80
            #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: flipped, planHash: Self.planHash) }
        }
        #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: bytes, planHash: [UInt8](repeating: 0, count: 32)) }
    }

    /// Version 2 is authenticated under the node's state key: another key, no key, any flipped
    /// bit, or a version-1 rewrite (a plain checksum anyone can compute) where the node has a
    /// key are all refused.
    @Test func completedStatisticsAreAuthenticatedUnderTheStateKey() throws {
        let saved = CompletedStatistics(basis: [PeerID("a")!: [1, 2], PeerID("b")!: [3]], messages: [PeerID("a")!: [9, 9, 9]])
        let key = SecureBytes(randomCount: 32)
        let bytes = saved.encoded(planHash: Self.planHash, key: key)
        #expect(bytes[4] == 2)
        #expect(try CompletedStatistics(decoding: bytes, planHash: Self.planHash, key: key, acceptChecksum: false) == saved)
        #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: bytes, planHash: Self.planHash, key: SecureBytes(randomCount: 32)) }
        #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: bytes, planHash: Self.planHash) }
        for index in bytes.indices {
            var flipped = bytes
            flipped[index] ^= 0x01
            #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: flipped, planHash: Self.planHash, key: key) }
        }
        let forged = saved.encoded(planHash: Self.planHash)
        #expect(try CompletedStatistics(decoding: forged, planHash: Self.planHash, key: key, acceptChecksum: true) == saved)
        #expect(throws: CompletedStatistics.Error.self) { _ = try CompletedStatistics(decoding: forged, planHash: Self.planHash, key: key, acceptChecksum: false) }
    }
}

public import PlexusCore
public import PlexusCrypto
public import PlexusGossip

/// How the simulated network treats each message on a link.
public struct LinkConditions: Sendable, Hashable {
    /// One-way delay. Default: 5 ms.
    public var latency: Duration = .milliseconds(5)
    /// Extra delay drawn uniformly from [0, jitter) per message, so messages can overtake each
    /// other. Default: none.
    public var jitter: Duration = .zero
    /// Bytes per second per direction; `nil` (the default) is unlimited. Messages queue behind
    /// each other on a link, as on a real one.
    public var bandwidth: Double?
    /// Probability in [0, 1) that a message is lost. Default: 0.
    public var loss: Double = 0
    /// Probability in [0, 1) that a message is delivered twice. Default: 0.
    public var duplication: Double = 0

    public init() {}
}

/// During [start, end), the links between `group` and every peer outside it carry nothing.
public struct Partition: Sendable, Hashable {
    public var start: Duration
    public var end: Duration
    public var group: Set<PeerID>

    public init(start: Duration, end: Duration, group: Set<PeerID>) {
        self.start = start
        self.end = end
        self.group = group
    }

    func cuts(_ a: PeerID, _ b: PeerID, at time: Duration) -> Bool {
        time >= start && time < end && group.contains(a) != group.contains(b)
    }
}

/// One peer of a simulation.
public struct SimulatedPeer<Learner: LocalLearner> {
    public var settings: GossipSettings
    public var key: Ed25519.PrivateKey
    public var learner: Learner
    public var initialParameters: [Float]
    /// Rewrites what this peer publishes (a Byzantine peer's ``Attack``); `nil`: an honest peer.
    public var publishTransform: (any PublishTransform)?
    /// Whether everything this peer sends is dropped (the `absent` reference: a site that takes
    /// no part, so its rows are lost to the network). Default: false.
    public var silent: Bool

    public init(
        settings: GossipSettings, key: Ed25519.PrivateKey, learner: Learner, initialParameters: [Float],
        publishTransform: (any PublishTransform)? = nil, silent: Bool = false
    ) {
        self.settings = settings
        self.key = key
        self.learner = learner
        self.initialParameters = initialParameters
        self.publishTransform = publishTransform
        self.silent = silent
    }
}

/// Totals of a simulation run.
public struct SimulationOutcome: Sendable {
    /// Virtual time when the last peer finished (or the run stopped).
    public var virtualTime: Duration
    public var messagesSent = 0
    public var messagesDelivered = 0
    public var messagesLost = 0
    public var messagesCutByPartition = 0
    public var bytesDelivered = 0
    /// ``GossipDirective/persist(_:)`` directives seen (the simulator keeps no state files).
    public var snapshotsPersisted = 0
    /// ``GossipDirective/disconnect(_:reason:)`` directives seen, by reason (the simulated
    /// links stay up: the simulator only counts them).
    public var disconnects: [Reason: Int] = [:]
    /// Envelopes handed out as evidence against quarantined neighbours
    /// (``GossipDirective/evidence(_:_:)``), by the peer that kept them: the simulator keeps no
    /// files, it counts them.
    public var evidence: [PeerID: Int] = [:]
    /// Every quarantine and release by peer scoring, in virtual-time order.
    public var quarantines: [Quarantine] = []
    public var releases: [Quarantine] = []
    /// The largest distance ratio (``PeerScoring/distanceRatios(_:)``) any peer measured, per
    /// round: how close honest runs come to ``PeerScoring/Settings/distanceRatio``.
    public var largestDistanceRatio: [Int: Double] = [:]
    /// For each spread threshold t (4, 8, 16, 32, 64), the largest relative distance
    /// (``PeerScoring/Distance``) of any copy whose spread reached t: what a floor φ must exceed,
    /// t · φ > relative, for honest copies never to be charged at T = t.
    public var distanceProfile: [Double: Double] = [:]
    /// The smallest movement ratio (``PeerScoring/Observation/movementRatio``) any peer
    /// measured for a neighbour, and in which round: how close honest runs come to
    /// ``PeerScoring/Settings/stillRatio``. `nil` when none was measured.
    public var smallestMovementRatio: (ratio: Double, round: Int)?

    /// A quarantine (or release) of `neighbour` by `peer` at the end of `round`.
    public struct Quarantine: Sendable, Hashable, CustomStringConvertible {
        public var peer: PeerID
        public var neighbour: PeerID
        public var round: Int
        /// `nil` for a release.
        public var why: PeerScoring.Why?
        public var description: String { "\(peer) → \(neighbour) in round \(round)" + (why.map { ": \($0)" } ?? "") }
    }
    /// Whether every peer finished its rounds.
    public var finished: Bool
    /// Each peer's final model.
    public var parameters: [PeerID: [Float]]
}

/// The second shell around ``GossipInstance``: N instances in one process, joined by an
/// in-memory network that carries the exact message bytes, on a virtual clock.
///
/// Everything is deterministic under `seed`: the event order (time, then the order events
/// were scheduled), losses, jitter and asynchronous round periods. A 1,000-round run costs its
/// computation, not its simulated time.
public final class Simulator<Learner: LocalLearner> {
    public var links: LinkConditions
    public var partitions: [Partition]
    /// Asynchronous mode: each peer's round period, stretched per peer by up to ``asyncSpread``.
    public var asyncRoundPeriod: Duration = .milliseconds(100)
    /// Asynchronous mode: the slowest peer's period is this much longer than the fastest's. Default: 0.5.
    public var asyncSpread: Double = 0.5
    /// The run stops at this virtual time even if peers have not finished. Default: 1 day.
    public var timeLimit: Duration = .seconds(86_400)

    private var instances: [PeerID: GossipInstance<Learner>] = [:]
    private let order: [PeerID]
    private var rng: SplitMix64
    /// Peers whose sends are dropped (``SimulatedPeer/silent``).
    private var silent: Set<PeerID> = []
    private var queue = EventQueue()
    private var now: Duration = .zero
    private var wire = SimulatedWire()
    private var outcome = SimulationOutcome(virtualTime: .zero, finished: false, parameters: [:])
    private var periods: [PeerID: Duration] = [:]
    private var lastReported: [PeerID: Int] = [:]

    public init(peers: [SimulatedPeer<Learner>], links: LinkConditions = LinkConditions(), partitions: [Partition] = [], seed: UInt64) {
        self.links = links
        self.partitions = partitions
        self.rng = SplitMix64(seed: seed)
        self.order = peers.map(\.settings.me).sorted()
        for peer in peers {
            if peer.silent { silent.insert(peer.settings.me) }
            instances[peer.settings.me] = GossipInstance(
                settings: peer.settings, key: peer.key, learner: peer.learner,
                initialParameters: peer.initialParameters, clock: { ContinuousClock.now - Self.epoch },
                publishTransform: peer.publishTransform
            )
        }
    }

    private static var epoch: ContinuousClock.Instant { ContinuousClockEpoch.value }

    public func instance(_ peer: PeerID) -> GossipInstance<Learner>? { instances[peer] }

    /// Runs every peer to its last round.
    ///
    /// - Parameters:
    ///   - report: called for each completed round, in virtual-time order.
    ///   - event: called for each protocol event, with the virtual time.
    public func run(
        report: (RoundReport, Duration) -> Void = { _, _ in },
        event: (PeerID, GossipEvent, Duration) -> Void = { _, _, _ in }
    ) -> SimulationOutcome {
        // Sessions open first (keyframes), then every peer begins round 1, in id order.
        for peer in order {
            for neighbour in instances[peer]!.settings.neighbours.keys.sorted() {
                carryOut(instances[peer]!.sessionOpened(with: neighbour), of: peer, report: report, event: event)
            }
        }
        for peer in order {
            let directives = instances[peer]!.start()
            carryOut(directives, of: peer, report: report, event: event)
            if instances[peer]!.settings.synchrony == .asynchronous {
                let stretch = 1 + asyncSpread * Double.random(in: 0..<1, using: &rng)
                let period = asyncRoundPeriod * stretch
                periods[peer] = period
                queue.push(at: now + period, .tick(peer))
            }
        }
        while let next = queue.pop() {
            if next.time > timeLimit { break }
            now = next.time
            switch next.kind {
            case .deliver(let from, let to, let bytes):
                outcome.messagesDelivered += 1
                outcome.bytesDelivered += bytes.count
                carryOut(instances[to]!.receive(bytes, from: from), of: to, report: report, event: event)
            case .deadline(let peer, let round):
                carryOut(instances[peer]!.deadlinePassed(round: round), of: peer, report: report, event: event)
            case .tick(let peer):
                carryOut(instances[peer]!.tick(), of: peer, report: report, event: event)
                if !instances[peer]!.isFinished { queue.push(at: now + periods[peer]!, .tick(peer)) }
            }
            if order.allSatisfy({ instances[$0]!.isFinished }) { break }
        }
        // Let messages already on the wire arrive, so final copies reflect the last round.
        while let next = queue.pop(), next.time <= timeLimit {
            guard case .deliver(let from, let to, let bytes) = next.kind else { continue }
            now = next.time
            outcome.messagesDelivered += 1
            outcome.bytesDelivered += bytes.count
            carryOut(instances[to]!.receive(bytes, from: from), of: to, report: report, event: event)
        }
        outcome.virtualTime = now
        outcome.finished = order.allSatisfy { instances[$0]!.isFinished }
        outcome.parameters = Dictionary(uniqueKeysWithValues: order.map { ($0, instances[$0]!.parameters) })
        return outcome
    }

    private func carryOut(
        _ directives: [GossipDirective],
        of peer: PeerID,
        report: (RoundReport, Duration) -> Void,
        event: (PeerID, GossipEvent, Duration) -> Void
    ) {
        for directive in directives {
            switch directive {
            case .send(let to, let bytes):
                send(bytes, from: peer, to: to)
            case .scheduleDeadline(let round, let after):
                queue.push(at: now + after, .deadline(peer, round))
            case .roundCompleted(let r):
                lastReported[peer] = r.round
                let floor = instances[peer]!.settings.scoring.distanceFloor
                for distance in r.distances.values {
                    let ratio = distance.ratio(floor: floor)
                    if ratio > outcome.largestDistanceRatio[r.round] ?? 0 { outcome.largestDistanceRatio[r.round] = ratio }
                    for t in [4.0, 8, 16, 32, 64] where distance.spread >= t {
                        outcome.distanceProfile[t] = max(outcome.distanceProfile[t] ?? 0, distance.relative)
                    }
                }
                for ratio in r.movements.values where ratio < (outcome.smallestMovementRatio?.ratio ?? .infinity) {
                    outcome.smallestMovementRatio = (ratio, r.round)
                }
                report(r, now)
            case .event(let e):
                // Scoring events come just before the report of the round whose end they belong to.
                let round = (lastReported[peer] ?? 0) + 1
                if case .quarantined(let neighbour, let why) = e { outcome.quarantines.append(SimulationOutcome.Quarantine(peer: peer, neighbour: neighbour, round: round, why: why)) }
                if case .released(let neighbour) = e { outcome.releases.append(SimulationOutcome.Quarantine(peer: peer, neighbour: neighbour, round: round, why: nil)) }
                event(peer, e, now)
            case .persist:
                outcome.snapshotsPersisted += 1
            case .disconnect(_, let reason):
                outcome.disconnects[reason, default: 0] += 1
            case .evidence(_, let envelopes):
                outcome.evidence[peer, default: 0] += envelopes.count
            case .finished:
                break
            }
        }
    }

    private func send(_ bytes: [UInt8], from: PeerID, to: PeerID) {
        outcome.messagesSent += 1
        guard instances[to] != nil, !silent.contains(from) else { return }
        switch wire.fate(of: bytes.count, from: from, to: to, at: now, links: links, partitions: partitions, rng: &rng) {
        case .cut:
            outcome.messagesCutByPartition += 1
        case .lost:
            outcome.messagesLost += 1
        case .arrives(let times):
            for arrival in times { queue.push(at: arrival, .deliver(from, to, bytes)) }
        }
    }
}

/// What the simulated network does to one message: the link model both simulations share, so
/// that the same conditions and seed treat messages the same way (and draw from the RNG in the
/// same order: partition, loss, duplication, then jitter per copy).
struct SimulatedWire {
    enum Fate {
        case cut, lost
        /// Arrival times: one, or two for a duplicated message.
        case arrives([Duration])
    }

    private struct Pair: Hashable {
        var from: PeerID
        var to: PeerID
    }

    /// When each direction's link is free again (with a bandwidth limit).
    private var busyUntil: [Pair: Duration] = [:]

    mutating func fate(
        of byteCount: Int, from: PeerID, to: PeerID, at now: Duration,
        links: LinkConditions, partitions: [Partition], rng: inout SplitMix64
    ) -> Fate {
        if partitions.contains(where: { $0.cuts(from, to, at: now) }) { return .cut }
        if links.loss > 0 && Double.random(in: 0..<1, using: &rng) < links.loss { return .lost }
        let copies = links.duplication > 0 && Double.random(in: 0..<1, using: &rng) < links.duplication ? 2 : 1
        var arrivals: [Duration] = []
        for _ in 0..<copies {
            let pair = Pair(from: from, to: to)
            var departure = max(now, busyUntil[pair] ?? .zero)
            if let bandwidth = links.bandwidth {
                departure += .seconds(Double(byteCount) / bandwidth)
                busyUntil[pair] = departure
            }
            var arrival = departure + links.latency
            if links.jitter > .zero { arrival += links.jitter * Double.random(in: 0..<1, using: &rng) }
            arrivals.append(arrival)
        }
        return .arrives(arrivals)
    }
}

/// A fixed origin for the phase-time clock handed to instances.
enum ContinuousClockEpoch {
    static let value = ContinuousClock.now
}

/// The virtual clock's agenda: a binary heap ordered by (time, insertion order).
struct EventQueue {
    enum Kind {
        case deliver(PeerID, PeerID, [UInt8])
        case deadline(PeerID, Int)
        case tick(PeerID)
    }

    struct Entry {
        var time: Duration
        var order: UInt64
        var kind: Kind
    }

    private var heap: [Entry] = []
    private var counter: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(at time: Duration, _ kind: Kind) {
        counter += 1
        heap.append(Entry(time: time, order: counter, kind: kind))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < heap.count && less(heap[l], heap[smallest]) { smallest = l }
            if r < heap.count && less(heap[r], heap[smallest]) { smallest = r }
            if smallest == i { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        return top
    }

    private func less(_ a: Entry, _ b: Entry) -> Bool {
        a.time < b.time || (a.time == b.time && a.order < b.order)
    }
}

public import PlexusCore
public import PlexusGossip

/// The statistics round of N peers over the simulated network: the same ``StatisticsRound``
/// state machines the nodes run, the same message bytes, the same link conditions and
/// partitions as ``Simulator``, on a virtual clock. Sessions open at time zero, and again when
/// a partition that cut a link heals (as the mesh redials).
public final class StatisticsSimulation {
    public var links: LinkConditions
    public var partitions: [Partition]
    /// The shell's timer period (the node's ticker). Default: 1 s.
    public var tickInterval: Duration = .seconds(1)
    /// The run stops here even if some peers have not completed. Default: 10 minutes.
    public var timeLimit: Duration = .seconds(600)

    private var rounds: [PeerID: StatisticsRound]
    private let order: [PeerID]
    private var rng: SplitMix64
    private var queue = EventQueue()
    private var now: Duration = .zero
    private var wire = SimulatedWire()

    public struct Outcome: Sendable {
        /// When each peer completed, and the payloads it completed with.
        public var completedAt: [PeerID: Duration] = [:]
        public var basis: [PeerID: [PeerID: [UInt8]]] = [:]
        public var timedOut: Set<PeerID> = []
        public var messagesSent = 0
        public var messagesLost = 0
        public var messagesDuplicated = 0
        public var messagesCut = 0
        public var rejected: [Reason: Int] = [:]
    }

    private var outcome = Outcome()

    public init(rounds: [StatisticsRound], links: LinkConditions = LinkConditions(), partitions: [Partition] = [], seed: UInt64) {
        self.links = links
        self.partitions = partitions
        self.rng = SplitMix64(seed: seed)
        self.rounds = Dictionary(uniqueKeysWithValues: rounds.map { ($0.settings.me, $0) })
        self.order = rounds.map(\.settings.me).sorted()
    }

    public func round(_ peer: PeerID) -> StatisticsRound? { rounds[peer] }

    public func run() -> Outcome {
        for peer in order { carryOut(rounds[peer]!.start(now: now), of: peer) }
        for peer in order {
            for neighbour in rounds[peer]!.settings.neighbours { carryOut(rounds[peer]!.sessionOpened(with: neighbour, now: now), of: peer) }
            queue.push(at: tickInterval, .tick(peer))
        }
        // A healed partition: both ends of every cut link see a new session.
        for partition in partitions {
            queue.push(at: partition.end, .deadline(order[0], -1))
        }
        while let next = queue.pop(), next.time <= timeLimit {
            now = next.time
            switch next.kind {
            case .deliver(let from, let to, let bytes):
                carryOut(rounds[to]!.receive(bytes, from: from, now: now), of: to)
            case .tick(let peer):
                carryOut(rounds[peer]!.tick(now: now), of: peer)
                if !rounds[peer]!.isComplete && !outcome.timedOut.contains(peer) { queue.push(at: now + tickInterval, .tick(peer)) }
            case .deadline:
                for peer in order {
                    for neighbour in rounds[peer]!.settings.neighbours { carryOut(rounds[peer]!.sessionOpened(with: neighbour, now: now), of: peer) }
                }
            }
            if order.allSatisfy({ rounds[$0]!.isComplete || outcome.timedOut.contains($0) }) { break }
        }
        return outcome
    }

    private func carryOut(_ directives: [StatisticsRound.Directive], of peer: PeerID) {
        for directive in directives {
            switch directive {
            case .send(let to, let bytes):
                send(bytes, from: peer, to: to)
            case .completed(let payloads):
                outcome.completedAt[peer] = now
                outcome.basis[peer] = payloads
            case .timedOut:
                outcome.timedOut.insert(peer)
            case .rejected(_, let reason, _):
                outcome.rejected[reason, default: 0] += 1
            case .waiting, .basisConflict, .disconnect:
                break
            }
        }
    }

    private func send(_ bytes: [UInt8], from: PeerID, to: PeerID) {
        outcome.messagesSent += 1
        guard rounds[to] != nil else { return }
        switch wire.fate(of: bytes.count, from: from, to: to, at: now, links: links, partitions: partitions, rng: &rng) {
        case .cut:
            outcome.messagesCut += 1
        case .lost:
            outcome.messagesLost += 1
        case .arrives(let times):
            if times.count > 1 { outcome.messagesDuplicated += 1 }
            for arrival in times { queue.push(at: arrival, .deliver(from, to, bytes)) }
        }
    }
}

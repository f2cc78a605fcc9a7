public import PlexusCore
public import PlexusCrypto

/// The statistics round, as a pure state machine: before training, every site floods one signed
/// blob (its feature schema and statistics, opaque here) over the topology, and every peer
/// completes once it holds a valid blob from every origin it needs. The node shell and the
/// simulator both run it; it performs no I/O and reads no clock (time comes in through
/// ``tick(now:)``).
///
/// - Blobs are keyed by origin *and* the key pinned for it now: a blob that does not verify
///   under the pinned key is rejected, and a stored blob whose origin's key changed (a rotation,
///   seen in ``updatePeers(_:)``) is dropped and asked for again, so a relayed blob signed by a
///   retired key never blocks a peer.
/// - Lost messages are made up by requests: while incomplete, a peer asks every neighbour for
///   the origins it lacks every ``Settings/requestInterval``; a neighbour answers with what it
///   holds — each origin at most once per requester per half interval (`requestBudget`), so
///   requests cannot amplify — and relays every blob it accepts to its other neighbours.
/// - A peer that completed announces its *basis* — the origins and blob digests its pooled
///   standardization was computed from — signed. A peer that joins a running network adopts the
///   basis its neighbours announce instead of every peer of the topology, so it standardizes
///   exactly as the network trains (two different bases from two neighbours are a failure).
/// - While incomplete it says so (``Directive/waiting(missing:elapsed:)``, every
///   ``Settings/warningInterval``), and after ``Settings/timeout`` it gives up
///   (``Directive/timedOut(missing:)``): never a silent hang.
///
/// Wire formats (all integers little-endian; every length is bounded before it is read):
///
///     statistics   type 3 | "PLXT" | version 2 | plan hash (32) | L | origin (L) | P u32 | payload (P)
///                  | Ed25519 signature (64) over BLAKE2b-256("plexus/statistics/v2" ‖ "PLXT" … payload)
///     request      type 4 | "PLXQ" | version 1 | N u16 | N × (L | origin (L))
///     basis        type 5 | "PLXB" | version 1 | plan hash (32) | L | announcer (L) | N u16
///                  | N × (L | origin (L) | BLAKE2b-256 of its statistics payload (32))
///                  | Ed25519 signature (64) over BLAKE2b-256("plexus/basis/v1" ‖ "PLXB" … last digest)
public struct StatisticsRound: Sendable {
    public static let statisticsType: UInt8 = 3
    public static let requestType: UInt8 = 4
    public static let basisType: UInt8 = 5
    /// The largest payload accepted: a site's schema and statistics for up to 4,096 features.
    public static let maximumPayload = 1 << 20
    /// The most origins a request or a basis may name.
    public static let maximumOrigins = 4096

    public struct Settings: Sendable {
        public var me: PeerID
        public var planHash: [UInt8]
        /// Every peer of the topology (this one included) and its pinned key.
        public var peers: [PeerID: Ed25519.PublicKey]
        /// This peer's neighbours (the topology's links).
        public var neighbours: [PeerID]
        /// How often missing blobs are asked for again. Default: 2 s.
        public var requestInterval: Duration = .seconds(2)
        /// How often a ``Directive/waiting(missing:elapsed:)`` is emitted while incomplete. Default: 10 s.
        public var warningInterval: Duration = .seconds(10)
        /// Incomplete this long after ``start(now:)``: ``Directive/timedOut(missing:)``. Default: 120 s.
        public var timeout: Duration = .seconds(120)

        public init(me: PeerID, planHash: [UInt8], peers: [PeerID: Ed25519.PublicKey], neighbours: [PeerID]) {
            self.me = me
            self.planHash = planHash
            self.peers = peers
            self.neighbours = neighbours.sorted()
        }
    }

    public enum Directive: Sendable, Equatable {
        case send(to: PeerID, bytes: [UInt8])
        /// A message was dropped (at most once per sender and reason per ``tick(now:)`` interval).
        case rejected(from: PeerID, reason: Reason, message: String)
        /// Still incomplete: these origins are missing (a warning for the operator).
        case waiting(missing: [PeerID], elapsed: Duration)
        /// Every needed blob is in: the payloads of the basis, by origin.
        case completed([PeerID: [UInt8]])
        /// A neighbour sent more refused messages in one tick interval than ``rejectionBudget``:
        /// close its session and back it off (once per interval).
        case disconnect(PeerID, reason: Reason)
        /// The round did not complete within its timeout.
        case timedOut(missing: [PeerID])
        /// Two peers (this one or a neighbour, and a neighbour) hold different bases: the network
        /// does not agree on one standardization. `origins` are those whose statistics differ
        /// between the two — the same origin with two digests means it signed two different
        /// statistics (equivocation) or that one of the two peers lies about it; sites in one
        /// basis only mean the two completed over different sets of sites.
        case basisConflict(PeerID, PeerID, origins: [PeerID])
    }

    private struct Stored: Sendable {
        var key: Ed25519.PublicKey
        var message: [UInt8]
        var payload: [UInt8]
        var digest: [UInt8]
    }

    public private(set) var settings: Settings
    private var key: Ed25519.PrivateKey
    private let validate: @Sendable (PeerID, [UInt8]) -> (Reason, String)?
    private var stored: [PeerID: Stored] = [:]
    /// The basis this peer completed with (origins → digests), once complete.
    public private(set) var basis: [PeerID: [UInt8]]?
    private var basisPayloads: [PeerID: [UInt8]] = [:]
    /// A basis announced by a neighbour, while this peer has none: the origins to wait for.
    private var adoptedBasis: (from: PeerID, digests: [PeerID: [UInt8]])?
    private var startedAt: Duration?
    private var lastRequest: Duration?
    private var lastWarning: Duration?
    private var timedOut = false
    private var rejectedThisInterval: Set<String> = []
    private var rejectionsThisInterval: [PeerID: Int] = [:]
    /// Refused statistics messages one neighbour may send per tick interval before it is cut off.
    public static let rejectionBudget = 64
    /// When each origin's blob was last sent to each requester: a request is answered for an
    /// origin at most once per half ``Settings/requestInterval`` (honest peers ask once per
    /// interval), so a flood of requests — each may name an origin 4096 times — cannot make
    /// this peer queue unbounded answers (`requestBudget`; the first few such requests are
    /// duplicates or a lossy link's retries, dropped silently; a flood is counted).
    private var answered: [PeerID: [PeerID: (at: Duration, refused: Int)]] = [:]

    /// - Parameters:
    ///   - payload: this site's blob (its schema and statistics), signed here with `key`.
    ///   - validate: checks a payload from outside; returns why it is refused, or `nil`.
    public init(
        settings: Settings, key: Ed25519.PrivateKey, payload: [UInt8],
        validate: @escaping @Sendable (PeerID, [UInt8]) -> (Reason, String)?
    ) {
        self.settings = settings
        self.key = key
        self.validate = validate
        let message = Self.seal(payload: payload, origin: settings.me, planHash: settings.planHash, key: key)
        stored[settings.me] = Stored(key: key.publicKey, message: message, payload: payload, digest: Self.digest(payload))
    }

    public var isComplete: Bool { basis != nil }

    /// The origins this peer still needs, in id order.
    public var missing: [PeerID] {
        needed.filter { origin in
            guard let s = stored[origin] else { return true }
            if let digest = adoptedBasis?.digests[origin] { return s.digest != digest }
            return false
        }
    }

    private var needed: [PeerID] {
        if let adoptedBasis { return adoptedBasis.digests.keys.sorted() }
        return settings.peers.keys.sorted()
    }

    /// The signed blobs held (for a file that lets a restarted peer serve them again).
    public var heldMessages: [PeerID: [UInt8]] { stored.mapValues(\.message) }

    // MARK: Events

    /// Begins the round (its timeout counts from `now`).
    public mutating func start(now: Duration) -> [Directive] {
        startedAt = now
        var out: [Directive] = []
        checkComplete(into: &out)
        return out
    }

    /// Resumes a peer that completed in an earlier run: its basis payloads (from its own disk)
    /// and the signed blobs it held, each checked again under the keys pinned now.
    public mutating func restoreCompleted(basis payloads: [PeerID: [UInt8]], messages: [PeerID: [UInt8]]) {
        for (origin, message) in messages where origin != settings.me {
            if let parsed = try? parse(message), parsed.origin == origin { store(parsed, message: message) }
        }
        basis = payloads.mapValues(Self.digest)
        basisPayloads = payloads
    }

    /// What a completed round leaves on disk; `nil` while incomplete.
    public var completed: CompletedStatistics? {
        guard basis != nil else { return nil }
        return CompletedStatistics(basis: basisPayloads, messages: heldMessages)
    }

    /// A session with `peer` opened: it gets the basis if complete, every blob held, and a
    /// request for what is missing.
    public mutating func sessionOpened(with peer: PeerID, now: Duration) -> [Directive] {
        guard settings.neighbours.contains(peer) else { return [] }
        var out: [Directive] = []
        // The basis first: a peer joining a running network adopts it before the blobs could
        // complete a basis of its own over every peer of the topology.
        if let basis { out.append(.send(to: peer, bytes: sealBasis(basis))) }
        for origin in stored.keys.sorted() { out.append(.send(to: peer, bytes: stored[origin]!.message)) }
        let lacking = missing
        if !lacking.isEmpty { out.append(.send(to: peer, bytes: Self.request(lacking))) }
        return out
    }

    /// Bytes of type 3, 4 or 5 arrived from neighbour `peer`.
    public mutating func receive(_ bytes: [UInt8], from peer: PeerID, now: Duration) -> [Directive] {
        var out: [Directive] = []
        guard settings.neighbours.contains(peer) else {
            reject(from: peer, .unknownPeer, "statistics traffic from '\(peer)', which is not a neighbour", into: &out)
            return out
        }
        switch bytes.first {
        case Self.statisticsType:
            receiveStatistics(bytes, from: peer, into: &out)
        case Self.requestType:
            switch Self.parseRequest(bytes) {
            case .success(let origins):
                var named: Set<PeerID> = []
                for origin in origins where named.insert(origin).inserted {
                    guard let s = stored[origin] else { continue }
                    if let last = answered[peer]?[origin], now - last.at < settings.requestInterval / 2 {
                        answered[peer]![origin]!.refused += 1
                        if last.refused >= 4 {
                            reject(from: peer, .requestBudget, "statistics of '\(origin)' were sent to '\(peer)' less than \(settings.requestInterval / 2) ago", into: &out)
                        }
                        continue
                    }
                    answered[peer, default: [:]][origin] = (now, 0)
                    out.append(.send(to: peer, bytes: s.message))
                }
            case .failure(let error):
                reject(from: peer, error.reason, error.message, into: &out)
            }
        case Self.basisType:
            receiveBasis(bytes, from: peer, into: &out)
        default:
            reject(from: peer, .badMessage, "not a statistics message", into: &out)
        }
        return out
    }

    /// The shell's periodic timer: re-requests, warnings, the timeout.
    public mutating func tick(now: Duration) -> [Directive] {
        rejectedThisInterval.removeAll()
        rejectionsThisInterval.removeAll()
        guard !isComplete, let startedAt, !timedOut else { return [] }
        var out: [Directive] = []
        let lacking = missing
        if now - (lastRequest ?? startedAt) >= settings.requestInterval {
            lastRequest = now
            let request = Self.request(lacking)
            for neighbour in settings.neighbours { out.append(.send(to: neighbour, bytes: request)) }
        }
        if now - (lastWarning ?? startedAt) >= settings.warningInterval {
            lastWarning = now
            out.append(.waiting(missing: lacking, elapsed: now - startedAt))
        }
        if now - startedAt >= settings.timeout {
            timedOut = true
            out.append(.timedOut(missing: lacking))
        }
        return out
    }

    /// The topology changed: keys, peers and links from now on. A blob whose origin's key
    /// changed, or whose origin left, is dropped; a missing one is asked for again at once.
    public mutating func updatePeers(_ peers: [PeerID: Ed25519.PublicKey], neighbours: [PeerID], now: Duration) -> [Directive] {
        settings.peers = peers
        settings.neighbours = neighbours.sorted()
        for (origin, s) in stored where origin != settings.me && peers[origin] != s.key { stored[origin] = nil }
        var out: [Directive] = []
        let lacking = peers.keys.filter { stored[$0] == nil }.sorted()
        if !lacking.isEmpty {
            lastRequest = now
            let request = Self.request(lacking)
            for neighbour in settings.neighbours { out.append(.send(to: neighbour, bytes: request)) }
        }
        if !isComplete { checkComplete(into: &out) }
        return out
    }

    /// This peer's own key was rotated (and `settings.peers` already pins the new one): its
    /// blob is signed again and sent to every neighbour, so peers that dropped the old one get it.
    public mutating func updateKey(_ newKey: Ed25519.PrivateKey) -> [Directive] {
        key = newKey
        guard let own = stored[settings.me] else { return [] }
        let message = Self.seal(payload: own.payload, origin: settings.me, planHash: settings.planHash, key: newKey)
        stored[settings.me] = Stored(key: newKey.publicKey, message: message, payload: own.payload, digest: own.digest)
        var out: [Directive] = settings.neighbours.map { .send(to: $0, bytes: message) }
        if let basis { out += settings.neighbours.map { .send(to: $0, bytes: sealBasis(basis)) } }
        return out
    }

    // MARK: Statistics blobs

    private struct Parsed {
        var origin: PeerID
        var key: Ed25519.PublicKey
        var payload: [UInt8]
    }

    private struct Failure: Error {
        var reason: Reason
        var message: String
    }

    private mutating func receiveStatistics(_ bytes: [UInt8], from peer: PeerID, into out: inout [Directive]) {
        let parsed: Parsed
        do { parsed = try parse(bytes) } catch { return reject(from: peer, error.reason, error.message, into: &out) }
        if let existing = stored[parsed.origin], existing.key == parsed.key {
            // A duplicate, or a second, different blob from the same origin under the same key.
            if existing.message != bytes && existing.payload != parsed.payload {
                reject(from: peer, .equivocation, "'\(parsed.origin)' signed two different statistics messages", into: &out)
            }
            return
        }
        if let (reason, message) = validate(parsed.origin, parsed.payload) {
            return reject(from: peer, reason, "statistics of '\(parsed.origin)': \(message)", into: &out)
        }
        store(parsed, message: bytes)
        for neighbour in settings.neighbours where neighbour != peer { out.append(.send(to: neighbour, bytes: bytes)) }
        if !isComplete { checkComplete(into: &out) }
    }

    private mutating func store(_ parsed: Parsed, message: [UInt8]) {
        stored[parsed.origin] = Stored(key: parsed.key, message: message, payload: parsed.payload, digest: Self.digest(parsed.payload))
    }

    private func parse(_ bytes: [UInt8]) throws(Failure) -> Parsed {
        var r = Reader(bytes)
        guard r.byte() == Self.statisticsType, r.take(4) == Array("PLXT".utf8) else { throw Failure(reason: .badMagic, message: "not a statistics message") }
        guard r.byte() == 2 else { throw Failure(reason: .unsupportedVersion, message: "statistics message of another version") }
        guard let hash = r.take(32) else { throw Failure(reason: .truncated, message: "statistics message cut short") }
        guard hash == settings.planHash else { throw Failure(reason: .planMismatch, message: "statistics for another plan") }
        guard let origin = r.peerID() else { throw Failure(reason: .badOrigin, message: "origin is not a valid peer id") }
        guard let length = r.u32(), length <= Self.maximumPayload else {
            throw Failure(reason: .badLength, message: "statistics payload longer than \(Self.maximumPayload) bytes, or cut short")
        }
        guard let payload = r.take(Int(length)) else { throw Failure(reason: .truncated, message: "statistics payload cut short") }
        let bodyEnd = r.offset
        guard let signature = r.take(64) else { throw Failure(reason: .truncated, message: "statistics signature cut short") }
        guard r.isAtEnd else { throw Failure(reason: .trailingBytes, message: "bytes follow the statistics signature") }
        guard let key = settings.peers[origin] else {
            throw Failure(reason: .unknownOrigin, message: "statistics from '\(origin)', which is not in the topology")
        }
        guard key.isValidSignature(signature, for: Self.signedDigest("plexus/statistics/v2", bytes[1..<bodyEnd])) else {
            throw Failure(reason: .badSignature, message: "statistics of '\(origin)' do not verify with the key pinned for it now (signed by a retired key?)")
        }
        return Parsed(origin: origin, key: key, payload: payload)
    }

    /// The signed statistics message of `payload`.
    public static func seal(payload: [UInt8], origin: PeerID, planHash: [UInt8], key: Ed25519.PrivateKey) -> [UInt8] {
        var w = ByteWriter()
        w.write(statisticsType)
        w.write(contentsOf: Array("PLXT".utf8))
        w.write(2)
        w.write(contentsOf: planHash)
        w.write(peerID: origin)
        w.write(littleEndian: UInt32(payload.count))
        w.write(contentsOf: payload)
        w.write(contentsOf: key.signature(for: signedDigest("plexus/statistics/v2", w.bytes[1...])))
        return w.bytes
    }

    // MARK: Requests

    package static func request(_ origins: [PeerID]) -> [UInt8] {
        var w = ByteWriter()
        w.write(requestType)
        w.write(contentsOf: Array("PLXQ".utf8))
        w.write(1)
        let named = origins.prefix(maximumOrigins)
        w.write(littleEndian: UInt16(named.count))
        for origin in named { w.write(peerID: origin) }
        return w.bytes
    }

    private static func parseRequest(_ bytes: [UInt8]) -> Result<[PeerID], Failure> {
        var r = Reader(bytes)
        guard r.byte() == requestType, r.take(4) == Array("PLXQ".utf8), r.byte() == 1 else {
            return .failure(Failure(reason: .badMagic, message: "not a version-1 statistics request"))
        }
        guard let count = r.u16(), Int(count) <= maximumOrigins else {
            return .failure(Failure(reason: .badLength, message: "a statistics request naming more than \(maximumOrigins) origins"))
        }
        var origins: [PeerID] = []
        for _ in 0..<count {
            guard let origin = r.peerID() else { return .failure(Failure(reason: .badOrigin, message: "a request names an invalid peer id")) }
            origins.append(origin)
        }
        guard r.isAtEnd else { return .failure(Failure(reason: .trailingBytes, message: "bytes follow the statistics request")) }
        return .success(origins)
    }

    // MARK: Basis

    private func sealBasis(_ digests: [PeerID: [UInt8]]) -> [UInt8] {
        var w = ByteWriter()
        w.write(Self.basisType)
        w.write(contentsOf: Array("PLXB".utf8))
        w.write(1)
        w.write(contentsOf: settings.planHash)
        w.write(peerID: settings.me)
        w.write(littleEndian: UInt16(digests.count))
        for origin in digests.keys.sorted() {
            w.write(peerID: origin)
            w.write(contentsOf: digests[origin]!)
        }
        w.write(contentsOf: key.signature(for: Self.signedDigest("plexus/basis/v1", w.bytes[1...])))
        return w.bytes
    }

    private mutating func receiveBasis(_ bytes: [UInt8], from peer: PeerID, into out: inout [Directive]) {
        var r = Reader(bytes)
        guard r.byte() == Self.basisType, r.take(4) == Array("PLXB".utf8), r.byte() == 1 else {
            return reject(from: peer, .badMagic, "not a version-1 basis message", into: &out)
        }
        guard r.take(32) == settings.planHash else { return reject(from: peer, .planMismatch, "a basis for another plan", into: &out) }
        guard let announcer = r.peerID(), announcer == peer else {
            return reject(from: peer, .originMismatch, "a basis not announced by the neighbour that sent it", into: &out)
        }
        guard let count = r.u16(), count >= 1, Int(count) <= Self.maximumOrigins else {
            return reject(from: peer, .badLength, "a basis naming no origin or more than \(Self.maximumOrigins)", into: &out)
        }
        var digests: [PeerID: [UInt8]] = [:]
        for _ in 0..<count {
            guard let origin = r.peerID(), let digest = r.take(32), digests[origin] == nil else {
                return reject(from: peer, .badMessage, "a basis with a bad or repeated entry", into: &out)
            }
            digests[origin] = digest
        }
        let bodyEnd = r.offset
        guard let signature = r.take(64), r.isAtEnd else { return reject(from: peer, .badLength, "a basis signature cut short or followed by bytes", into: &out) }
        guard let pinned = settings.peers[peer], pinned.isValidSignature(signature, for: Self.signedDigest("plexus/basis/v1", bytes[1..<bodyEnd])) else {
            return reject(from: peer, .badSignature, "the basis of '\(peer)' does not verify with its pinned key", into: &out)
        }
        if let basis {
            // Already training: a neighbour on another basis trains on another standardization.
            if basis != digests { out.append(.basisConflict(settings.me, peer, origins: Self.differing(basis, digests))) }
            return
        }
        if let adopted = adoptedBasis {
            if adopted.digests != digests { out.append(.basisConflict(adopted.from, peer, origins: Self.differing(adopted.digests, digests))) }
            return
        }
        guard digests.keys.allSatisfy({ settings.peers[$0] != nil }) else {
            return reject(from: peer, .unknownOrigin, "the basis of '\(peer)' names a peer not in this topology", into: &out)
        }
        adoptedBasis = (peer, digests)
        checkComplete(into: &out)
        let lacking = missing
        if !lacking.isEmpty { out.append(.send(to: peer, bytes: Self.request(lacking))) }
    }

    private static func differing(_ a: [PeerID: [UInt8]], _ b: [PeerID: [UInt8]]) -> [PeerID] {
        Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
    }

    // MARK: Completion

    private mutating func checkComplete(into out: inout [Directive]) {
        guard basis == nil, startedAt != nil, missing.isEmpty else { return }
        let origins = needed
        basis = Dictionary(uniqueKeysWithValues: origins.map { ($0, stored[$0]!.digest) })
        basisPayloads = Dictionary(uniqueKeysWithValues: origins.map { ($0, stored[$0]!.payload) })
        out.append(.completed(basisPayloads))
        let announcement = sealBasis(basis!)
        for neighbour in settings.neighbours { out.append(.send(to: neighbour, bytes: announcement)) }
    }

    private mutating func reject(from peer: PeerID, _ reason: Reason, _ message: String, into out: inout [Directive]) {
        // Past the budget in one tick interval the neighbour is cut off, as the gossip instance
        // does: statistics traffic cannot be a cheaper flood than envelopes.
        rejectionsThisInterval[peer, default: 0] += 1
        if rejectionsThisInterval[peer] == Self.rejectionBudget + 1 { out.append(.disconnect(peer, reason: .rejectionBudget)) }
        // One event per sender and reason per tick interval: a flood is counted, not logged.
        guard rejectedThisInterval.insert("\(peer)\u{0}\(reason)").inserted else { return }
        out.append(.rejected(from: peer, reason: reason, message: message))
    }

    // MARK: Bytes

    static func digest(_ payload: [UInt8]) -> [UInt8] {
        var h = BLAKE2b()
        h.update(payload)
        return h.finalize()
    }

    private static func signedDigest(_ domain: String, _ body: ArraySlice<UInt8>) -> [UInt8] {
        var h = BLAKE2b()
        h.update(domain)
        h.update(Array(body))
        return h.finalize()
    }


    /// A bounds-checked reader over untrusted bytes: every read returns `nil` past the end.
    private struct Reader {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var isAtEnd: Bool { offset == bytes.count }
        mutating func byte() -> UInt8? { take(1)?.first }
        mutating func take(_ n: Int) -> [UInt8]? {
            guard n >= 0, n <= bytes.count - offset else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }
        mutating func u16() -> UInt16? { take(2).map { UInt16($0[0]) | UInt16($0[1]) << 8 } }
        mutating func u32() -> UInt32? { take(4).map { $0.reversed().reduce(0) { $0 << 8 | UInt32($1) } } }
        mutating func peerID() -> PeerID? {
            guard let length = byte(), length >= 1, let raw = take(Int(length)), raw.allSatisfy(PeerID.isAllowed) else { return nil }
            return PeerID(String(decoding: raw, as: UTF8.self))
        }
    }
}

/// A completed statistics round on disk, `<state-dir>/<peer>.statistics`, written once when the
/// round completes (and again when a held blob is replaced): a restarted peer trains on at once
/// with the standardization it had — it never waits for the round again, nor recomputes it over
/// other sites — and serves the signed blobs it held to peers that still need them.
///
///     "PLXR" | version 2 | plan hash (32) | N u16 | N × (L | origin (L) | P u32 | basis payload (P)
///            | M u32 | signed message (M)) | MAC
///
/// The MAC is keyed BLAKE2b-256 of everything before it under the node-local state key (the
/// state file's, `<state-dir>/<peer>.statekey`): tamper evidence, as for the state file. Version
/// 1 files (a plain BLAKE2b-256 checksum instead of the MAC) are still read.
///
/// A payload with P = 0 is an origin held but not in the basis; M = 0, a basis entry whose signed
/// blob is no longer held (its origin's key rotated since).
public struct CompletedStatistics: Sendable, Equatable {
    public static let magic = Array("PLXR".utf8)

    public var basis: [PeerID: [UInt8]]
    public var messages: [PeerID: [UInt8]]

    public init(basis: [PeerID: [UInt8]], messages: [PeerID: [UInt8]]) {
        self.basis = basis
        self.messages = messages
    }

    /// The file's bytes: version 2, authenticated under `key`; without a key, version 1 (checksum).
    public func encoded(planHash: [UInt8], key: SecureBytes? = nil) -> [UInt8] {
        var w = ByteWriter()
        w.write(contentsOf: Self.magic)
        w.write(key == nil ? 1 : 2)
        w.write(contentsOf: planHash)
        let origins = Set(basis.keys).union(messages.keys).sorted()
        w.write(littleEndian: UInt16(origins.count))
        for origin in origins {
            w.write(peerID: origin)
            let payload = basis[origin] ?? []
            w.write(littleEndian: UInt32(payload.count))
            w.write(contentsOf: payload)
            let message = messages[origin] ?? []
            w.write(littleEndian: UInt32(message.count))
            w.write(contentsOf: message)
        }
        if let key {
            w.write(contentsOf: LocalFileMAC.mac(w.bytes, key: key))
        } else {
            w.write(contentsOf: BLAKE2b.hash256(w.bytes))
        }
        return w.bytes
    }


    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Decodes the file's bytes (untrusted: every length is checked before it is read).
    /// A version-2 file needs `key`, the state key it was written under; a version-1 file is read
    /// only when `acceptChecksum` (a node upgrading, with no state key before this start).
    public init(decoding bytes: [UInt8], planHash: [UInt8], key: SecureBytes? = nil, acceptChecksum: Bool = true) throws(Error) {
        guard bytes.count >= 4 + 1 + 32 + 2 + 32 else { throw Error(description: "statistics file too short") }
        let body = Array(bytes[..<(bytes.count - 32)])
        let trailer = Array(bytes[(bytes.count - 32)...])
        let version = bytes[4]
        if let problem = LocalFileMAC.problem(version: version, body: body, trailer: trailer, key: key, acceptChecksum: acceptChecksum, what: "statistics file") {
            throw Error(description: problem)
        }
        let parsed: Result<CompletedStatistics, Error> = body.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            do {
                guard try r.readSlice(4, "magic").elementsEqual(Self.magic), try r.readByte("version") == version else {
                    return .failure(Error(description: "not a Plexus statistics file"))
                }
                guard try r.readSlice(32, "plan hash").elementsEqual(planHash) else {
                    return .failure(Error(description: "statistics file of another plan"))
                }
                let count = Int(try r.read(UInt16.self, "origins"))
                var out = CompletedStatistics(basis: [:], messages: [:])
                for _ in 0..<count {
                    guard let origin = try r.readPeerID("id") else {
                        return .failure(Error(description: "statistics file holds an invalid peer id"))
                    }
                    let p = Int(try r.read(UInt32.self, "payload length"))
                    guard p <= StatisticsRound.maximumPayload else { return .failure(Error(description: "statistics file: payload too long")) }
                    let payload = Array(try r.readSlice(p, "payload"))
                    let m = Int(try r.read(UInt32.self, "message length"))
                    guard m <= StatisticsRound.maximumPayload + 512 else { return .failure(Error(description: "statistics file: message too long")) }
                    let message = Array(try r.readSlice(m, "message"))
                    if !payload.isEmpty { out.basis[origin] = payload }
                    if !message.isEmpty { out.messages[origin] = message }
                }
                guard r.isAtEnd else { return .failure(Error(description: "bytes follow the statistics file's entries")) }
                guard !out.basis.isEmpty else { return .failure(Error(description: "statistics file with an empty basis")) }
                return .success(out)
            } catch {
                return .failure(Error(description: "statistics file cut short: \(error)"))
            }
        }
        self = try parsed.get()
    }
}

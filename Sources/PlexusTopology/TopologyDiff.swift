public import PlexusCore
public import PlexusCrypto

/// What changed between two topologies: what a running node must act on when its topology
/// file is edited (connect to added neighbours, drop removed ones, re-pin rotated keys, …).
///
/// Lists are sorted by peer id (links by their unordered pair) so a diff prints the same way
/// every time. An empty diff (``isEmpty``) means nothing a node acts on changed.
public struct TopologyDiff: Sendable, CustomStringConvertible {
    public struct Change<Value: Sendable & Equatable>: Sendable, Equatable {
        public let old: Value
        public let new: Value
    }

    public var networkName: Change<String>?
    public var protocolVersion: Change<Int>?
    public var peersAdded: [Topology.Peer] = []
    public var peersRemoved: [Topology.Peer] = []
    public var keysRotated: [(peer: PeerID, change: Change<Ed25519.PublicKey>)] = []
    public var endpointsChanged: [(peer: PeerID, change: Change<Endpoint>)] = []
    public var linksAdded: [Topology.Link] = []
    public var linksRemoved: [Topology.Link] = []
    /// Explicit weights that changed on links present in both (nil = no weight).
    public var weightsChanged: [(link: Topology.LinkKey, change: Change<Double?>)] = []
    /// The plan keys whose values differ, with their TOML literals (nil = absent).
    public var planChanges: [(key: String, change: Change<String?>)] = []
    public var planHash: Change<[UInt8]>?

    /// Compares `old` with `new`.
    public init(from old: Topology, to new: Topology) {
        if old.networkName != new.networkName { networkName = Change(old: old.networkName, new: new.networkName) }
        if old.protocolVersion != new.protocolVersion {
            protocolVersion = Change(old: old.protocolVersion, new: new.protocolVersion)
        }
        let oldPeers = Dictionary(old.peers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let newPeers = Dictionary(new.peers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        peersAdded = new.peers.filter { oldPeers[$0.id] == nil }.sorted { $0.id < $1.id }
        peersRemoved = old.peers.filter { newPeers[$0.id] == nil }.sorted { $0.id < $1.id }
        for peer in new.peers.sorted(by: { $0.id < $1.id }) {
            guard let before = oldPeers[peer.id] else { continue }
            if before.publicKey != peer.publicKey {
                keysRotated.append((peer.id, Change(old: before.publicKey, new: peer.publicKey)))
            }
            if before.endpoint != peer.endpoint {
                endpointsChanged.append((peer.id, Change(old: before.endpoint, new: peer.endpoint)))
            }
        }
        let oldLinks = Dictionary(old.links.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let newLinks = Dictionary(new.links.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        linksAdded = new.links.filter { oldLinks[$0.key] == nil }.sorted { $0.key < $1.key }
        linksRemoved = old.links.filter { newLinks[$0.key] == nil }.sorted { $0.key < $1.key }
        for key in newLinks.keys.sorted() {
            guard let before = oldLinks[key], let after = newLinks[key], before.weight != after.weight else { continue }
            weightsChanged.append((key, Change(old: before.weight, new: after.weight)))
        }
        if old.plan != new.plan {
            let before = Dictionary(TopologyWriter.planEntries(old.plan).map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            let after = Dictionary(TopologyWriter.planEntries(new.plan).map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            for key in PlanKeys.all where before[key] != after[key] {
                planChanges.append((key, Change(old: before[key], new: after[key])))
            }
            planHash = Change(old: old.planHash, new: new.planHash)
        }
    }

    public var planChanged: Bool { planHash != nil }

    public var isEmpty: Bool {
        networkName == nil && protocolVersion == nil && peersAdded.isEmpty && peersRemoved.isEmpty && keysRotated.isEmpty
            && endpointsChanged.isEmpty && linksAdded.isEmpty && linksRemoved.isEmpty && weightsChanged.isEmpty
            && planHash == nil
    }

    /// One line per change: `+` added, `-` removed, `~` changed.
    public var lines: [String] {
        var lines: [String] = []
        if let c = networkName { lines.append("~ network name: \(c.old) -> \(c.new)") }
        if let c = protocolVersion { lines.append("~ protocol: \(c.old) -> \(c.new)") }
        for p in peersAdded { lines.append("+ peer \(p.id) \(p.endpoint) \(p.publicKey.base64)") }
        for p in peersRemoved { lines.append("- peer \(p.id) \(p.endpoint)") }
        for (id, c) in keysRotated { lines.append("~ peer \(id): public key \(c.old.base64) -> \(c.new.base64)") }
        for (id, c) in endpointsChanged { lines.append("~ peer \(id): endpoint \(c.old) -> \(c.new)") }
        for l in linksAdded { lines.append("+ link \(l.key)" + (l.weight.map { " weight \(TopologyWriter.number($0))" } ?? "")) }
        for l in linksRemoved { lines.append("- link \(l.key)") }
        for (key, c) in weightsChanged {
            let old = c.old.map(TopologyWriter.number) ?? "none"
            let new = c.new.map(TopologyWriter.number) ?? "none"
            lines.append("~ link \(key): weight \(old) -> \(new)")
        }
        for (key, c) in planChanges { lines.append("~ plan \(key): \(c.old ?? "(unset)") -> \(c.new ?? "(unset)")") }
        if let h = planHash { lines.append("~ plan hash: \(PlanHash.hex(h.old)) -> \(PlanHash.hex(h.new))") }
        return lines
    }

    public var description: String { isEmpty ? "no changes" : lines.joined(separator: "\n") }
}

public import PlexusCore
public import PlexusCrypto

/// A parsed, validated topology file: the network, its learning plan, its peers and the
/// undirected links between them.
///
/// A `Topology` only exists when its file had no error: ``load(path:)`` and
/// ``parse(source:path:spectralAnalysis:)`` throw ``TopologyError`` (with every diagnostic)
/// otherwise. Warnings found on the way are kept in ``warnings``.
///
/// Peer order is file order everywhere: ``peers``, ``mixingMatrix()`` rows and columns.
public struct Topology: Sendable {
    /// The protocol version this build speaks; `[network] protocol` MUST equal it.
    public static let protocolVersion = 1

    /// One `[[peer]]` table.
    public struct Peer: Hashable, Sendable {
        public let id: PeerID
        public let endpoint: Endpoint
        /// The pinned Ed25519 key the peer MUST prove in every handshake.
        public let publicKey: Ed25519.PublicKey
        /// `samples = N` or `max_samples = N`: the count the mixing weights use for this peer
        /// whatever it signs (see ``SamplePin``); `nil` when the file names none.
        public let samples: SamplePin?

        public init(id: PeerID, endpoint: Endpoint, publicKey: Ed25519.PublicKey, samples: SamplePin? = nil) {
            self.id = id
            self.endpoint = endpoint
            self.publicKey = publicKey
            self.samples = samples
        }
    }

    /// One `[[link]]` table: an undirected edge. `a` and `b` are in file order.
    public struct Link: Hashable, Sendable, CustomStringConvertible {
        public let a: PeerID
        public let b: PeerID
        /// The explicit mixing weight; used only with `mixing = "explicit"`.
        public let weight: Double?

        public init(_ a: PeerID, _ b: PeerID, weight: Double? = nil) {
            self.a = a
            self.b = b
            self.weight = weight
        }

        /// The unordered pair, smaller id first: equal for `a -- b` and `b -- a`.
        public var key: LinkKey { LinkKey(a, b) }

        public var description: String { "\(a) -- \(b)" }
    }

    /// An unordered pair of peers, smaller id first.
    public struct LinkKey: Hashable, Comparable, Sendable, CustomStringConvertible {
        public let low: PeerID
        public let high: PeerID

        public init(_ x: PeerID, _ y: PeerID) {
            (low, high) = x <= y ? (x, y) : (y, x)
        }

        public static func < (l: Self, r: Self) -> Bool { (l.low, l.high) < (r.low, r.high) }
        public var description: String { "\(low) -- \(high)" }
    }

    /// `[network] name`.
    public let networkName: String
    /// `[network] protocol`.
    public let protocolVersion: Int
    public let plan: Plan
    public let peers: [Peer]
    public let links: [Link]
    /// Warnings found while loading (empty for a value built in code).
    public internal(set) var warnings: [Diagnostic] = []
    /// The graph facts computed while loading with spectral analysis (`nil` otherwise), so a
    /// caller need not repeat the eigen-decomposition.
    public internal(set) var facts: GraphFacts?
    /// BLAKE2b-256 of the whole file's text (comments and layout included), when it was parsed
    /// from text: admins compare it to see that every site runs the same file.
    public internal(set) var fingerprint: [UInt8]?

    /// The first 16 hex digits of ``fingerprint``, as logs, metrics and `topology check` show it.
    public var fingerprintHex: String {
        fingerprint.map(Topology.hex) ?? "none"
    }

    /// The first 16 hex digits of a fingerprint, as ``fingerprintHex`` shows one.
    public static func hex(_ fingerprint: [UInt8]) -> String {
        fingerprint.prefix(8).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    private let indexOfPeer: [PeerID: Int]
    /// Neighbour indices of each peer, ascending.
    private let adjacency: [[Int]]
    /// The weight of each link, by its key (explicit mixing).
    private let weightOfLink: [LinkKey: Double]

    /// Builds a topology from values. The caller is responsible for validity: unique ids,
    /// links between known, distinct peers, no duplicate links. Render it with
    /// ``TopologyWriter/toml(_:comment:)`` and parse it back to validate it.
    public init(networkName: String, protocolVersion: Int = Topology.protocolVersion, plan: Plan, peers: [Peer], links: [Link]) {
        self.networkName = networkName
        self.protocolVersion = protocolVersion
        self.plan = plan
        self.peers = peers
        self.links = links
        var indexOfPeer: [PeerID: Int] = [:]
        for (i, peer) in peers.enumerated() where indexOfPeer[peer.id] == nil { indexOfPeer[peer.id] = i }
        var adjacency = [[Int]](repeating: [], count: peers.count)
        var weights: [LinkKey: Double] = [:]
        var seen: Set<LinkKey> = []
        for link in links {
            guard let i = indexOfPeer[link.a], let j = indexOfPeer[link.b], i != j, seen.insert(link.key).inserted else { continue }
            adjacency[i].append(j)
            adjacency[j].append(i)
            weights[link.key] = link.weight ?? 0
        }
        self.indexOfPeer = indexOfPeer
        self.adjacency = adjacency.map { $0.sorted() }
        self.weightOfLink = weights
    }

    /// BLAKE2b-256 of the plan's canonical encoding (``PlanHash``): 32 bytes.
    public var planHash: [UInt8] { PlanHash.hash(plan) }

    /// The peer with `id`.
    public func peer(_ id: PeerID) -> Peer? { indexOfPeer[id].map { peers[$0] } }

    /// The position of `id` in ``peers``.
    public func index(of id: PeerID) -> Int? { indexOfPeer[id] }

    /// The peers linked to `id`, in file order; empty for an unknown id.
    public func neighbours(of id: PeerID) -> [PeerID] {
        guard let i = indexOfPeer[id] else { return [] }
        return adjacency[i].map { peers[$0].id }
    }

    /// The number of links of `id`.
    public func degree(of id: PeerID) -> Int { indexOfPeer[id].map { adjacency[$0].count } ?? 0 }

    /// Neighbour indices of every peer (file order), for graph algorithms.
    public var adjacencyLists: [[Int]] { adjacency }

    /// Peer `id`'s row of the mixing matrix: its own weight and each neighbour's.
    ///
    /// With `mixing = "metropolis"`: w_ij = 1 / (1 + max(d_i, d_j)) for each link, and
    /// w_ii = 1 − Σ_j w_ij. With `"explicit"`: w_ij is the link's `weight`, and w_ii the same
    /// remainder. Both are symmetric; a validated file guarantees w_ii ≥ 0.
    public func mixingWeights(for id: PeerID) -> (selfWeight: Double, neighbours: [PeerID: Double]) {
        guard let i = indexOfPeer[id] else { return (1, [:]) }
        var result: [PeerID: Double] = [:]
        var sum = 0.0
        for j in adjacency[i] {
            let w = weight(i, j)
            result[peers[j].id] = w
            sum += w
        }
        return (1 - sum, result)
    }

    /// w_ij for linked peers i ≠ j.
    func weight(_ i: Int, _ j: Int) -> Double {
        switch plan.mixing {
        case .metropolis:
            return 1 / Double(1 + max(adjacency[i].count, adjacency[j].count))
        case .explicit:
            return weightOfLink[LinkKey(peers[i].id, peers[j].id)] ?? 0
        }
    }

    /// The n × n mixing matrix W, rows and columns in file order: symmetric, and doubly
    /// stochastic when the file validated.
    public func mixingMatrix() -> [[Double]] {
        let n = peers.count
        var w = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            var sum = 0.0
            for j in adjacency[i] {
                let x = weight(i, j)
                w[i][j] = x
                sum += x
            }
            w[i][i] = 1 - sum
        }
        return w
    }

    /// The same matrix, row-major in one array.
    func flatMixingMatrix() -> [Double] {
        let n = peers.count
        var w = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            var sum = 0.0
            for j in adjacency[i] {
                let x = weight(i, j)
                w[i * n + j] = x
                sum += x
            }
            w[i * n + i] = 1 - sum
        }
        return w
    }
}

extension Topology {
    /// Reads, parses and validates the topology file at `path`.
    ///
    /// - Throws: ``TopologyError`` carrying every diagnostic, sorted by position, when the file
    ///   does not exist, cannot be read, is not UTF-8, exceeds 16 MiB, or has any error.
    public static func load(path: String, spectralAnalysis: Bool = true) throws(TopologyError) -> Topology {
        switch SourceFile.read(path: path) {
        case .failure(let diagnostic): throw TopologyError(diagnostics: [diagnostic])
        case .success(let source): return try parse(source: source, path: path, spectralAnalysis: spectralAnalysis)
        }
    }

    /// Parses and validates the bytes of a topology file (as read from disk): they MUST be
    /// UTF-8 without NUL bytes and at most 16 MiB.
    public static func parse(bytes: [UInt8], path: String, spectralAnalysis: Bool = true) throws(TopologyError) -> Topology {
        guard bytes.count <= SourceFile.maximumByteCount else {
            throw TopologyError(diagnostics: [Diagnostic(.error, "the file is larger than the \(SourceFile.maximumByteCount)-byte (16 MiB) limit", path: path, at: .file)])
        }
        switch SourceFile.decode(bytes, path: path) {
        case .failure(let diagnostic): throw TopologyError(diagnostics: [diagnostic])
        case .success(let source): return try parse(source: source, path: path, spectralAnalysis: spectralAnalysis)
        }
    }

    /// Parses and validates topology text; `path` names the file in diagnostics.
    ///
    /// - Parameter spectralAnalysis: compute the spectral gap (an O(n³) eigen-decomposition)
    ///   to warn about slow mixing. Default: true.
    public static func parse(source: String, path: String, spectralAnalysis: Bool = true) throws(TopologyError) -> Topology {
        var topology = try TopologyParser.parse(source: source, path: path, spectralAnalysis: spectralAnalysis)
        topology.fingerprint = BLAKE2b.hash256(Array(source.utf8))
        return topology
    }
}

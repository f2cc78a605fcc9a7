public import PlexusCore
public import PlexusCrypto

/// The graph shapes `plexus topology generate` builds.
public enum Shape: Hashable, Sendable, CustomStringConvertible {
    /// Each peer linked to the next, the last to the first. Two peers: one link.
    case ring
    /// A rows × columns grid with wrap-around, rows the largest divisor of n not above √n
    /// (a prime n gives a ring). Links that would repeat (2 rows or columns) appear once.
    case torus
    /// Every pair linked.
    case full
    /// The first peer linked to every other.
    case star
    /// Every peer has exactly `degree` links, connected; n·degree MUST be even and
    /// 1 ≤ degree < n (degree 1 only for n = 2). Built from a circulant graph randomised by
    /// degree-preserving double-edge swaps, seeded.
    case randomRegular(degree: Int)
    /// Newman–Watts small world: a ring lattice with 2 neighbours on each side, plus, for each
    /// lattice link, a random chord with probability `chordProbability` (default 0.2). Always
    /// connected.
    case smallWorld(chordProbability: Double)
    /// Static exponential graph: peer i linked to i ± 2^k (mod n) for every 2^k < n.
    case exponential

    public static let defaultChordProbability = 0.2

    /// The names accepted by ``init(parsing:)``.
    public static let syntax = "ring, torus, full, star, random-regular:D, small-world[:P] or exponential"

    /// Parses `ring`, `torus`, `full`, `star`, `random-regular:D`, `small-world`,
    /// `small-world:P` (0 ≤ P ≤ 1) or `exponential`.
    public init(parsing text: String) throws(GeneratorError) {
        switch text {
        case "ring": self = .ring
        case "torus": self = .torus
        case "full": self = .full
        case "star": self = .star
        case "exponential": self = .exponential
        case "small-world": self = .smallWorld(chordProbability: Self.defaultChordProbability)
        default:
            if text.hasPrefix("random-regular:"), let d = Int(text.dropFirst("random-regular:".count)), d >= 1 {
                self = .randomRegular(degree: d)
            } else if text.hasPrefix("small-world:"), let p = Double(text.dropFirst("small-world:".count)), p >= 0, p <= 1 {
                self = .smallWorld(chordProbability: p)
            } else {
                throw GeneratorError(message: "unknown shape '\(text)'; expected \(Self.syntax)")
            }
        }
    }

    public var description: String {
        switch self {
        case .ring: "ring"
        case .torus: "torus"
        case .full: "full"
        case .star: "star"
        case .exponential: "exponential"
        case .randomRegular(let d): "random-regular:\(d)"
        case .smallWorld(let p): p == Self.defaultChordProbability ? "small-world" : "small-world:\(p)"
        }
    }
}

public struct GeneratorError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Builds topologies of the ``Shape``s.
public enum TopologyGenerator {
    /// The most peers a generated file may have.
    public static let maximumPeers = 4096

    /// The links of `shape` over peers 0..<n, each pair once, smaller index first, sorted.
    public static func links(_ shape: Shape, peers n: Int, seed: UInt64 = 1) throws(GeneratorError) -> [(Int, Int)] {
        guard n >= 2 else { throw GeneratorError(message: "a generated network needs at least 2 peers, got \(n)") }
        guard n <= maximumPeers else { throw GeneratorError(message: "at most \(maximumPeers) peers, got \(n)") }
        var edges = EdgeSet(n: n)
        var rng = SplitMix64(seed: seed)
        switch shape {
        case .ring:
            for i in 0..<n { edges.insert(i, (i + 1) % n) }
        case .torus:
            var rows = 1
            var r = 1
            while r * r <= n {
                if n % r == 0 { rows = r }
                r += 1
            }
            let columns = n / rows
            for row in 0..<rows {
                for column in 0..<columns {
                    let v = row * columns + column
                    edges.insert(v, row * columns + (column + 1) % columns)
                    edges.insert(v, ((row + 1) % rows) * columns + column)
                }
            }
        case .full:
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { edges.insert(i, j) } }
        case .star:
            for i in 1..<n { edges.insert(0, i) }
        case .exponential:
            var step = 1
            while step < n {
                for i in 0..<n { edges.insert(i, (i + step) % n) }
                step *= 2
            }
        case .smallWorld(let p):
            let k = max(1, min(2, (n - 1) / 2))
            for i in 0..<n { for offset in 1...k { edges.insert(i, (i + offset) % n) } }
            let lattice = edges.sorted
            for (a, _) in lattice where rng.unit() < p {
                // A chord from a to a random peer it is not yet linked to (if any).
                for _ in 0..<8 {
                    let b = rng.below(n)
                    if b != a && !edges.contains(a, b) {
                        edges.insert(a, b)
                        break
                    }
                }
            }
        case .randomRegular(let d):
            guard d >= 1, d < n else {
                throw GeneratorError(message: "random-regular:\(d) needs 1 ≤ D < peers (\(n))")
            }
            guard (n * d) % 2 == 0 else {
                throw GeneratorError(message: "random-regular:\(d) with \(n) peers is impossible: peers × D must be even")
            }
            guard d >= 2 || n == 2 else {
                throw GeneratorError(message: "random-regular:1 with \(n) peers is a set of disjoint pairs, never connected; use D ≥ 2")
            }
            edges = randomRegular(n: n, degree: d, rng: &rng)
        }
        return edges.sorted
    }

    /// Circulant D-regular graph, then degree-preserving random double-edge swaps; swaps that
    /// disconnect the graph are undone at the end by retrying (bounded), else the circulant.
    static func randomRegular(n: Int, degree d: Int, rng: inout SplitMix64) -> EdgeSet {
        var base = EdgeSet(n: n)
        for i in 0..<n {
            for offset in stride(from: 1, through: d / 2, by: 1) { base.insert(i, (i + offset) % n) }
            if d % 2 == 1 { base.insert(i, (i + n / 2) % n) }
        }
        if d >= n - 2 { return base }  // (near-)complete: no room to swap
        for _ in 0..<20 {
            var edges = base
            var list = edges.sorted
            let swaps = 10 * list.count
            for _ in 0..<swaps {
                let x = rng.below(list.count), y = rng.below(list.count)
                guard x != y else { continue }
                var (a, b) = list[x]
                var (c, e) = list[y]
                if rng.below(2) == 0 { swap(&c, &e) }
                if rng.below(2) == 0 { swap(&a, &b) }
                // (a,b),(c,e) → (a,e),(c,b)
                guard a != e, c != b, !edges.contains(a, e), !edges.contains(c, b) else { continue }
                edges.remove(a, b)
                edges.remove(c, e)
                edges.insert(a, e)
                edges.insert(c, b)
                list[x] = (min(a, e), max(a, e))
                list[y] = (min(c, b), max(c, b))
            }
            if Graph.components(edges.adjacency).count == 1 { return edges }
        }
        return base
    }

    /// Peer ids `peer-00`, `peer-01`, …: zero-padded to the width of n − 1, at least 2 digits.
    public static func peerIDs(count n: Int) -> [PeerID] {
        let width = max(2, String(max(0, n - 1)).count)
        return (0..<n).compactMap { i in
            let digits = String(i)
            return PeerID("peer-" + String(repeating: "0", count: max(0, width - digits.count)) + digits)
        }
    }

    /// A whole topology: `shape` over n peers named by ``peerIDs(count:)``, listening on
    /// `host` at ports `basePort`, `basePort + 1`, …, with the public keys `publicKey` gives.
    public static func generate(
        shape: Shape,
        peers n: Int,
        host: String = "127.0.0.1",
        basePort: Int = 7400,
        seed: UInt64 = 1,
        networkName: String,
        plan: Plan,
        publicKey: (PeerID) -> Ed25519.PublicKey
    ) throws(GeneratorError) -> Topology {
        let pairs = try links(shape, peers: n, seed: seed)
        guard basePort >= 1, basePort + n - 1 <= 65535 else {
            throw GeneratorError(message: "ports \(basePort)…\(basePort + n - 1) do not fit in 1…65535; choose a smaller --base-port")
        }
        let ids = peerIDs(count: n)
        let peers = ids.enumerated().map { i, id in
            Topology.Peer(id: id, endpoint: Endpoint(host: host, port: basePort + i), publicKey: publicKey(id))
        }
        var plan = plan
        if plan.mixing == .explicit { plan.mixing = .metropolis }
        return Topology(networkName: networkName, plan: plan, peers: peers, links: pairs.map { Topology.Link(ids[$0.0], ids[$0.1]) })
    }

    /// A plan for generated networks when none is given: logistic regression on a `label` column.
    public static var defaultPlan: Plan {
        var plan = Plan(model: .logistic, rounds: 100, learningRate: 0.1)
        plan.label = "label"
        return plan
    }
}

/// A set of undirected edges over 0..<n without self-loops.
struct EdgeSet {
    let n: Int
    private var codes: Set<Int> = []

    init(n: Int) { self.n = n }

    private func code(_ a: Int, _ b: Int) -> Int { min(a, b) * n + max(a, b) }

    mutating func insert(_ a: Int, _ b: Int) {
        guard a != b else { return }
        codes.insert(code(a, b))
    }

    mutating func remove(_ a: Int, _ b: Int) { codes.remove(code(a, b)) }

    func contains(_ a: Int, _ b: Int) -> Bool { codes.contains(code(a, b)) }

    var sorted: [(Int, Int)] { codes.sorted().map { ($0 / n, $0 % n) } }

    var adjacency: [[Int]] {
        var adjacency = [[Int]](repeating: [], count: n)
        for c in codes {
            adjacency[c / n].append(c % n)
            adjacency[c % n].append(c / n)
        }
        return adjacency
    }
}

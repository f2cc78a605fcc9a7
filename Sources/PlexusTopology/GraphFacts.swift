public import PlexusCore

/// What a network admin wants to know about a topology's graph: size, degrees, diameter,
/// connectivity, and how fast gossip averaging mixes.
///
/// The spectral gap is 1 − |λ₂|, where |λ₂| is the second largest absolute eigenvalue of the
/// mixing matrix W (the largest is 1). Disagreement between peers shrinks roughly by a factor
/// |λ₂| per round, so shrinking it 1000× takes about ln 1000 ÷ gap rounds.
public struct GraphFacts: Sendable, Equatable, Encodable {
    /// Above this many rounds to shrink disagreement 1000×, `check` warns even when the plan
    /// runs more rounds.
    public static let slowMixingRounds = 1000.0
    /// Up to this many peers the spectrum is computed exactly (dense O(n³) eigen-decomposition);
    /// above it |λ₂| is estimated by power iteration on the sparse matrix (``spectralGapIsEstimate``).
    public static let exactSpectrumLimit = 512
    /// Power iterations of the estimate.
    public static let powerIterations = 3000

    public var peers: Int
    public var links: Int
    public var degreeMin: Int
    public var degreeMean: Double
    public var degreeMax: Int
    /// The longest shortest path, in links; `nil` when the graph is disconnected.
    public var diameter: Int?
    /// Connected components, each in file order; the largest first.
    public var components: [[PeerID]]
    /// 1 − |λ₂| of the mixing matrix; `nil` when not computed.
    public var spectralGap: Double?
    /// |λ₂|, the second largest absolute eigenvalue; `nil` when not computed.
    public var secondEigenvalueModulus: Double?
    /// ln 1000 ÷ gap; `nil` when not computed or when the gap is 0 (never).
    public var roundsToShrink1000x: Double?
    /// Whether the gap comes from power iteration (more than ``exactSpectrumLimit`` peers):
    /// then |λ₂| may be slightly underestimated, the gap overestimated.
    public var spectralGapIsEstimate = false

    /// Computes the facts of `topology`.
    ///
    /// - Parameter spectralAnalysis: run the O(n³) eigen-decomposition. Default: true.
    public init(_ topology: Topology, spectralAnalysis: Bool = true) {
        let adjacency = topology.adjacencyLists
        let degrees = adjacency.map(\.count)
        peers = adjacency.count
        links = degrees.reduce(0, +) / 2
        degreeMin = degrees.min() ?? 0
        degreeMax = degrees.max() ?? 0
        degreeMean = degrees.isEmpty ? 0 : Double(degrees.reduce(0, +)) / Double(degrees.count)
        let componentIndices = Graph.components(adjacency)
        components = componentIndices.map { $0.map { topology.peers[$0].id } }
        diameter = componentIndices.count == 1 ? Graph.diameter(adjacency) : nil
        guard spectralAnalysis, peers >= 1 else { return }
        if componentIndices.count > 1 {
            spectralGap = 0
            secondEigenvalueModulus = 1
            return
        }
        let second: Double
        if peers <= Self.exactSpectrumLimit {
            let eigenvalues = SymmetricEigen.eigenvalues(topology.flatMixingMatrix(), n: peers)
            let moduli = eigenvalues.map { abs($0) }.sorted(by: >)
            second = moduli.count >= 2 ? moduli[1] : 0
        } else {
            second = Self.estimateSecondModulus(topology)
            spectralGapIsEstimate = true
        }
        secondEigenvalueModulus = second
        let gap = max(0, 1 - second)
        spectralGap = gap
        roundsToShrink1000x = gap > 1e-15 ? Self.ln1000 / gap : nil
    }

    static let ln1000 = 6.907755278982137

    /// |λ₂| by power iteration on W restricted to the complement of the constant vector (W is
    /// symmetric and doubly stochastic, so the constant vector is its eigenvector for λ₁ = 1):
    /// ‖W x‖ for a unit x orthogonal to it converges to the largest remaining modulus.
    static func estimateSecondModulus(_ topology: Topology) -> Double {
        let n = topology.peers.count
        let adjacency = topology.adjacencyLists
        var weights: [[Double]] = []
        var selfWeight = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let row = adjacency[i].map { topology.weight(i, $0) }
            weights.append(row)
            selfWeight[i] = 1 - row.reduce(0, +)
        }
        var rng = SplitMix64(seed: 1)
        var x = (0..<n).map { _ in rng.unit() - 0.5 }
        var y = [Double](repeating: 0, count: n)
        func project(_ v: inout [Double]) -> Double {
            let mean = v.reduce(0, +) / Double(n)
            var norm = 0.0
            for i in 0..<n {
                v[i] -= mean
                norm += v[i] * v[i]
            }
            return norm.squareRoot()
        }
        var norm = project(&x)
        guard norm > 0 else { return 0 }
        for i in 0..<n { x[i] /= norm }
        var estimate = 0.0
        for _ in 0..<powerIterations {
            for i in 0..<n {
                var sum = selfWeight[i] * x[i]
                let neighbours = adjacency[i], w = weights[i]
                for k in neighbours.indices { sum += w[k] * x[neighbours[k]] }
                y[i] = sum
            }
            norm = project(&y)
            guard norm > 1e-300 else { return 0 }
            let previous = estimate
            estimate = norm
            for i in 0..<n { x[i] = y[i] / norm }
            if abs(estimate - previous) < 1e-12 { break }
        }
        return min(1, estimate)
    }

    enum CodingKeys: String, CodingKey {
        case peers, links, degreeMin, degreeMean, degreeMax, diameter, components, spectralGap,
            secondEigenvalueModulus, roundsToShrink1000x, spectralGapIsEstimate
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(peers, forKey: .peers)
        try c.encode(links, forKey: .links)
        try c.encode(degreeMin, forKey: .degreeMin)
        try c.encode(degreeMean, forKey: .degreeMean)
        try c.encode(degreeMax, forKey: .degreeMax)
        try c.encode(diameter, forKey: .diameter)
        try c.encode(components.map { $0.map(\.rawValue) }, forKey: .components)
        try c.encode(spectralGap, forKey: .spectralGap)
        try c.encode(secondEigenvalueModulus, forKey: .secondEigenvalueModulus)
        try c.encode(roundsToShrink1000x, forKey: .roundsToShrink1000x)
        try c.encode(spectralGapIsEstimate, forKey: .spectralGapIsEstimate)
    }

    /// Human-readable lines, as `plexus topology check` prints them.
    public var summary: [String] {
        var lines = [
            "peers: \(peers)",
            "links: \(links)",
            "degree: min \(degreeMin), mean \(Format.number(degreeMean)), max \(degreeMax)",
            "diameter: \(diameter.map(String.init) ?? "∞ (disconnected)")",
            "components: \(components.count)",
        ]
        if let spectralGap {
            let estimated = spectralGapIsEstimate ? " (estimated by power iteration)" : ""
            lines.append("spectral gap: \(Format.number(spectralGap)) (|λ₂| = \(Format.fixed(secondEigenvalueModulus ?? 1, decimals: 6)))\(estimated)")
            lines.append("rounds to shrink disagreement 1000×: \(roundsToShrink1000x.map { "about " + Format.rounds($0) } ?? "never (disconnected)")")
        }
        return lines
    }
}

/// Graph algorithms over adjacency lists (neighbour indices).
enum Graph {
    /// Connected components, each ascending; the largest first, ties by first member.
    static func components(_ adjacency: [[Int]]) -> [[Int]] {
        let n = adjacency.count
        var label = [Int](repeating: -1, count: n)
        var result: [[Int]] = []
        for start in 0..<n where label[start] < 0 {
            var members = [start]
            label[start] = result.count
            var head = 0
            while head < members.count {
                let v = members[head]
                head += 1
                for w in adjacency[v] where label[w] < 0 {
                    label[w] = result.count
                    members.append(w)
                }
            }
            result.append(members.sorted())
        }
        return result.sorted { $0.count != $1.count ? $0.count > $1.count : $0[0] < $1[0] }
    }

    /// The largest eccentricity, by breadth-first search from every vertex: O(n·(n+m)).
    static func diameter(_ adjacency: [[Int]]) -> Int {
        let n = adjacency.count
        var best = 0
        var distance = [Int](repeating: -1, count: n)
        var queue = [Int](repeating: 0, count: n)
        for s in 0..<n {
            for i in 0..<n { distance[i] = -1 }
            distance[s] = 0
            queue[0] = s
            var head = 0, tail = 1
            while head < tail {
                let v = queue[head]
                head += 1
                for w in adjacency[v] where distance[w] < 0 {
                    distance[w] = distance[v] + 1
                    best = max(best, distance[w])
                    queue[tail] = w
                    tail += 1
                }
            }
        }
        return best
    }

    /// `{a, b, c}`, or `{a, b, c, d, e, …} (12 peers)` for a large component.
    static func describe(_ names: [String]) -> String {
        if names.count <= 6 { return "{" + names.joined(separator: ", ") + "}" }
        return "{" + names.prefix(5).joined(separator: ", ") + ", …} (\(names.count) peers)"
    }
}

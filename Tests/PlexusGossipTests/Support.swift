import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusSimulator

/// f(x) = ½‖x − target‖² · curvature, one gradient step per round: simple enough to compute the
/// protocol's expected trajectory directly.
struct QuadraticLearner: LocalLearner {
    var target: [Float]
    var sampleCount: Int
    var learningRate: Float
    /// A broken site (peer-scoring tests): in these rounds its trained model is replaced by this
    /// value in every coordinate — a finite, validly signed, wrong model.
    var poison: (rounds: ClosedRange<Int>, value: Float)? = nil

    mutating func train(_ parameters: inout [Float], round: Int) -> Double {
        var loss = 0.0
        for i in parameters.indices {
            let g = parameters[i] - target[i]
            loss += 0.5 * Double(g * g)
            parameters[i] -= learningRate * g
        }
        if let poison, poison.rounds.contains(round) {
            for i in parameters.indices { parameters[i] = poison.value }
        }
        return loss
    }
}

/// Undirected graphs for tests, as adjacency lists over peers 0..<n.
enum Graphs {
    static func ring(_ n: Int) -> [[Int]] { (0..<n).map { [($0 + n - 1) % n, ($0 + 1) % n] } }

    static func torus(_ side: Int) -> [[Int]] {
        (0..<side * side).map { i in
            let r = i / side, c = i % side
            return [((r + 1) % side) * side + c, ((r + side - 1) % side) * side + c, r * side + (c + 1) % side, r * side + (c + side - 1) % side]
        }
    }

    static func full(_ n: Int) -> [[Int]] { (0..<n).map { i in (0..<n).filter { $0 != i } } }

    /// The six TCGA-BRCA regions: northeast, south, west, midwest, europe, canada — a sparse
    /// connected graph (a ring with one chord).
    static let tcga: [[Int]] = [[1, 4, 2], [0, 2], [1, 3, 0], [2, 4], [3, 5, 0], [4]]

    /// Metropolis–Hastings base weights: w_ij = 1 / (1 + max(d_i, d_j)).
    static func metropolis(_ graph: [[Int]]) -> [[Double]] {
        let n = graph.count
        var w = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for j in graph[i] { w[i][j] = 1 / Double(1 + max(graph[i].count, graph[j].count)) }
        }
        return w
    }
}

let testPlanHash = BLAKE2b.hash256(Array("gossip test plan".utf8))

func peerID(_ i: Int) -> PeerID { PeerID("p" + String(String(1000 + i).dropFirst()))! }

func deterministicKey(_ i: Int) -> Ed25519.PrivateKey {
    var seed = [UInt8](repeating: 0, count: 32)
    seed[0] = UInt8(i & 0xFF)
    seed[1] = UInt8(i >> 8)
    seed[31] = 0x5A
    return try! Ed25519.PrivateKey(rawRepresentation: seed.withUnsafeBytes { SecureBytes(copying: $0) })
}

func randomVector(_ count: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
}

/// Peers on `graph` with quadratic learners.
func makePeers(
    graph: [[Int]],
    sizes: [Int],
    dimension: Int,
    rounds: Int,
    learningRate: Float,
    codec: CodecSpec = .lossless,
    consensusStep: Double = 1,
    synchrony: Plan.Synchrony = .synchronous,
    aggregation: Plan.Aggregation = .mean,
    targets: [[Float]]? = nil,
    initial: [Float]? = nil
) -> [SimulatedPeer<QuadraticLearner>] {
    let w = Graphs.metropolis(graph)
    let keys = graph.indices.map(deterministicKey)
    return graph.indices.map { i in
        var settings = GossipSettings(
            me: peerID(i), planHash: testPlanHash, codec: codec, rounds: rounds,
            neighbours: Dictionary(uniqueKeysWithValues: graph[i].map { j in
                (peerID(j), Neighbour(publicKey: keys[j].publicKey, weight: w[i][j]))
            })
        )
        settings.consensusStep = consensusStep
        settings.synchrony = synchrony
        settings.aggregation = aggregation
        settings.roundDeadline = .seconds(1)
        let target = targets?[i] ?? randomVector(dimension, seed: UInt64(100 + i))
        return SimulatedPeer(
            settings: settings, key: keys[i],
            learner: QuadraticLearner(target: target, sampleCount: sizes[i % sizes.count], learningRate: learningRate),
            initialParameters: initial ?? randomVector(dimension, seed: UInt64(i + 1))
        )
    }
}

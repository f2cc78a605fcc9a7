import PlexusCodec
import PlexusCore
import PlexusGossip
import PlexusSimulator
import Testing

@Suite struct ConsensusTests {
    static let tcgaSizes = [311, 196, 206, 162, 162, 51]

    /// With a lossless codec and γ = 1, a synchronous round is exactly D-PSGD:
    /// X ← P (X − η ∇F(X)), with P the sample-weighted mixing matrix.
    @Test(arguments: ["ring", "full", "tcga"])
    func losslessGossipIsNeighbourAveraging(shape: String) throws {
        let graph = shape == "ring" ? Graphs.ring(5) : shape == "full" ? Graphs.full(4) : Graphs.tcga
        let sizes = Self.tcgaSizes
        let dimension = 7
        let rounds = 12
        let eta: Float = 0.3
        let peers = makePeers(graph: graph, sizes: sizes, dimension: dimension, rounds: rounds, learningRate: eta)
        let outcome = Simulator(peers: peers, seed: 1).run()
        #expect(outcome.finished)

        // The same computation, directly, in Double.
        let n = graph.count
        // p_ij = n_j ÷ max(S_i, S_j), S_i = n_i + Σ_{j ~ i} n_j (see MixingWeights).
        let size = { (i: Int) in Double(sizes[i % sizes.count]) }
        let s = (0..<n).map { i in size(i) + graph[i].map(size).reduce(0, +) }
        var p = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for j in graph[i] { p[i][j] = size(j) / max(s[i], s[j]) }
            p[i][i] = 1 - p[i].reduce(0, +)
        }
        var x = peers.map { $0.initialParameters.map(Double.init) }
        let targets = peers.map { $0.learner.target.map(Double.init) }
        for _ in 0..<rounds {
            let trained = (0..<n).map { i in (0..<dimension).map { k in x[i][k] - Double(eta) * (x[i][k] - targets[i][k]) } }
            x = (0..<n).map { i in (0..<dimension).map { k in (0..<n).reduce(0.0) { $0 + p[i][$1] * trained[$1][k] } } }
        }
        var worst = 0.0
        for i in 0..<n {
            for k in 0..<dimension { worst = max(worst, abs(Double(outcome.parameters[peerID(i)]![k]) - x[i][k])) }
        }
        #expect(worst < 1e-5, "largest difference from the direct matrix computation: \(worst)")
    }

    /// Pure averaging (no training) of fixed random vectors reaches the sample-weighted mean.
    @Test(arguments: ["ring-8", "torus-16", "tcga"])
    func consensusReachesTheSampleWeightedMean(shape: String) throws {
        let graph = shape == "ring-8" ? Graphs.ring(8) : shape == "torus-16" ? Graphs.torus(4) : Graphs.tcga
        let sizes = Self.tcgaSizes
        let dimension = 16
        let rounds = shape == "ring-8" ? 700 : 300
        let peers = makePeers(graph: graph, sizes: sizes, dimension: dimension, rounds: rounds, learningRate: 0)
        var expected = [Double](repeating: 0, count: dimension)
        let total = Double(graph.indices.map { sizes[$0 % sizes.count] }.reduce(0, +))
        for (i, peer) in peers.enumerated() {
            for k in 0..<dimension { expected[k] += Double(sizes[i % sizes.count]) * Double(peer.initialParameters[k]) / total }
        }
        let outcome = Simulator(peers: peers, seed: 2).run()
        #expect(outcome.finished)
        var worst = 0.0
        for peer in peers {
            let x = outcome.parameters[peer.settings.me]!
            for k in 0..<dimension { worst = max(worst, abs(Double(x[k]) - expected[k])) }
        }
        #expect(worst < 1e-5, "\(shape): largest distance from Σ n_k x_k ÷ Σ n_k is \(worst)")
        // And not the unweighted mean, which differs here.
        let plainMean = (0..<dimension).map { k in peers.map { Double($0.initialParameters[k]) }.reduce(0, +) / Double(peers.count) }
        #expect(zip(plainMean, expected).map { abs($0 - $1) }.max()! > 1e-3)
    }

    /// With training, the sample-weighted mean of the models converges to the minimiser of
    /// Σ n_k f_k — for quadratics, the sample-weighted mean of the targets (FedAvg's weighting);
    /// individual models sit within O(η) of it (decentralized SGD with a constant step).
    @Test func trainingConvergesToTheSampleWeightedOptimum() throws {
        let sizes = Self.tcgaSizes
        let total = Double(sizes.reduce(0, +))
        func spread(learningRate: Float, rounds: Int) -> (meanError: Double, worst: Double) {
            let peers = makePeers(graph: Graphs.tcga, sizes: sizes, dimension: 5, rounds: rounds, learningRate: learningRate)
            let optimum = (0..<5).map { k in
                peers.indices.reduce(0.0) { $0 + Double(sizes[$1]) * Double(peers[$1].learner.target[k]) } / total
            }
            let outcome = Simulator(peers: peers, seed: 3).run()
            let models = peers.map { outcome.parameters[$0.settings.me]!.map(Double.init) }
            let weightedMean = (0..<5).map { k in models.indices.reduce(0.0) { $0 + Double(sizes[$1]) * models[$1][k] } / total }
            let meanError = zip(weightedMean, optimum).map { abs($0 - $1) }.max()!
            let worst = models.map { zip($0, optimum).map { abs($0 - $1) }.max()! }.max()!
            return (meanError, worst)
        }
        let coarse = spread(learningRate: 0.05, rounds: 600)
        let fine = spread(learningRate: 0.01, rounds: 2000)
        #expect(coarse.meanError < 1e-4, "weighted mean of the models vs the optimum: \(coarse.meanError)")
        #expect(fine.meanError < 1e-4)
        #expect(fine.worst < coarse.worst / 3, "the bias shrinks with the step: \(coarse.worst) → \(fine.worst)")
    }

    /// Same seed, same result, bit for bit — with a lossy, jittery network and a lossy codec.
    @Test func sameSeedSameBits() throws {
        func run() -> ([PeerID: [UInt32]], [String]) {
            let peers = makePeers(
                graph: Graphs.torus(3), sizes: Self.tcgaSizes, dimension: 50, rounds: 30, learningRate: 0.1,
                codec: .topK(fraction: 0.2, values: .float16), consensusStep: 0.5
            )
            let sim = Simulator(peers: peers, seed: 77)
            sim.links.loss = 0.1
            sim.links.jitter = .milliseconds(20)
            var log: [String] = []
            let outcome = sim.run(report: { r, t in
                log.append("\(t) \(r.peer) \(r.round) \(r.trainingLoss) \(r.consensusDistance) \(r.bytesSent) \(r.rejected.sorted { $0.key.rawValue < $1.key.rawValue })")
            })
            return (outcome.parameters.mapValues { $0.map(\.bitPattern) }, log)
        }
        let (a, logA) = run()
        let (b, logB) = run()
        #expect(a == b)
        #expect(logA.count == logB.count && zip(logA, logB).allSatisfy(==), "logs differ")
        #expect(logA.count == 9 * 30)
    }
}

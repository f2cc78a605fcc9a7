import PlexusCore
import PlexusGossip
import Testing

/// The bounded sample counts: pins, the symmetric median bound, and the reversibility of the
/// weights they give.
@Suite struct SampleBasisTests {
    static func graph(_ adjacency: [[Int]]) -> [PeerID: Set<PeerID>] {
        Dictionary(uniqueKeysWithValues: adjacency.enumerated().map { (peerID($0.offset), Set($0.element.map(peerID))) })
    }

    static func declared(_ counts: [Int]) -> [PeerID: Int] {
        Dictionary(uniqueKeysWithValues: counts.enumerated().map { (peerID($0.offset), $0.element) })
    }

    /// The sample-weighted Metropolis row of `peer` from the basis, as the instance builds it.
    static func row(_ basis: SampleBasis, _ peer: PeerID, graph: [PeerID: Set<PeerID>]) -> [PeerID: Double] {
        MixingWeights.row(
            selfSamples: basis.counts[peer]!, selfNeighbourhood: basis.neighbourhoods[peer]!,
            neighbours: graph[peer]!.sorted().map {
                MixingWeights.Entry(id: $0, baseWeight: 0.25, samples: basis.counts[$0], neighbourhoodSamples: basis.neighbourhoods[$0])
            },
            weighting: .samples
        )
    }

    @Test func anHonestNetworkUnderTheBoundKeepsItsCounts() {
        // consortium-3's split: 60/30/10 % of wdbc's training rows; the largest is 2× the median.
        let g = Self.graph(Graphs.full(3))
        let basis = SampleBasis(declared: Self.declared([273, 136, 46]), pins: [:], ratio: 4, graph: g)
        #expect(basis.counts == Self.declared([273, 136, 46]))
        #expect(basis.median == 136 && basis.bound == 544)
        #expect(basis.adjustments.isEmpty)
        #expect(basis.neighbourhoods == Self.declared([455, 455, 455]))
        // On a full mesh p_ij = n_j ÷ N: one step is exactly FedAvg's weighted mean.
        let row = Self.row(basis, peerID(2), graph: g)
        #expect(row[peerID(0)] == 273.0 / 455 && row[peerID(1)] == 136.0 / 455)
    }

    @Test func aCountAboveTheBoundCountsAsTheBound() {
        let g = Self.graph(Graphs.ring(5))
        let basis = SampleBasis(declared: Self.declared([100, 120, 90, 110, 1_000_000]), pins: [:], ratio: 4, graph: g)
        // Sorted 90, 100, 110, 120, 10⁶: the median is 110, the bound 440.
        #expect(basis.median == 110 && basis.bound == 440)
        #expect(basis.counts[peerID(4)] == 440)
        #expect(basis.adjustments == [SampleBasis.Adjustment(peer: peerID(4), declared: 1_000_000, used: 440, cause: .bound(ratio: 4, median: 110), contradictsPin: false)])
        // S′ from the graph and the bounded counts: p4's ring neighbours are p3 and p0.
        #expect(basis.neighbourhoods[peerID(4)] == 440 + 110 + 100)
        #expect(basis.neighbourhoods[peerID(0)] == 100 + 120 + 440)
        // The liar's weight at p0: 440 ÷ max(660, 650), not 10⁶ ÷ (10⁶ + …) ≈ 1.
        #expect(Self.row(basis, peerID(0), graph: g)[peerID(4)] == 440.0 / 660)
    }

    @Test func ratioZeroIsNoBound() {
        let basis = SampleBasis(declared: Self.declared([100, 120, 1_000_000]), pins: [:], ratio: 0, graph: Self.graph(Graphs.full(3)))
        #expect(basis.bound == nil && basis.adjustments.isEmpty && basis.counts[peerID(2)] == 1_000_000)
    }

    @Test func pinsComeFirstAndAContradictionIsFlagged() {
        let g = Self.graph(Graphs.full(4))
        let pins: [PeerID: SamplePin] = [peerID(0): .exactly(300), peerID(1): .atMost(50), peerID(2): .atMost(10_000)]
        let basis = SampleBasis(declared: Self.declared([250, 400, 200, 100]), pins: pins, ratio: 4, graph: g)
        // After the pins: 300, 50, 200, 100 → sorted 50, 100, 200, 300: median 100, bound 400.
        #expect(basis.counts == Self.declared([300, 50, 200, 100]))
        #expect(basis.median == 100 && basis.bound == 400)
        #expect(basis.adjustments == [
            SampleBasis.Adjustment(peer: peerID(0), declared: 250, used: 300, cause: .pin(.exactly(300)), contradictsPin: true),
            SampleBasis.Adjustment(peer: peerID(1), declared: 400, used: 50, cause: .pin(.atMost(50)), contradictsPin: true),
        ])
        // A pin the signed count respects changes nothing and says nothing.
        let honest = SampleBasis(declared: Self.declared([300, 40, 200, 100]), pins: pins, ratio: 4, graph: g)
        #expect(honest.adjustments.isEmpty && honest.counts == Self.declared([300, 40, 200, 100]))
    }

    /// Both ends compute the same basis, so π′_i p_ij = π′_j p_ji on every link, the rows are
    /// sub-stochastic, and no liar's weight exceeds an honest site of the bound's size — on a
    /// torus with seeded random counts and two liars.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func theBoundedWeightsAreReversible(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let adjacency = Graphs.torus(4)
        let g = Self.graph(adjacency)
        var counts = (0..<16).map { _ in 20 + rng.below(500) }
        counts[3] = 1 << 40
        counts[10] = 5_000_000
        let basis = SampleBasis(declared: Self.declared(counts), pins: [:], ratio: 4, graph: g)
        let total = Double(basis.counts.values.reduce(0, +))
        for i in 0..<16 {
            let row = Self.row(basis, peerID(i), graph: g)
            #expect(row.values.reduce(0, +) < 1)
            for j in adjacency[i] {
                let back = Self.row(basis, peerID(j), graph: g)
                let forward = Double(basis.counts[peerID(i)]!) / total * row[peerID(j)]!
                let backward = Double(basis.counts[peerID(j)]!) / total * back[peerID(i)]!
                #expect(abs(forward - backward) <= 1e-15 * max(forward, backward), "π p not symmetric on \(i)–\(j)")
            }
        }
        #expect(basis.counts[peerID(3)] == basis.bound && basis.counts[peerID(10)] == basis.bound)
        #expect(basis.adjustments.map(\.peer) == [peerID(3), peerID(10)])
    }
}

import Foundation
import PlexusCore
import PlexusCrypto
import PlexusTopology
import Testing

/// Test helpers that build topologies in code.
enum Build {
    /// One fixed, valid public key per index (keys are not what these tests check).
    static let keys: [Ed25519.PublicKey] = (0..<16).map { _ in Ed25519.PrivateKey().publicKey }

    static func topology(_ shape: Shape, peers n: Int, seed: UInt64 = 1) throws -> Topology {
        let ids = TopologyGenerator.peerIDs(count: n)
        var keyOf: [PeerID: Ed25519.PublicKey] = [:]
        for (i, id) in ids.enumerated() { keyOf[id] = keys[i % keys.count] }
        return try TopologyGenerator.generate(
            shape: shape, peers: n, seed: seed, networkName: "test", plan: TopologyGenerator.defaultPlan,
            publicKey: { keyOf[$0] ?? keys[0] })
    }
}

@Suite struct SpectralTests {
    @Test func ring16() throws {
        let facts = GraphFacts(try Build.topology(.ring, peers: 16))
        let gap = try #require(facts.spectralGap)
        // λ₂ = 1/3 + 2/3·cos(2π/16) for Metropolis–Hastings weights on a ring.
        #expect(abs(gap - (2.0 / 3.0) * (1 - cos(2 * Double.pi / 16))) < 1e-9, "gap \(gap)")
        #expect(abs(gap - 0.051) < 0.001)
        let rounds = try #require(facts.roundsToShrink1000x)
        #expect(rounds > 130 && rounds < 140, "rounds \(rounds)")
        #expect(facts.diameter == 8 && facts.degreeMin == 2 && facts.degreeMax == 2)
    }

    @Test func torus4x4() throws {
        let facts = GraphFacts(try Build.topology(.torus, peers: 16))
        let gap = try #require(facts.spectralGap)
        #expect(abs(gap - 0.4) < 1e-9, "gap \(gap)")
        #expect(facts.diameter == 4 && facts.degreeMin == 4 && facts.links == 32)
    }

    @Test func ring64() throws {
        let facts = GraphFacts(try Build.topology(.ring, peers: 64))
        let gap = try #require(facts.spectralGap)
        #expect(abs(gap - 0.0032) < 0.0001, "gap \(gap)")
        let rounds = try #require(facts.roundsToShrink1000x)
        #expect(rounds > 2050 && rounds < 2200, "rounds \(rounds)")
    }

    @Test func fullGraphMixesInOneRound() throws {
        let facts = GraphFacts(try Build.topology(.full, peers: 10))
        #expect(abs((facts.spectralGap ?? 0) - 1) < 1e-9)
    }
}

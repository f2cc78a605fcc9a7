import Foundation
import PlexusCore
import PlexusCrypto
import PlexusTopology
import Testing

/// Test helpers that build topologies in code.
enum Build {
    /// Distinct valid public keys, enough for 256 peers (keys are not what these tests check).
    static let keys: [Ed25519.PublicKey] = (0..<256).map { _ in Ed25519.PrivateKey().publicKey }

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

    /// Metropolis–Hastings on a ring: λ₂ = 1/3 + 2/3·cos(2π/n), so gap = 2/3·(1 − cos(2π/n)) for n ≥ 5
    /// (for smaller n the most negative eigenvalue can dominate).
    @Test(arguments: [5, 6, 7, 9, 12, 20, 33, 50, 100])
    func ringMatchesClosedForm(_ n: Int) throws {
        let gap = try #require(GraphFacts(try Build.topology(.ring, peers: n)).spectralGap)
        let expected = (2.0 / 3.0) * (1 - cos(2 * Double.pi / Double(n)))
        #expect(abs(gap - expected) < 1e-9, "n \(n): gap \(gap), expected \(expected)")
    }

    /// The hand-written eigensolver agrees with cyclic Jacobi on random symmetric matrices.
    @Test func eigenvaluesAgreeWithJacobi() throws {
        var rng = SplitMix64(seed: 42)
        for n in [1, 2, 3, 4, 7, 10, 25] {
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n {
                for j in 0...i {
                    let x = rng.unit() * 2 - 1
                    a[i * n + j] = x
                    a[j * n + i] = x
                }
            }
            let ours = TopologyMath.symmetricEigenvalues(a, n: n).sorted()
            let reference = jacobi(a, n: n).sorted()
            for (x, y) in zip(ours, reference) { #expect(abs(x - y) < 1e-9, "n \(n): \(ours) vs \(reference)") }
        }
    }

    /// Cyclic Jacobi rotations, the slow reference.
    func jacobi(_ matrix: [Double], n: Int) -> [Double] {
        var a = matrix
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-22 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                }
            }
        }
        return (0..<n).map { a[$0 * n + $0] }
    }

    @Test func fullGraphMixesInOneRound() throws {
        let facts = GraphFacts(try Build.topology(.full, peers: 10))
        #expect(abs((facts.spectralGap ?? 0) - 1) < 1e-9)
    }
}

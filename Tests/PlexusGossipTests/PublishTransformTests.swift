import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusSimulator
import Testing

/// The publish seam: what a ``PublishTransform`` leaves is exactly what the envelope carries, and
/// an instance without one (or with one that changes nothing) runs the same bits as before.
@Suite struct PublishTransformTests {
    struct Negate: PublishTransform {
        func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
            for i in update.indices { update[i] = -update[i] }
        }
    }

    /// Leaves the update alone but records that it was called (and with what round).
    struct Identity: PublishTransform {
        func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {}
    }

    /// Records the context it saw, through its own state (read back from the instance's sends).
    struct ContextCheck: PublishTransform {
        var expectedNeighbours: [PeerID]
        func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
            // Publishes a marker when the context is what the seam promises, zeros otherwise.
            let ok = context.neighbours.map(\.peer) == expectedNeighbours
                && zip(context.model, context.publicCopy).enumerated().allSatisfy { i, pair in (pair.0 - pair.1).bitPattern == update[i].bitPattern }
            for i in update.indices { update[i] = ok ? 7 : 0 }
        }
    }

    /// Peer 1 of a two-peer network, given peer 0's keyframe and started: round 1's envelope.
    static func firstRound(_ transform: (any PublishTransform)?) throws -> (model: [Float], base: [Float], delta: [Float], samples: UInt64, publicCopy: [Float]) {
        let peers = makePeers(graph: Graphs.full(2), sizes: [10, 30], dimension: 16, rounds: 3, learningRate: 0.3)
        var a = GossipInstance(settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero })
        var b = GossipInstance(
            settings: peers[1].settings, key: peers[1].key, learner: peers[1].learner, initialParameters: peers[1].initialParameters,
            clock: { .zero }, publishTransform: transform
        )
        for case .send(_, let bytes) in a.sessionOpened(with: peerID(1)) { _ = b.receive(bytes, from: peerID(0)) }
        let base = b.publicCopy
        let sent = b.start().compactMap { if case .send(_, let bytes) = $0 { bytes } else { nil } }
        #expect(sent.count == 1, "one envelope to the one neighbour")
        guard case .envelope(let envelopeBytes) = try GossipMessage(decoding: sent[0]) else {
            Issue.record("round 1 sent no envelope")
            return ([], [], [], 0, [])
        }
        let verifier = EnvelopeVerifier(planHash: testPlanHash, parameterCount: 16, codec: .lossless)
        let envelope = try verifier.verify(envelopeBytes, publicKey: { $0 == peerID(1) ? peers[1].key.publicKey : nil })
        #expect(envelope.header.kind == .delta && envelope.header.round == 1)
        return (b.parameters, base, try DeltaDecoder().decode(envelope.delta), envelope.header.sampleCount, b.publicCopy)
    }

    @Test func theEnvelopeCarriesTheTransformedUpdate() throws {
        let honest = try Self.firstRound(nil)
        let flipped = try Self.firstRound(Negate())
        // Same training, same base: the transform changes only what is published.
        #expect(honest.model.map(\.bitPattern) == flipped.model.map(\.bitPattern))
        #expect(honest.base.map(\.bitPattern) == flipped.base.map(\.bitPattern))
        #expect(honest.delta.contains { $0 != 0 }, "the honest round-1 update is not empty")
        // Lossless: the delta is −(x − x̂) to the bit, and x̂ moved by exactly what was sent.
        #expect(flipped.delta.map(\.bitPattern) == honest.delta.map { (-$0).bitPattern })
        #expect(flipped.publicCopy.map(\.bitPattern) == zip(flipped.base, flipped.delta).map { ($0 + $1).bitPattern })
        #expect(flipped.samples == honest.samples)
    }

    @Test func theTransformSeesTheModelThePublicCopyAndTheNeighbours() throws {
        let checked = try Self.firstRound(ContextCheck(expectedNeighbours: [peerID(0)]))
        #expect(checked.delta == [Float](repeating: 7, count: 16), "the context was not what the seam documents")
    }

    /// A transform that changes nothing leaves a whole simulated run bit for bit as it was.
    @Test func anIdentityTransformChangesNoBit() {
        func run(_ transform: (any PublishTransform)?) -> [PeerID: [Float]] {
            var peers = makePeers(graph: Graphs.ring(5), sizes: [10, 20, 30, 40, 50], dimension: 8, rounds: 20, learningRate: 0.2)
            peers[2].publishTransform = transform
            return Simulator(peers: peers, seed: 7).run().parameters
        }
        let plain = run(nil)
        let identity = run(Identity())
        let flipped = run(Negate())
        #expect(plain.mapValues { $0.map(\.bitPattern) } == identity.mapValues { $0.map(\.bitPattern) })
        #expect(plain[peerID(0)]!.map(\.bitPattern) != flipped[peerID(0)]!.map(\.bitPattern), "an attacker two hops away changes peer 0")
    }
}

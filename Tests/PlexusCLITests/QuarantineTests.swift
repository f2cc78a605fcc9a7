import Foundation
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusLog
import PlexusTopology
import Testing

/// The honest nodes' public copies as hospital-c receives them (it is their neighbour: they send
/// it their envelopes like to anyone), so that the hostile peer can answer each round with a
/// crafted model at the right time — or an honest-looking one.
final class NeighbourCopies {
    let verifier: EnvelopeVerifier
    let keys: [PeerID: Ed25519.PublicKey]
    private(set) var copies: [PeerID: [Float]] = [:]
    private(set) var versions: [PeerID: UInt64] = [:]
    private(set) var rounds: [PeerID: Int] = [:]

    init(topology: Topology, parameterCount: Int) {
        verifier = EnvelopeVerifier(planHash: topology.planHash, parameterCount: parameterCount)
        keys = Dictionary(uniqueKeysWithValues: topology.peers.map { ($0.id, $0.publicKey) })
    }

    func ingest(_ messages: [(from: PeerID, bytes: [UInt8])]) {
        for (from, bytes) in messages {
            guard case .envelope(let body)? = try? GossipMessage(decoding: bytes),
                let envelope = try? verifier.verify(body, publicKey: { self.keys[$0] }), envelope.header.origin == from,
                let values = try? DeltaDecoder().decode(envelope.delta)
            else { continue }
            let h = envelope.header
            switch h.kind {
            case .keyframe:
                copies[from] = values
            case .delta:
                guard var copy = copies[from], h.baseSequence == versions[from] else { continue }
                for i in copy.indices { copy[i] += values[i] }
                copies[from] = copy
            }
            versions[from] = h.sequence
            rounds[from] = max(rounds[from] ?? 0, Int(h.round))
        }
    }

    /// The round every one of `peers` has reached, with the mean of their copies.
    func common(_ peers: [PeerID]) -> (round: Int, mean: [Float])? {
        let held = peers.compactMap { copies[$0] }
        guard held.count == peers.count, let first = held.first else { return nil }
        let round = peers.compactMap { rounds[$0] }.min() ?? 0
        var mean = [Float](repeating: 0, count: first.count)
        for copy in held { for i in mean.indices { mean[i] += copy[i] / Float(held.count) } }
        return (round, mean)
    }
}

extension HostilePeerTests {
    /// Answers every round of the honest nodes (as soon as both sent theirs) with a keyframe of
    /// `model(round, mean of their copies)`, signed by hospital-c's key, until cancelled.
    static func answerEveryRound(_ peer: HostilePeer, _ honest: [PeerID], topology: Topology, model: (Int, [Float]) -> [Float]) async {
        let copies = NeighbourCopies(topology: topology, parameterCount: peer.parameterCount)
        var sequence: UInt64 = 1
        var answered = 0
        while !_Concurrency.Task.isCancelled {
            copies.ingest(peer.takeEnvelopes())
            if let (round, mean) = copies.common(honest), round > answered {
                let message = peer.envelope(.keyframe, sequence: sequence, round: UInt64(round), samples: peer.declaredSamples, peer.lossless(model(round, mean)))
                for h in honest { await peer.send(message, to: h) }
                sequence += 1
                answered = round
            }
            try? await _Concurrency.Task.sleep(for: .milliseconds(5))
        }
    }

    /// The honest nodes' `quarantined` / `released` events about hospital-c, by the round their
    /// log line carries (the round the node is in when it logs: the one after the round whose end
    /// quarantined or released).
    func scoringEvents(_ outcome: Outcome, _ net: Network) -> (quarantined: [[Int]], released: [[Int]]) {
        let c = net.hostile.me.rawValue
        let q = outcome.logs.map { $0.events.filter { $0.event == "quarantined" && $0.neighbour == c }.map(\.round) }
        let r = outcome.logs.map { $0.events.filter { $0.event == "released" && $0.neighbour == c }.map(\.round) }
        return (q, r)
    }

    /// The evidence files one honest node kept about hospital-c; each must verify as an envelope
    /// signed by hospital-c's key.
    func evidence(_ net: Network, kept by: PeerID) throws -> [String] {
        let directory = "\(net.directory)/state/\(by).evidence/\(net.hostile.me)"
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".envelope") }.sorted()
        let verifier = EnvelopeVerifier(planHash: net.topology.planHash, parameterCount: net.hostile.parameterCount)
        let key = net.hostile.key.publicKey
        for file in files {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)))
            let envelope = try verifier.verify(bytes, publicKey: { $0 == net.hostile.me ? key : nil })
            #expect(envelope.header.origin == net.hostile.me, "\(file)")
            let mode = (try FileManager.default.attributesOfItem(atPath: directory + "/" + file)[.posixPermissions] as? Int) ?? 0
            #expect(mode & 0o077 == 0, "\(file): mode \(String(mode, radix: 8))")
        }
        return files
    }

    /// 5a. A poisoned model for the whole run: hospital-c answers every round with a validly
    /// signed keyframe — zeros first, then a large finite model (its neighbours' mean plus 100
    /// per round in every coordinate). Both honest nodes quarantine it within 10 rounds (here: in the
    /// first round its copy is measured), never release it, keep at most 8 evidence files that
    /// verify as signed by hospital-c, and end within 0.02 of the silent run.
    @Test func aPoisonedModelIsQuarantinedWithEvidence() async throws {
        let net = try network("poisoned-model")
        let topology = net.topology
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            for h in honest { await peer.send(peer.envelope(.keyframe, sequence: 1, round: 1, samples: peer.declaredSamples, peer.lossless(zeros)), to: h) }
            await Self.answerEveryRound(peer, honest, topology: topology) { round, mean in mean.map { $0 + 100 * Float(round) } }
        }
        try await expectSound(outcome, "a poisoned model every round")
        let events = scoringEvents(outcome, net)
        print("hostile-peer poisoned model: quarantined in rounds \(events.quarantined), released in \(events.released)")
        #expect(events.quarantined.count == 2)
        for rounds in events.quarantined { #expect(rounds.count == 1 && rounds[0] <= 10, "\(events.quarantined)") }
        for rounds in events.released { #expect(rounds.isEmpty, "\(events.released)") }
        // The operator's warning names the neighbour and why.
        for output in outcome.output {
            let line = output.split(separator: "\n").first { $0.contains("Quarantined a neighbour") }
            #expect(line?.contains("hospital-c") == true && line?.contains("distance") == true, "\(output.suffix(2000))")
        }
        for id in net.honest {
            let files = try evidence(net, kept: id)
            #expect(!files.isEmpty && files.count <= 8, "\(id): \(files)")
        }
    }

    /// 5b. A transient fault: hospital-c mirrors its neighbours (the mean of their copies) except
    /// in rounds 4–6, where it sends that mean times 30. Both honest nodes quarantine it within
    /// those rounds and release it after 10 good rounds; their accuracy matches the silent run's.
    @Test func aTransientFaultIsQuarantinedAndReleased() async throws {
        let net = try network("transient-fault")
        let topology = net.topology
        let outcome = try await run(net) { peer, honest in
            await Self.answerEveryRound(peer, honest, topology: topology) { round, mean in
                (4...6).contains(round) ? mean.map { $0 * 30 } : mean
            }
        }
        try await expectSound(outcome, "a transient fault of three rounds")
        let events = scoringEvents(outcome, net)
        print("hostile-peer transient fault: quarantined in rounds \(events.quarantined), released in \(events.released)")
        #expect(events.quarantined.count == 2)
        for (q, r) in zip(events.quarantined, events.released) {
            #expect(q.count == 1 && (4...7).contains(q.first ?? 0), "quarantined in \(q)")
            #expect(r.count == 1 && (r.first ?? 0) >= 16 && (r.first ?? 0) <= 30, "released in \(r)")
        }
        for id in net.honest { #expect(!(try evidence(net, kept: id)).isEmpty, "\(id)") }
    }
}

import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusSimulator
import Testing

@Suite struct RobustnessTests {
    /// Lost, duplicated and reordered messages never corrupt a copy: wherever a peer holds the
    /// same version of a neighbour's public copy as the neighbour itself, the bits are equal.
    @Test(arguments: [CodecSpec.lossless, .int8(chunk: 8), .topK(fraction: 0.3, values: .float16)])
    func lossyNetworkNeverCorruptsACopy(codec: CodecSpec) throws {
        let graph = Graphs.torus(3)
        let peers = makePeers(graph: graph, sizes: [100, 50, 20], dimension: 40, rounds: 40, learningRate: 0.1, codec: codec, consensusStep: 0.5)
        let sim = Simulator(peers: peers, seed: 5)
        sim.links.loss = 0.15
        sim.links.duplication = 0.1
        sim.links.jitter = .milliseconds(30)
        var rejected: [Reason: Int] = [:]
        let outcome = sim.run(event: { _, event, _ in
            if case .rejected(_, let reason, _) = event { rejected[reason, default: 0] += 1 }
        })
        #expect(outcome.finished)
        #expect(outcome.messagesLost > 0)
        var compared = 0
        for i in graph.indices {
            let instance = sim.instance(peerID(i))!
            for j in graph[i] {
                let neighbour = sim.instance(peerID(j))!
                let state = instance.neighbourStates[peerID(j)]!
                guard state.version == neighbour.version else { continue }
                compared += 1
                #expect(state.copy?.map(\.bitPattern) == neighbour.publicCopy.map(\.bitPattern), "copy of \(j) at \(i)")
            }
        }
        #expect(compared >= graph.count, "most copies should be current after the final deliveries")
        // Losses show up as gaps (then keyframes), duplicates as replays — counted, never applied;
        // a duplicated keyframe request gets no second answer in the same round (keyframeBudget).
        #expect(rejected[.gap, default: 0] > 0)
        #expect(rejected[.replay, default: 0] > 0)
        #expect(Set(rejected.keys).isSubset(of: [.gap, .replay, .keyframeBudget]))
    }

    /// Invalid messages are dropped with a reason and counted; the round goes on.
    @Test func invalidMessagesAreDroppedWithTheirReason() throws {
        let peers = makePeers(graph: Graphs.full(2), sizes: [10, 10], dimension: 4, rounds: 3, learningRate: 0.1)
        var a = GossipInstance(
            settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner,
            initialParameters: peers[0].initialParameters, clock: { .zero }
        )
        let b = peerID(1)
        let bKey = peers[1].key
        _ = a.start()
        _ = a.deadlinePassed(round: 0)  // b is silent at start: round 1 begins at the deadline
        #expect(a.round == 1)
        func envelope(
            sequence: UInt64, kind: DeltaEnvelope.Kind = .keyframe, base: UInt64 = 0, round: UInt64 = 1,
            values: [Float] = [1, 2, 3, 4], plan: [UInt8] = testPlanHash, key: Ed25519.PrivateKey? = nil, origin: PeerID? = nil
        ) -> [UInt8] {
            let header = DeltaEnvelope.Header(
                kind: kind, planHash: plan, origin: origin ?? b, sequence: sequence, round: round, baseSequence: base, sampleCount: 10
            )
            let delta = try! DeltaEncoder(codec: .lossless).encode(values)
            return GossipMessage.envelope(DeltaEnvelope(header: header, delta: delta).sealed(by: key ?? bKey)).encoded()
        }
        func reasons(_ directives: [GossipDirective]) -> [Reason] {
            directives.compactMap { if case .event(.rejected(_, let reason, _)) = $0 { reason } else { nil } }
        }
        #expect(reasons(a.receive(envelope(sequence: 1, key: Ed25519.PrivateKey()), from: b)) == [.badSignature])
        #expect(reasons(a.receive(envelope(sequence: 1, plan: BLAKE2b.hash256([9])), from: b)) == [.planMismatch])
        #expect(reasons(a.receive(envelope(sequence: 1, values: [1, 2, 3]), from: b)) == [.wrongParameterCount])
        #expect(reasons(a.receive(envelope(sequence: 1, origin: PeerID("mallory")!), from: b)) == [.unknownOrigin])
        #expect(reasons(a.receive(envelope(sequence: 1), from: PeerID("mallory")!)) == [.unknownPeer])
        #expect(reasons(a.receive([7, 1, 2], from: b)) == [.badMessage])
        // A NaN payload, validly signed: built by hand, since the encoder refuses NaN.
        var raw = [UInt8](repeating: 0, count: 16)
        raw[2 * 4 + 1] = 0xC0
        raw[3 * 4 + 1] = 0x7F
        let nanDelta = EncodedDelta(codec: .lossless, parameterCount: 4, rawLength: 16, payload: ZstdOneShot.compress(raw))
        let nanHeader = DeltaEnvelope.Header(kind: .keyframe, planHash: testPlanHash, origin: b, sequence: 1, round: 1, baseSequence: 0, sampleCount: 10)
        #expect(reasons(a.receive(GossipMessage.envelope(DeltaEnvelope(header: nanHeader, delta: nanDelta).sealed(by: bKey)).encoded(), from: b)) == [.nonFinite])
        #expect(a.round == 1, "nothing rejected moved the round")
        // A good keyframe, then its replay.
        let good = envelope(sequence: 1)
        let accepted = a.receive(good, from: b)
        #expect(reasons(accepted).isEmpty)
        #expect(accepted.contains { if case .roundCompleted = $0 { true } else { false } }, "b's round-1 copy completes round 1")
        #expect(reasons(a.receive(good, from: b)) == [.replay])
        // A delta that skips a version: dropped, and a keyframe is requested.
        let gap = a.receive(envelope(sequence: 5, kind: .delta, base: 4, round: 2), from: b)
        #expect(reasons(gap) == [.gap])
        #expect(gap.contains { if case .send(let to, let bytes) = $0 { to == b && bytes.first == 2 } else { false } })
        #expect(a.neighbourStates[b]!.copy == [1, 2, 3, 4])
    }

    /// A peer answers a keyframe request with its whole public copy, which the requester applies.
    @Test func keyframeRequestIsAnsweredWithTheWholeCopy() throws {
        let peers = makePeers(graph: Graphs.full(2), sizes: [10, 10], dimension: 6, rounds: 3, learningRate: 0.1)
        var a = GossipInstance(settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero })
        var b = GossipInstance(settings: peers[1].settings, key: peers[1].key, learner: peers[1].learner, initialParameters: peers[1].initialParameters, clock: { .zero })
        _ = a.start()
        _ = b.start()  // b's round-1 delta is "lost": a never saw b's keyframe either
        let answer = b.receive(GossipMessage.keyframeRequest(heldVersion: 0).encoded(), from: peerID(0))
        let keyframe = answer.compactMap { if case .send(_, let bytes) = $0 { bytes } else { nil } }
        #expect(keyframe.count == 1)
        _ = a.receive(keyframe[0], from: peerID(1))
        #expect(a.neighbourStates[peerID(1)]!.copy == b.publicCopy)
        #expect(a.neighbourStates[peerID(1)]!.version == b.version)
    }

    /// Asynchronous mode: no barrier, bounded staleness; the network still reaches consensus.
    @Test func asynchronousModeConverges() throws {
        let sizes = [311, 196, 206, 162, 162, 51]
        let peers = makePeers(graph: Graphs.tcga, sizes: sizes, dimension: 8, rounds: 400, learningRate: 0, synchrony: .asynchronous)
        let total = Double(sizes.reduce(0, +))
        let expected = (0..<8).map { k in peers.indices.reduce(0.0) { $0 + Double(sizes[$1]) * Double(peers[$1].initialParameters[k]) } / total }
        let sim = Simulator(peers: peers, seed: 9)
        sim.links.jitter = .milliseconds(40)
        let outcome = sim.run()
        #expect(outcome.finished)
        // Peers run at different speeds and mix copies of different ages, so the weighted mean
        // is only approximately preserved (push-sum would fix it exactly; see README).
        let worst = peers.map { p in zip(outcome.parameters[p.settings.me]!, expected).map { abs(Double($0) - $1) }.max()! }.max()!
        #expect(worst < 0.2, "async consensus error \(worst)")
        let spread = peers.map { p in zip(outcome.parameters[p.settings.me]!, outcome.parameters[peers[0].settings.me]!).map { abs($0 - $1) }.max()! }.max()!
        #expect(spread < 1e-3, "peers agree: spread \(spread)")
    }

    /// A dead neighbour: rounds complete at their deadline with its last copy, and say so.
    @Test func deadlineCompletesARoundWithoutASilentNeighbour() throws {
        let peers = makePeers(graph: Graphs.ring(4), sizes: [10], dimension: 3, rounds: 5, learningRate: 0.1)
        let sim = Simulator(peers: peers, seed: 4)
        sim.partitions = [Partition(start: .zero, end: .seconds(1000), group: [peerID(3)])]
        var missed: [Int: [PeerID]] = [:]
        let outcome = sim.run(event: { peer, event, _ in
            if case .deadlineMissed(let round, let missing) = event, peer == peerID(0) { missed[round] = missing }
        })
        #expect(outcome.finished)
        #expect(outcome.snapshotsPersisted == 4 * (5 + 1), "one persist per round and one at the end, per peer")
        #expect(outcome.disconnects.isEmpty)
        #expect(missed.count == 5)
        #expect(missed[5] == [peerID(3)])
        #expect(outcome.messagesCutByPartition > 0)
    }

    /// A restart restores the snapshot: the version jumps past anything signed, the round goes on,
    /// and a peer restarted after its last round just reports it finished.
    @Test func restoreResumesAndNeverReusesAVersion() throws {
        let peers = makePeers(graph: Graphs.full(3), sizes: [10, 20, 30], dimension: 5, rounds: 6, learningRate: 0.1)
        let sim = Simulator(peers: peers, seed: 8)
        _ = sim.run()
        let done = sim.instance(peerID(0))!
        #expect(done.isFinished)
        var restarted = GossipInstance(
            settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero }
        )
        try restarted.restore(done.snapshot())
        #expect(restarted.version == done.version + 2)
        #expect(restarted.parameters == done.parameters)
        #expect(restarted.neighbourStates[peerID(1)]?.copy == done.neighbourStates[peerID(1)]?.copy)
        let directives = restarted.resume()
        #expect(directives.contains { if case .finished = $0 { true } else { false } })
        // Mid-run: resuming waits for the round in progress (its deadline), it does not restart at round 1.
        var midway = done.snapshot()
        midway.round = 3
        for peer in midway.neighbours.keys { midway.neighbours[peer]!.round = 2 }  // their round-3 deltas are not in yet
        var resumed = GossipInstance(
            settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero }
        )
        try resumed.restore(midway)
        let next = resumed.resume()
        #expect(resumed.round == 3)
        #expect(next.contains { if case .scheduleDeadline(3, _) = $0 { true } else { false } })
    }
}

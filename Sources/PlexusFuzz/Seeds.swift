import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusLearning
import PlexusLog
import PlexusNode
import PlexusTransport

/// Seed inputs made by the real encoders, in each harness's input layout (`--write-seeds DIR`
/// writes them as DIR/<target>/seed-<n>; the committed corpora under Tests/Fuzz/Corpus/ start from them).
enum Seeds {
    static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    static func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
    static func le32f(_ v: Float) -> [UInt8] { le32(Int(v.bitPattern)) }

    /// The fuzzWireCodec bytes of `codec`.
    static func codecBytes(_ codec: WireCodec) -> [UInt8] {
        switch codec {
        case .lossless: [0]
        case .float16: [1]
        case .bfloat16: [2]
        case .int8(let chunk): [3] + le32(chunk)
        case .topK(let k, let values): [4, values.rawValue] + le32(k)
        }
    }

    static let specs: [CodecSpec] = [.lossless, .float16, .bfloat16, .int8(chunk: 3), .topK(fraction: 0.5, values: .float32), .topK(fraction: 0.25, values: .int8)]
    static let values: [Float] = [0.5, -1.25, 3, 0, 1e-3, -7, 2.5, 100]

    static func all() -> [String: [[UInt8]]] {
        var seeds: [String: [[UInt8]]] = [:]
        let key = FuzzKeys.key(1)
        let origin = PeerID("p001")!
        for spec in specs {
            let delta = try! DeltaEncoder(codec: spec).encode(values)
            seeds["delta", default: []].append([1] + codecBytes(delta.codec) + le16(values.count) + le32(delta.rawLength) + delta.payload)
            let header = DeltaEnvelope.Header(
                kind: .keyframe, planHash: FuzzKeys.planHash, origin: origin, sequence: 1, round: 0, baseSequence: 0, sampleCount: 10, neighbourhoodSampleCount: 20
            )
            let sealed = values.withUnsafeBufferPointer { try! DeltaEncoder(codec: spec).seal($0, header: header, key: key) }
            seeds["envelope", default: []].append([0] + le16(values.count) + [0] + sealed)
        }
        // gossip: keyframes from both neighbours, start, deltas for round 1, a request, ticks.
        func envelopeOp(_ who: UInt8, kind: UInt8, round: UInt8, floats: [Float]) -> [UInt8] {
            [who << 7, kind, 0, 0, round, 0, 0, 10, 0, 20, 0, 0] + floats.flatMap(le32f)
        }
        seeds["gossip"] = [
            [0] + envelopeOp(0, kind: 1, round: 0, floats: [1, 2, 3, 4]) + envelopeOp(1, kind: 1, round: 0, floats: [0, 1, 0, 1]) + [0x86]
                + envelopeOp(0, kind: 0, round: 1, floats: [0.5, 0, 0, 0]) + envelopeOp(1, kind: 0, round: 1, floats: [0, 0, 0.25, 0]) + [4, 5, 1],
            [1] + envelopeOp(0, kind: 1, round: 0, floats: [1, 2, 3, 4]) + [0x86, 3, 1, 0x05, 1, 4],
            [0x06] + [0x86] + envelopeOp(0, kind: 1, round: 1, floats: [1, 2, 3, 4]) + [0x82, 9, 0, 1, 0x50, 0x4C, 0x58, 0x44, 1, 1, 0, 0, 0],
        ]
        // handshake: the honest run (deliver, unaltered, in turn), then records both ways.
        seeds["handshake"] = [
            [0, 0x00, 7, 0x01, 7, 0x00, 7, 0x01, 7, 0x10, 2, 3, 0, 1, 2, 3, 7, 0x11, 2, 0, 0, 7],
            [0, 0x00, 7, 0x01, 0, 5, 1, 0x00, 7],
            [2, 0x00, 7, 0x01, 7],
        ]
        seeds["handshake-message"] = honestHandshakeFrames()
        seeds["framing"] = [
            le16(64) + [2] + le16(3) + le16(9) + le32(3) + [1, 2, 3] + le32(0) + le32(5) + [9, 8, 7, 6, 5],
            le16(4) + [0] + le32(5) + [1, 2, 3, 4, 5],
        ]
        // statistics: blobs of every origin, a request, a basis, ticks.
        func blob(_ origin: UInt8, _ payload: [UInt8]) -> [UInt8] { [0, origin] + le16(payload.count) + payload + [0] }
        seeds["statistics-round"] = [
            blob(1, [1, 2]) + blob(2, [3]) + blob(3, [4, 5]) + [4, 0xE8, 3] + [3, 3, 0, 1, 2] + [0x82, 1, 2, 1, 1, 0, 1, 1, 0, 1, 2, 0],
            blob(1, [0xFF]) + [5, 6, 0, 0, 7, 0, 0] + [4, 0xFF, 0xFF],
        ]
        let summary = SiteSummary(features: ["age", "size"], targets: ["time", "event"], statistics: {
            var s = FeatureStatistics(dimension: 2)
            s.count = 10
            s.mean = [50.5, 2.25]
            s.sumOfSquaredDeviations = [900, 4]
            return s
        }())
        seeds["site-summary"] = [summary.encoded()]
        let completed = CompletedStatistics(
            basis: [origin: summary.encoded(), PeerID("p002")!: [1, 2, 3]],
            messages: [origin: StatisticsRound.seal(payload: summary.encoded(), origin: origin, planHash: FuzzKeys.planHash, key: key)]
        )
        let authenticated = completed.encoded(planHash: FuzzKeys.planHash, key: FuzzKeys.stateKey)
        let checksummed = completed.encoded(planHash: FuzzKeys.planHash)
        seeds["completed-statistics"] = [[0] + authenticated.dropLast(32), [1] + checksummed.dropLast(32), [2] + authenticated]
        let snapshot = GossipSnapshot(
            round: 3, version: 7, parameters: [1, 2, 3, 4], publicCopy: [1, 2, 3, 3.5],
            neighbours: [
                origin: .init(copy: [0, 1, 0, 1], version: 5, round: 2, sampleCount: 10, neighbourhoodSampleCount: 30),
                PeerID("p002")!: .init(copy: nil, version: 0, round: 0, sampleCount: nil, neighbourhoodSampleCount: nil),
            ],
            replayWindow: ReplayWindow(lastAccepted: [origin: 5])
        )
        let state = StateFile.encode(snapshot, planHash: FuzzKeys.planHash, key: FuzzKeys.stateKey)
        seeds["state-file"] = [[0] + state.dropLast(32), [2] + state]
        seeds["csv"] = [
            Array("age,size,time,event\n50,2.5,300,1\n61,\"1,5\",120,0\n".utf8),
            Array("a;b\r\n\"x\"\"y\";2\r\n".utf8),
        ]
        seeds["key-file"] = [KeyFile.encodeLine(key).withUnsafeBytes { Array($0) }]
        let layout = SafetensorsFuzz.layout
        seeds["safetensors"] = [
            Safetensors.encode(Array(values.prefix(layout.count)), layout: layout, metadata: ["plan": "fuzz", "round": "3"]),
            Safetensors.encode(Array(values.prefix(layout.count)), layout: layout),
            Self.savedModelSeed(deepsurv: false),
            Self.savedModelSeed(deepsurv: true),
        ]
        // A file as the writer writes it (every line kind), and one in the previous writer's
        // key order with a torn last line.
        let me = PeerID("p000")!, other = PeerID("p001")!
        let round = RoundRecord(
            time: 1.5, virtualTime: 0.5, peer: me.rawValue, round: 3, loss: 0.25,
            validation: ["auc": 0.75, "f1": .nan], test: ["accuracy": 0.5],
            consensusDistance: .nan, relativeConsensusDistance: 0.1, bytesSent: 10, bytesReceived: 20, compressionRatio: 1.25,
            accepted: 2, rejected: [Reason.truncated.rawValue: 1], staleness: [other.rawValue: 1],
            seconds: PhaseSeconds(train: 0.01, encode: 0.001, apply: 0))
        let records: [LogRecord] = [
            .header(ConvergenceLog.header(peer: me, network: "fuzz", planHash: "00", model: "logistic", codec: "lossless", parameters: 4, samples: 10)),
            .round(round),
            ConvergenceLog.event(.rejected(from: other, reason: .truncated, message: "m"), peer: me, round: 3, time: 2),
            ConvergenceLog.event(.keyframeSent(to: other, version: 7), peer: me, round: 3, time: 2),
            ConvergenceLog.event(.keyframeRequested(from: other, heldVersion: 6), peer: me, round: 3, time: 2),
            ConvergenceLog.event(.deadlineMissed(round: 2, missing: [other]), peer: me, round: 3, time: 2),
            ConvergenceLog.event(.awaitingFirstSession(other), peer: me, round: 3, time: 2),
            ConvergenceLog.session("session_closed", peer: me, other: other.rawValue, reason: "eof", round: 3, time: 2),
        ]
        seeds["convergence-log"] = [
            records.flatMap { ((try? ConvergenceLog.encodeLine($0)) ?? []) + [10] },
            Array(#"{"schema":"plexus.convergence","version":1,"peer":"p000","network":"t","plan_hash":"00","model":"cox","codec":"lossless","parameters":10,"samples":100}"#.utf8) + [10]
                + Array(#"{"type":"round","time":1001,"peer":"p000","round":1,"loss":null,"test":{"c_index":0.6,"auc":null},"consensus_distance":1,"consensus_distance_relative":0.1,"bytes_sent":1001,"bytes_received":2000,"compression_ratio":1.2,"accepted":2,"rejected":{"gap":0},"staleness":{"p001":0},"seconds":{"train":0.01,"encode":0.001,"apply":0.001}}"#.utf8) + [10]
                + Array(#"{"type":"event","time":1030,"peer":"p000","round":3,"event":"rejected","from":"p001","reason":"gap","message":"x"}"#.utf8) + [10]
                + Array(#"{"type":"round","time":1099,"peer":"p000","rou"#.utf8),
        ]
        return seeds
    }

    /// The frames of one honest handshake (hello, reply, finish), and a refusal.
    static func honestHandshakeFrames() -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var responder = HandshakeStateMachine(
            role: .responder, context: HandshakeContext(me: HandshakeFuzz.responderID, key: HandshakeFuzz.keys[0], planHash: FuzzKeys.planHash, peers: HandshakeFuzz.peers),
            ephemeral: HandshakeFuzz.ephemeral(0)
        )
        var initiator = HandshakeStateMachine(
            role: .initiator(expecting: HandshakeFuzz.responderID),
            context: HandshakeContext(me: HandshakeFuzz.initiatorID, key: HandshakeFuzz.keys[1], planHash: FuzzKeys.planHash, peers: HandshakeFuzz.peers),
            ephemeral: HandshakeFuzz.ephemeral(1)
        )
        var toResponder: [[UInt8]] = []
        var toInitiator: [[UInt8]] = []
        func sent(_ actions: [HandshakeStateMachine.Action]) -> [[UInt8]] {
            actions.compactMap { if case .send(let f) = $0 { f } else { nil } }
        }
        toResponder = sent(initiator.start())
        for _ in 0..<3 {
            for f in toResponder { frames.append(f); toInitiator += sent(responder.receive(f)) }
            toResponder = []
            for f in toInitiator { frames.append(f); toResponder += sent(initiator.receive(f)) }
            toInitiator = []
        }
        // A refusal: a hello under another plan.
        var stranger = HandshakeStateMachine(
            role: .initiator(expecting: HandshakeFuzz.responderID),
            context: HandshakeContext(me: HandshakeFuzz.initiatorID, key: HandshakeFuzz.keys[1], planHash: BLAKE2b.hash256([1]), peers: HandshakeFuzz.peers),
            ephemeral: HandshakeFuzz.ephemeral(2)
        )
        var r2 = HandshakeStateMachine(
            role: .responder, context: HandshakeContext(me: HandshakeFuzz.responderID, key: HandshakeFuzz.keys[0], planHash: FuzzKeys.planHash, peers: HandshakeFuzz.peers),
            ephemeral: HandshakeFuzz.ephemeral(0)
        )
        for f in sent(stranger.start()) { frames += sent(r2.receive(f)) }
        return frames
    }
}

extension Seeds {
    /// A small saved model as `plexus train --save` writes it: a logistic regression on two
    /// features, or a DeepSurv of width 3 with a three-point baseline.
    static func savedModelSeed(deepsurv: Bool) -> [UInt8] {
        var plan = Plan(model: deepsurv ? .deepsurv : .logistic, rounds: 1, learningRate: 0.1)
        plan.hidden = [3]
        if deepsurv {
            plan.time = "time"
            plan.event = "event"
        } else {
            plan.label = "y"
        }
        let model = makeModel(plan: plan, dimension: 2)
        let parameters = (0..<model.layout.count).map { Float($0 % 5) * 0.25 - 0.5 }
        let trained = TrainedModel(model: model, parameters: parameters, standardization: Standardization(mean: [1, 2], scale: [0.5, 4]))
        let saved = SavedModel(
            trained: trained, plan: plan, featureNames: ["a", "b"],
            baseline: deepsurv ? BaselineHazard(times: [1, 2, 5], cumulative: [0.1, 0.25, 0.5]) : nil, baselineScope: "pooled",
            planHash: String(repeating: "0", count: 64))
        return saved.encode()
    }
}

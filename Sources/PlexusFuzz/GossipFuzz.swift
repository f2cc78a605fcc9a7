import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip

/// A learner that stays finite by itself: whatever is non-finite later came from outside.
struct FuzzLearner: LocalLearner {
    var sampleCount = 10
    mutating func train(_ parameters: inout [Float], round: Int) -> Double {
        for i in parameters.indices { parameters[i] *= 0.5 }
        return 0
    }
}

/// The gossip instance of peer p000, driven by two hostile neighbours (p001, p002) whose real
/// keys sign whatever header fields and payload the fuzzer chooses, plus raw bytes, keyframe
/// requests, ticks, deadlines and sessions. Oracle: the instance's parameters, public copy and
/// neighbour copies stay finite, and nothing traps.
enum GossipFuzz {
    static let me = PeerID("p000")!
    static let neighbours = [PeerID("p001")!, PeerID("p002")!]
    static let keys = [FuzzKeys.key(1), FuzzKeys.key(2)]
    static let dimension = 4

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let setup = input.byte()
        let codec: CodecSpec = switch setup % 4 {
        case 0: .lossless
        case 1: .float16
        case 2: .int8(chunk: 2)
        default: .topK(fraction: 0.5, values: .int8)
        }
        var settings = GossipSettings(
            me: me, planHash: FuzzKeys.planHash, codec: codec, rounds: 3 + Int(setup >> 4),
            neighbours: [
                neighbours[0]: Neighbour(publicKey: keys[0].publicKey, weight: 1),
                neighbours[1]: Neighbour(publicKey: keys[1].publicKey, weight: 1),
            ]
        )
        if setup & 4 != 0 { settings.synchrony = .asynchronous }
        if setup & 8 != 0 { settings.maxBufferedPerNeighbour = 2 }
        var a = GossipInstance(
            settings: settings, key: FuzzKeys.key(0), learner: FuzzLearner(),
            initialParameters: [0.5, -1, 2, 0], clock: { .zero }
        )
        var sequences: [UInt64] = [0, 0]
        let encoder = DeltaEncoder(codec: codec)
        var operations = 0
        var started = false
        while !input.isAtEnd && operations < 48 {
            operations += 1
            let op = input.byte()
            let who = Int(op >> 7)
            let directives: [GossipDirective]
            switch op & 0x7 {
            case 0, 1:
                let kind: DeltaEnvelope.Kind = input.bool() ? .keyframe : .delta
                let sequenceChoice = input.byte()
                let sequence: UInt64
                if sequenceChoice < 200 { sequences[who] += 1; sequence = sequences[who] } else { sequence = input.interesting64() }
                let round = input.byte() < 220 ? UInt64(input.byte() % 8) : input.interesting64()
                let base = input.byte() < 200 ? sequence &- 1 : input.interesting64()
                let samples = input.byte() < 200 ? UInt64(input.byte()) : input.interesting64()
                let neighbourhood = input.byte() < 200 ? UInt64(input.u16()) : input.interesting64()
                let header = DeltaEnvelope.Header(
                    kind: kind, planHash: FuzzKeys.planHash, origin: neighbours[who], sequence: sequence, round: round,
                    baseSequence: base, sampleCount: samples, neighbourhoodSampleCount: neighbourhood
                )
                let delta: EncodedDelta
                switch input.byte() % 3 {
                case 0:
                    let values = (0..<dimension).map { _ in Float(bitPattern: input.u32()) }
                    guard let encoded = try? encoder.encode(values) else { continue }
                    delta = encoded
                case 1:
                    let raw = input.chunk()
                    delta = EncodedDelta(
                        codec: WireCodec(codec, count: dimension), parameterCount: dimension, rawLength: raw.count,
                        payload: ZstdOneShot.compress(raw)
                    )
                default:
                    delta = EncodedDelta(
                        codec: fuzzWireCodec(&input), parameterCount: dimension, rawLength: Int(input.u16()),
                        payload: input.chunk()
                    )
                }
                let envelope = DeltaEnvelope(header: header, delta: delta).sealed(by: keys[who])
                directives = a.receive(GossipMessage.envelope(envelope).encoded(), from: neighbours[who])
            case 2:
                directives = a.receive(input.chunk(), from: neighbours[who])
            case 3:
                directives = a.receive(GossipMessage.keyframeRequest(heldVersion: input.interesting64()).encoded(), from: neighbours[who])
            case 4:
                directives = a.tick()
            case 5:
                directives = a.deadlinePassed(round: Int(input.byte() % 8))
            case 6:
                if who == 0 || started {
                    directives = a.sessionOpened(with: neighbours[Int(input.byte() & 1)])
                } else {
                    started = true  // the shell calls start() once (a precondition)
                    directives = a.start()
                }
            default:
                directives = a.receive(input.chunk(), from: PeerID("p009")!)
            }
            check(a, directives)
        }
    }

    static func check(_ a: GossipInstance<FuzzLearner>, _ directives: [GossipDirective]) {
        let s = a.snapshot()
        fuzzCheck(allFinite(s.parameters), "parameters became non-finite")
        fuzzCheck(allFinite(s.publicCopy), "public copy became non-finite")
        fuzzCheck(s.parameters.count == dimension && s.publicCopy.count == dimension, "parameter count changed")
        for (peer, n) in s.neighbours {
            if let copy = n.copy {
                fuzzCheck(copy.count == dimension, "copy of \(peer) has the wrong count")
                fuzzCheck(allFinite(copy), "copy of \(peer) became non-finite")
            }
        }
        for directive in directives {
            if case .persist(let p) = directive {
                fuzzCheck(allFinite(p.parameters) && allFinite(p.publicCopy), "persisted a non-finite snapshot")
            }
            if case .evidence(_, let envelopes) = directive {
                fuzzCheck(!envelopes.isEmpty && envelopes.count <= a.settings.scoring.evidenceCount, "evidence of \(envelopes.count) envelopes")
            }
        }
    }
}

import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusLearning

/// The statistics round of p000 (peers p000…p003; neighbours p001, p002), fed blobs signed here
/// with the origins' real keys (statistics and bases from fuzzer-chosen fields), requests and raw
/// bytes, with ticks between. Oracle: nothing traps, and once complete the round stays complete.
enum StatisticsRoundFuzz {
    static let ids = (0..<4).map { PeerID("p00\($0)")! }
    static let keys = (0..<4).map { FuzzKeys.key(UInt8($0)) }
    static let validate: @Sendable (PeerID, [UInt8]) -> (Reason, String)? = { _, payload in
        payload.first == 0xFF ? (.implausible, "starts with 0xFF") : nil
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let settings = StatisticsRound.Settings(
            me: ids[0], planHash: FuzzKeys.planHash,
            peers: Dictionary(uniqueKeysWithValues: (0..<4).map { (ids[$0], keys[$0].publicKey) }),
            neighbours: [ids[1], ids[2]]
        )
        var round = StatisticsRound(settings: settings, key: keys[0], payload: [1, 2, 3], validate: validate)
        var now = Duration.zero
        _ = round.start(now: now)
        var wasComplete = false
        var operations = 0
        while !input.isAtEnd && operations < 32 {
            operations += 1
            let op = input.byte()
            let from = ids[1 + Int(op >> 7)]
            switch op & 7 {
            case 0, 1:
                // A statistics blob of a fuzzer-chosen origin and payload, validly signed.
                let origin = Int(input.byte() % 5)
                let payload = input.chunk()
                let originID = origin < 4 ? ids[origin] : PeerID("p009")!
                let key = origin < 4 ? keys[origin] : FuzzKeys.key(9)
                let plan = input.byte() < 240 ? FuzzKeys.planHash : BLAKE2b.hash256(input.take(2))
                _ = round.receive(StatisticsRound.seal(payload: payload, origin: originID, planHash: plan, key: key), from: from, now: now)
            case 2:
                _ = round.receive(basis(&input), from: from, now: now)
            case 3:
                // A request naming fuzzer-chosen origins.
                var message: [UInt8] = [StatisticsRound.requestType] + Array("PLXQ".utf8) + [1]
                let count = Int(input.byte() % 6)
                message += [UInt8(count), 0]
                for _ in 0..<count { message += id(ids[Int(input.byte() % 4)]) }
                if input.byte() > 240 { message += input.take(3) }
                _ = round.receive(message, from: from, now: now)
            case 4:
                now += .milliseconds(Int(input.u16()) * 10)
                _ = round.tick(now: now)
            case 5:
                _ = round.sessionOpened(with: from, now: now)
            case 6:
                _ = round.receive(input.chunk(), from: from, now: now)
            default:
                _ = round.receive(input.chunk(), from: PeerID("p009")!, now: now)
            }
            if wasComplete { fuzzCheck(round.isComplete, "a completed statistics round became incomplete") }
            wasComplete = round.isComplete
        }
    }

    static func id(_ peer: PeerID) -> [UInt8] {
        var w = ByteWriter()
        w.write(peerID: peer)
        return w.bytes
    }

    /// A basis announced by a fuzzer-chosen peer over fuzzer-chosen origins and digests (the
    /// digest of a fuzzer payload, or raw bytes), signed with the announcer's real key.
    static func basis(_ input: inout FuzzInput) -> [UInt8] {
        let announcer = Int(input.byte() % 4)
        var body: [UInt8] = Array("PLXB".utf8) + [1] + FuzzKeys.planHash + id(ids[announcer])
        let count = Int(input.byte() % 6)
        body += [UInt8(count), 0]
        for _ in 0..<count {
            body += id(ids[Int(input.byte() % 4)])
            body += input.bool() ? BLAKE2b.hash256(input.chunk()) : input.take(32)
        }
        var h = BLAKE2b()
        h.update("plexus/basis/v1")
        h.update(body)
        return [StatisticsRound.basisType] + body + keys[announcer].signature(for: h.finalize())
    }
}

/// The completed-statistics file. The fuzzer writes the body; the first byte picks whether the
/// MAC under the fixed state key (version 2), the plain checksum (version 1) or nothing is
/// appended here. What decodes survives re-encoding, in both versions.
enum CompletedStatisticsFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let file = FuzzKeys.localFile(bytes) else { return }
        let key = FuzzKeys.stateKey
        guard let decoded = try? CompletedStatistics(decoding: file, planHash: FuzzKeys.planHash, key: key) else { return }
        // Refused without the checksum path when the node has a key: only a MAC'd file decodes.
        if file.count > 4, file[4] == 1 {
            fuzzCheck((try? CompletedStatistics(decoding: file, planHash: FuzzKeys.planHash, key: key, acceptChecksum: false)) == nil, "a version-1 file decoded with acceptChecksum false")
        }
        // The format does not force one encoding (origin order, empty entries), so the oracle is
        // idempotence: the re-encoding decodes to the same value and re-encodes to itself.
        for encodingKey in [key, nil] {
            let encoded = decoded.encoded(planHash: FuzzKeys.planHash, key: encodingKey)
            let again = try? CompletedStatistics(decoding: encoded, planHash: FuzzKeys.planHash, key: key)
            fuzzCheck(again == decoded, "completed statistics do not survive re-encoding")
            fuzzCheck(again?.encoded(planHash: FuzzKeys.planHash, key: encodingKey) == encoded, "completed statistics re-encode differently")
        }
    }
}

/// The site-statistics payload: what decodes is finite and re-encodes to the same bytes.
enum SiteSummaryFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let summary = try? SiteSummary(decoding: bytes) else { return }
        let s = summary.statistics
        fuzzCheck(s.count.isFinite && s.mean.allSatisfy(\.isFinite) && s.sumOfSquaredDeviations.allSatisfy(\.isFinite), "decoded non-finite statistics")
        fuzzCheck(summary.encoded() == bytes, "site summary does not re-encode to its bytes")
    }
}

import Foundation
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusEngine
import PlexusGossip
import PlexusNode
import Testing

/// State files are authenticated by a node-local state key: a torn write, an edit, or another
/// node's file are refused with a clear error, never trusted.
@Suite struct StateFileTests {
    let planHash = [UInt8](repeating: 3, count: 32)

    func snapshot() -> GossipSnapshot {
        GossipSnapshot(
            round: 7, version: 12, parameters: [1, 2, 3], publicCopy: [1, 2, 2.5],
            neighbours: [PeerID("b")!: .init(copy: [0, 1, 2], version: 9, round: 6, sampleCount: 40, neighbourhoodSampleCount: 90)],
            replayWindow: ReplayWindow(lastAccepted: [PeerID("b")!: 9])
        )
    }

    @Test func roundTripsAndRefusesEveryAlteration() throws {
        let directory = temporaryDirectory("statefile")
        let key = try #require(try StateFile.stateKey(directory: directory, peer: PeerID("a")!, create: true))
        // The key file: 32 bytes, 0600, and read back as the same key.
        var info = stat()
        #expect(stat(directory + "/a.statekey", &info) == 0)
        #expect(info.st_size == 32)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(try StateFile.stateKey(directory: directory, peer: PeerID("a")!, create: false) == key)

        let bytes = StateFile.encode(snapshot(), planHash: planHash, key: key)
        let decoded = try StateFile.decode(bytes, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self)
        #expect(decoded == snapshot())
        for index in bytes.indices {
            var altered = bytes
            altered[index] ^= 0x01
            #expect(throws: StateFile.Error.self, "byte \(index)") {
                _ = try StateFile.decode(altered, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self)
            }
        }
        // Another node's key, or none, does not authenticate it.
        let other = SecureBytes(randomCount: 32)
        #expect(throws: StateFile.Error.self) { _ = try StateFile.decode(bytes, planHash: planHash, parameterCount: 3, key: other, as: PlanLearner.self) }
        #expect(throws: StateFile.Error.self) { _ = try StateFile.decode(bytes, planHash: planHash, parameterCount: 3, key: nil, as: PlanLearner.self) }
        // A checksum anyone can recompute is not enough: re-hashing an edited body is refused.
        var edited = Array(bytes.dropLast(32))
        edited[50] ^= 0x40
        let forged = edited + BLAKE2b.hash256(edited)
        #expect(throws: StateFile.Error.self) { _ = try StateFile.decode(forged, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self) }
        // Nor is a rewrite as version 1 (the checksum format of older builds), once the node has
        // a key: a node upgrading (no key before) still reads it.
        // (A version-1 body has no scoring section: drop its entry count, 0 here.)
        var downgraded = Array(bytes.dropLast(32).dropLast(4))
        downgraded[4] = 1
        downgraded[60] ^= 0x40
        downgraded += BLAKE2b.hash256(downgraded)
        #expect(throws: StateFile.Error.self) {
            _ = try StateFile.decode(downgraded, planHash: planHash, parameterCount: 3, key: key, acceptChecksum: false, as: PlanLearner.self)
        }
        #expect(try StateFile.decode(downgraded, planHash: planHash, parameterCount: 3, key: key, acceptChecksum: true, as: PlanLearner.self) != snapshot())
    }

    /// Version 3 keeps peer scoring's state, so a quarantine survives a restart; a version-2 file
    /// (no scoring section) is still read, with none; a quarantine flag other than 0 or 1 and an
    /// out-of-range restored value are refused.
    @Test func peerScoringSurvivesTheStateFile() throws {
        let directory = temporaryDirectory("statefile-scoring")
        let key = try #require(try StateFile.stateKey(directory: directory, peer: PeerID("a")!, create: true))
        var scored = snapshot()
        scored.scoring = [
            PeerID("b")!: .init(score: 4.88, quarantined: true, goodRounds: 2, quarantines: 3, stillRounds: 6),
            PeerID("c")!: .init(score: 0.25, quarantined: false, goodRounds: 0, quarantines: 0, stillRounds: 0),
        ]
        let bytes = StateFile.encode(scored, planHash: planHash, key: key)
        #expect(bytes[4] == 3)
        #expect(try StateFile.decode(bytes, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self) == scored)
        // Version 2: the same layout without the scoring section, authenticated the same way.
        var v2 = Array(StateFile.encode(snapshot(), planHash: planHash, key: key).dropLast(32).dropLast(4))
        v2[4] = 2
        v2 += LocalFileMAC.mac(v2, key: key)
        let old = try StateFile.decode(v2, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self)
        #expect(old == snapshot() && old.scoring.isEmpty)
        // The quarantine flag is the byte after b's score: 5 + 32 + 4 + 8 + 8 + 24 + neighbours
        // (4 + 2 + 1 + 8 + 8 + 8 + 8 + 12) + replay (4 + 2 + 8) + 4 + id (2) + score (8).
        var body = Array(bytes.dropLast(32))
        let flag = 4 + 1 + 32 + 4 + 8 + 8 + 12 + 12 + 4 + (2 + 1 + 8 + 8 + 8 + 8 + 12) + 4 + (2 + 8) + 4 + 2 + 8
        #expect(body[flag] == 1)
        body[flag] = 7
        let badFlag = body + LocalFileMAC.mac(body, key: key)
        do {
            _ = try StateFile.decode(badFlag, planHash: planHash, parameterCount: 3, key: key, as: PlanLearner.self)
            Issue.record("a quarantine flag of 7 was accepted")
        } catch {
            #expect(error.description.contains("quarantine flag of 7"), "\(error.description)")
        }
        var nan = scored
        nan.scoring[PeerID("b")!]!.score = .nan
        #expect(throws: GossipSnapshot.Error.self) { try nan.validate(parameterCount: 3, rounds: 10) }
        var huge = scored
        huge.scoring[PeerID("c")!]!.goodRounds = -1
        #expect(throws: GossipSnapshot.Error.self) { try huge.validate(parameterCount: 3, rounds: 10) }
        try scored.validate(parameterCount: 3, rounds: 10)
    }

    @Test func aStateKeyOfTheWrongSizeIsAClearError() throws {
        let directory = temporaryDirectory("statekey")
        try Data(repeating: 1, count: 31).write(to: URL(fileURLWithPath: directory + "/a.statekey"))
        do {
            _ = try StateFile.stateKey(directory: directory, peer: PeerID("a")!, create: true)
            Issue.record("a 31-byte state key was accepted")
        } catch {
            #expect(error.description.contains("a.statekey: not a 32-byte state key"))
        }
    }
}

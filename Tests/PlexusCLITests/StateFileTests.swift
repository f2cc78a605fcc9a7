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
        var downgraded = Array(bytes.dropLast(32))
        downgraded[4] = 1
        downgraded[60] ^= 0x40
        downgraded += BLAKE2b.hash256(downgraded)
        #expect(throws: StateFile.Error.self) {
            _ = try StateFile.decode(downgraded, planHash: planHash, parameterCount: 3, key: key, acceptChecksum: false, as: PlanLearner.self)
        }
        #expect(try StateFile.decode(downgraded, planHash: planHash, parameterCount: 3, key: key, acceptChecksum: true, as: PlanLearner.self) != snapshot())
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

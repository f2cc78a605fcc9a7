import NIOCore
import NIOPosix
import PlexusCore
import PlexusCrypto
import PlexusTransport
import Testing

/// Real sockets on 127.0.0.1, ephemeral ports, every wait bounded.
// The limit catches a hang, not slowness: on 2 cores the whole package's tests share a 2-thread
// cooperative pool, which the process-running CLI suites can hold for tens of seconds.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MeshTests {
    @Test func twoMeshesExchangeMessagesBothWaysInOrder() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        let b = await RunningMesh.start(Identity("b"), logs: logs)
        defer { Task { await a.stop(); await b.stop() } }
        await connectAll([a, b])
        #expect(await eventually { a.recorder.opened(b.id) == 1 && b.recorder.opened(a.id) == 1 })
        for i in 0..<50 {
            #expect(await a.mesh.sendQueued([UInt8(i), 0xA], to: b.id))
            #expect(await b.mesh.sendQueued([UInt8(i), 0xB], to: a.id))
        }
        #expect(await eventually { b.recorder.messages(from: a.id).count == 50 && a.recorder.messages(from: b.id).count == 50 })
        #expect(b.recorder.messages(from: a.id) == (0..<50).map { [UInt8($0), 0xA] })
        #expect(a.recorder.messages(from: b.id) == (0..<50).map { [UInt8($0), 0xB] })
        // Too large for the frame limit, or no session: refused locally.
        #expect(await a.mesh.sendQueued([UInt8](repeating: 0, count: 64 * 1024), to: b.id) == false)
        #expect(await a.mesh.sendQueued([1], to: PeerID("nobody")!) == false)
        let counters = await a.mesh.counters
        #expect(counters.sessionsOpened == 1)
        #expect(counters.messagesSent == 50 && counters.messagesReceived == 50)
        // No secret in any log line.
        for mesh in [a, b] {
            let seed = mesh.identity.key.rawRepresentation.withUnsafeBytes { Base64.encode($0) }
            #expect(!logs.all.contains { $0.contains(seed) })
        }
        await a.stop()
        await b.stop()
    }

    /// Each side announces its topology-file fingerprint first on the session, and again after
    /// ``PeerMesh/updateTopologyFingerprint(_:)``; a different file is reported, never refused.
    @Test func topologyFingerprintsAreAnnouncedOnOpenAndAfterAnUpdate() async throws {
        let logs = LogCapture()
        let fileA = BLAKE2b.hash256(Array("file a".utf8))
        let fileB = BLAKE2b.hash256(Array("file b".utf8))
        let a = await RunningMesh.start(Identity("a"), logs: logs) { $0.topologyFingerprint = fileA }
        let b = await RunningMesh.start(Identity("b"), logs: logs) { $0.topologyFingerprint = fileB }
        defer { Task { await a.stop(); await b.stop() } }
        await connectAll([a, b])
        func announced(_ mesh: RunningMesh, by peer: PeerID) -> [[UInt8]] {
            mesh.recorder.all.compactMap { if case .topologyAnnounced(peer, let f) = $0 { return f } else { return nil } }
        }
        #expect(await eventually { announced(a, by: b.id).last == fileB && announced(b, by: a.id).last == fileA })
        // The session carries messages although the files differ.
        #expect(await a.mesh.sendQueued([7], to: b.id))
        #expect(await eventually { b.recorder.messages(from: a.id) == [[7]] })
        // b's file changes: a hears the new fingerprint on the open session (no new handshake).
        await b.mesh.updateTopologyFingerprint(fileA)
        #expect(await eventually { announced(a, by: b.id).last == fileA })
        #expect(a.recorder.opened(b.id) == 1 && a.recorder.closed(b.id) == 0)
        await a.stop()
        await b.stop()
    }

    @Test func threeMeshesFormAFullMeshWithOneSessionPerPair() async throws {
        let logs = LogCapture()
        var meshes: [RunningMesh] = []
        for name in ["n1", "n2", "n3"] { meshes.append(await RunningMesh.start(Identity(name), logs: logs)) }
        await connectAll(meshes)
        let settled = await eventually {
            meshes.allSatisfy { mesh in meshes.allSatisfy { $0.id == mesh.id || mesh.recorder.opened($0.id) == 1 } }
        }
        #expect(settled)
        for sender in meshes {
            for receiver in meshes where receiver.id != sender.id {
                #expect(await sender.mesh.sendQueued(Array("\(sender.id)->\(receiver.id)".utf8), to: receiver.id))
            }
        }
        #expect(await eventually { meshes.allSatisfy { m in meshes.allSatisfy { $0.id == m.id || m.recorder.messages(from: $0.id).count == 1 } } })
        // Let any duplicate dials finish, then check no session flapped.
        try await Task.sleep(for: .milliseconds(300))
        for mesh in meshes {
            let counters = await mesh.mesh.counters
            #expect(counters.sessionsOpened == 2, "\(mesh.id): \(counters)")
            #expect(counters.sessionsClosed == 0, "\(mesh.id): \(counters)")
        }
        for mesh in meshes { await mesh.stop() }
    }

    /// Both sides learn of each other at the same moment and dial at once: one session survives,
    /// the one dialled by the lower id, and neither side reports a close.
    @Test(arguments: 0..<5)
    func simultaneousDialYieldsOneSession(round: Int) async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("alpha"), logs: logs)
        let b = await RunningMesh.start(Identity("beta"), logs: logs)
        async let x: Void = a.mesh.updatePeers([b.id: b.peerEntry()])
        async let y: Void = b.mesh.updatePeers([a.id: a.peerEntry()])
        _ = await (x, y)
        let opened = await eventually { a.recorder.opened(b.id) == 1 && b.recorder.opened(a.id) == 1 }
        #expect(opened, "\(a.recorder.all)\n\(b.recorder.all)\n\(logs.all.joined(separator: "\n"))")
        // Send at once, while the duplicate may still be resolving: nothing lost, nothing reordered.
        async let fromA: [Bool] = { var r: [Bool] = []; for i in 0..<40 { r.append(await a.mesh.sendQueued([UInt8(i)], to: b.id)) }; return r }()
        async let fromB: [Bool] = { var r: [Bool] = []; for i in 0..<40 { r.append(await b.mesh.sendQueued([UInt8(i)], to: a.id)) }; return r }()
        let (sentA, sentB) = await (fromA, fromB)
        #expect(sentA.allSatisfy { $0 } && sentB.allSatisfy { $0 })
        let expected = (0..<40).map { [UInt8($0)] }
        #expect(await eventually { b.recorder.messages(from: a.id).count == 40 && a.recorder.messages(from: b.id).count == 40 })
        #expect(b.recorder.messages(from: a.id) == expected)
        #expect(a.recorder.messages(from: b.id) == expected)
        try await Task.sleep(for: .milliseconds(300))
        #expect(a.recorder.opened(b.id) == 1 && b.recorder.opened(a.id) == 1)
        #expect(a.recorder.closed(b.id) == 0 && b.recorder.closed(a.id) == 0)
        let counters = await a.mesh.counters
        #expect(counters.sessionsOpened == 1 && counters.sessionsClosed == 0, "\(counters)")
        await a.stop()
        await b.stop()
    }

    @Test func largeMessagesUpToTheLimitArriveIntact() async throws {
        let logs = LogCapture()
        let limit = 4 << 20
        let a = await RunningMesh.start(Identity("a"), logs: logs) { $0.maximumFrameSize = limit }
        let b = await RunningMesh.start(Identity("b"), logs: logs) { $0.maximumFrameSize = limit }
        await connectAll([a, b])
        #expect(await eventually { a.recorder.opened(b.id) == 1 && b.recorder.opened(a.id) == 1 })
        var rng = SplitMix64(seed: 3)
        let big = (0..<(limit - SessionCipher.overhead)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(await a.mesh.sendQueued(big, to: b.id))
        #expect(await a.mesh.sendQueued(Array(big.prefix(1000)), to: b.id))
        #expect(await a.mesh.sendQueued(big + [0], to: b.id) == false)
        #expect(await eventually { b.recorder.messages(from: a.id).count == 2 })
        #expect(b.recorder.messages(from: a.id).first == big)
        #expect(b.recorder.messages(from: a.id).last == Array(big.prefix(1000)))
        await a.stop()
        await b.stop()
    }

    @Test func bindFailureNamesHostAndPort() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        var configuration = MeshConfiguration(
            me: PeerID("b")!, key: Ed25519.PrivateKey(), planHash: testPlan, listen: ("127.0.0.1", a.port), peers: [:],
            maximumFrameSize: 4096
        )
        configuration.handshakeTimeout = .seconds(1)
        let second = PeerMesh(configuration: configuration, logger: logs.logger("b"))
        do {
            try await second.run()
            Issue.record("binding a port in use succeeded")
        } catch let error as MeshError {
            #expect(error.code == .bindFailed)
            #expect(error.description.contains("127.0.0.1:\(a.port)"), "\(error)")
        }
        await a.stop()
    }

    @Test func reconnectsAfterThePeerRestartsOnTheSamePort() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        let bIdentity = Identity("b")
        let b = await RunningMesh.start(bIdentity, logs: logs)
        await connectAll([a, b])
        #expect(await eventually { a.recorder.opened(b.id) == 1 })
        let port = b.port
        await b.stop()
        let closed = await eventually { a.recorder.closed(b.id) == 1 }
        #expect(closed, "\(a.recorder.all)\n\(b.recorder.all)\n\(logs.all.joined(separator: "\n"))")
        // A keeps dialling a dead port with backoff; B comes back on the same port.
        try await Task.sleep(for: .milliseconds(500))
        let restarted = await RunningMesh.start(bIdentity, port: port, peers: [a.id: a.peerEntry()], logs: logs)
        #expect(restarted.port == port)
        // Backoff tops out at 400 ms in these tests: the session is back well within 2 s.
        #expect(await eventually(timeout: .seconds(2)) { a.recorder.opened(b.id) == 2 })
        #expect(await a.mesh.sendQueued(Array("again".utf8), to: b.id))
        #expect(await eventually { restarted.recorder.messages(from: a.id) == [Array("again".utf8)] })
        await a.stop()
        await restarted.stop()
    }

    @Test func removedPeerIsClosedAndRefused() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        let b = await RunningMesh.start(Identity("b"), logs: logs)
        await connectAll([a, b])
        #expect(await eventually { a.recorder.opened(b.id) == 1 })
        await a.mesh.updatePeers([:])
        #expect(await eventually { a.recorder.closed(b.id) == 1 && b.recorder.closed(a.id) == 1 })
        #expect(a.recorder.closed(b.id, because: .removed))
        // b keeps dialling; a now refuses it as unknown.
        #expect(await eventually { (await a.mesh.counters).handshakeFailures[.unknownPeer, default: 0] >= 1 })
        #expect(await eventually { (await b.mesh.counters).handshakeFailures[.refusedByPeer, default: 0] >= 1 })
        await a.stop()
        await b.stop()
    }
}

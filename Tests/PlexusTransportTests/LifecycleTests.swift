import Logging
import PlexusCore
import PlexusCrypto
import PlexusTransport
import ServiceLifecycle
import Testing

// The limit catches a hang, not slowness: on 2 cores the whole package's tests share a 2-thread
// cooperative pool, which the process-running CLI suites can hold for tens of seconds.
@Suite(.serialized, .timeLimit(.minutes(3))) struct LifecycleTests {
    @Test func gracefulShutdownOfAServiceGroupStopsTheMesh() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        let identity = Identity("b")
        let mesh = PeerMesh(
            configuration: MeshConfiguration(
                me: identity.id, key: identity.key, planHash: testPlan, listen: ("127.0.0.1", 0),
                peers: [a.id: a.peerEntry()], maximumFrameSize: 4096
            ),
            logger: logs.logger("b")
        )
        await a.mesh.updatePeers([identity.id: MeshPeer(host: "127.0.0.1", port: 1, publicKey: identity.key.publicKey)])
        let recorder = EventRecorder(mesh.events)
        let group = ServiceGroup(services: [mesh], gracefulShutdownSignals: [], logger: logs.logger("group"))
        let running = Task { try await group.run() }
        #expect(await eventually { recorder.opened(a.id) == 1 })
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(await eventually { a.recorder.closed(identity.id) == 1 })
        // The event stream finished with the mesh.
        #expect(await eventually { logs.contains("Mesh stopped") })
        do {
            try await mesh.run()
            Issue.record("a second run() started")
        } catch let error as MeshError {
            #expect(error.code == .alreadyRunning)
        }
        await a.stop()
    }

    /// A key rotated in the topology applies from the next handshake: the open session stays,
    /// the peer's reconnection with its old key is refused.
    @Test func rotatedKeyIsEnforcedFromTheNextHandshake() async throws {
        let logs = LogCapture()
        let a = await RunningMesh.start(Identity("a"), logs: logs)
        let bIdentity = Identity("b")
        let b = await RunningMesh.start(bIdentity, logs: logs)
        await connectAll([a, b])
        #expect(await eventually { a.recorder.opened(b.id) == 1 })
        let rotated = Ed25519.PrivateKey()
        await a.mesh.updatePeers([b.id: MeshPeer(host: "127.0.0.1", port: b.port, publicKey: rotated.publicKey)])
        // The open session keeps working.
        #expect(await a.mesh.sendQueued([1], to: b.id))
        #expect(await eventually { b.recorder.messages(from: a.id) == [[1]] })
        // b restarts with its old key: refused.
        let port = b.port
        await b.stop()
        let again = await RunningMesh.start(bIdentity, port: port, peers: [a.id: a.peerEntry()], logs: logs)
        #expect(await eventually { (await a.mesh.counters).handshakeFailures[.badSignature, default: 0] >= 1 })
        #expect(a.recorder.opened(b.id) == 1)
        await again.stop()
        await a.stop()
    }
}

import NIOCore
import PlexusCore
import PlexusCrypto
import PlexusTransport
import Testing

/// A hostile peer against mesh `a`, while `a` and `b` keep an honest session.
// The limit catches a hang, not slowness: on 2 cores the whole package's tests share a 2-thread
// cooperative pool, which the process-running CLI suites can hold for tens of seconds.
@Suite(.serialized, .timeLimit(.minutes(3))) struct HostileTests {
    struct Fixture {
        var logs: LogCapture
        var a: RunningMesh
        var b: RunningMesh

        static func make(configureA: (inout MeshConfiguration) -> Void = { _ in }) async -> Fixture {
            let logs = LogCapture()
            let a = await RunningMesh.start(Identity("a"), logs: logs) {
                $0.handshakeTimeout = .milliseconds(500)
                configureA(&$0)
            }
            let b = await RunningMesh.start(Identity("b"), logs: logs)
            await connectAll([a, b])
            _ = await eventually { a.recorder.opened(b.id) == 1 && b.recorder.opened(a.id) == 1 }
            return Fixture(logs: logs, a: a, b: b)
        }

        /// Adds `identity` to a's allowed peers (at an address nobody listens on).
        func allow(_ identity: Identity) async {
            await a.mesh.updatePeers([
                b.id: b.peerEntry(),
                identity.id: MeshPeer(host: "127.0.0.1", port: 1, publicKey: identity.key.publicKey),
            ])
        }

        /// The honest session still carries messages both ways.
        func honestSessionStillWorks(_ tag: UInt8) async -> Bool {
            guard await a.mesh.sendQueued([tag], to: b.id), await b.mesh.sendQueued([tag], to: a.id) else { return false }
            return await eventually {
                b.recorder.messages(from: a.id).last == [tag] && a.recorder.messages(from: b.id).last == [tag]
            }
        }

        func failures(_ reason: Reason) async -> Int {
            (await a.mesh.counters).handshakeFailures[reason, default: 0]
        }

        func rejected(_ reason: Reason) async -> Int {
            (await a.mesh.counters).framesRejected[reason, default: 0]
        }

        /// Whether a logged a line with this reason (the counter moves just before the line is written).
        func logged(reason: String, or other: String? = nil) async -> Bool {
            await eventually(timeout: .seconds(2)) {
                logs.all.contains { line in
                    guard line.contains("mesh.me=a") else { return false }
                    if line.contains("reason=\(reason)") { return true }
                    if let other, line.contains("reason=\(other)") { return true }
                    return false
                }
            }
        }

        func stop() async {
            await a.stop()
            await b.stop()
        }
    }

    /// Completes a real handshake as `identity` with `target` over a raw socket.
    func authenticatedClient(_ identity: Identity, to target: RunningMesh) async throws -> (RawClient, SessionCipher) {
        let client = try await RawClient.connect(port: target.port)
        var machine = HandshakeStateMachine(
            role: .initiator(expecting: target.id),
            context: HandshakeContext(
                me: identity.id, key: identity.key, planHash: testPlan, peers: [target.id: target.identity.key.publicKey]
            )
        )
        var actions = machine.start()
        while true {
            for action in actions {
                switch action {
                case .send(let bytes): try await client.write(frame(bytes))
                case .established(_, let cipher): return (client, cipher)
                case .fail(let failure): throw failure
                }
            }
            let next = try #require(await client.nextFrame())
            actions = machine.receive(next)
        }
    }

    @Test func peerNotInTheAllowedSetIsRefused() async throws {
        let f = await Fixture.make()
        let mallory = await RunningMesh.start(Identity("mallory"), peers: [f.a.id: f.a.peerEntry()], logs: f.logs)
        #expect(await eventually { await f.failures(.unknownPeer) >= 1 })
        #expect(await f.logged(reason: "unknownPeer"))
        #expect(await eventually { (await mallory.mesh.counters).handshakeFailures[.refusedByPeer, default: 0] >= 1 })
        // The event reaches the recorder after the counter moves: wait for it too.
        #expect(await eventually { f.a.recorder.all.contains { if case .refused(peer: "mallory", _, _) = $0 { return true } else { return false } } })
        #expect(f.a.recorder.opened(PeerID("mallory")!) == 0)
        #expect(await f.honestSessionStillWorks(1))
        await mallory.stop()
        await f.stop()
    }

    @Test func rightIdWithTheWrongKeyIsRefused() async throws {
        let f = await Fixture.make()
        let impostor = await RunningMesh.start(Identity("b"), peers: [f.a.id: f.a.peerEntry()], logs: f.logs)
        #expect(await eventually { await f.failures(.badSignature) >= 1 })
        #expect(await f.logged(reason: "badSignature"))
        #expect(f.a.recorder.opened(f.b.id) == 1)
        #expect(await f.honestSessionStillWorks(2))
        await impostor.stop()
        await f.stop()
    }

    @Test func differentPlanHashIsRefusedAndLoggedOnBothSidesWithBothHashes() async throws {
        let f = await Fixture.make()
        let c = Identity("c")
        await f.allow(c)
        let other = await RunningMesh.start(c, planHash: otherPlan, peers: [f.a.id: f.a.peerEntry()], logs: f.logs)
        #expect(await eventually { await f.failures(.planMismatch) >= 1 })
        #expect(await eventually { (await other.mesh.counters).handshakeFailures[.planMismatch, default: 0] >= 1 })
        let ours = shortHex(testPlan)
        let theirs = shortHex(otherPlan)
        #expect(await eventually { f.logs.all.contains { $0.contains("mesh.me=a") && $0.contains("ours \(ours), theirs \(theirs)") } })
        #expect(await eventually { f.logs.all.contains { $0.contains("mesh.me=c") && $0.contains("ours \(theirs), theirs \(ours)") } })
        #expect(await f.honestSessionStillWorks(3))
        await other.stop()
        await f.stop()
    }

    @Test func stalledHandshakeIsDroppedAfterTheTimeout() async throws {
        let f = await Fixture.make()
        let silent = try await RawClient.connect(port: f.a.port)
        let partial = try await RawClient.connect(port: f.a.port)
        try await partial.write([40, 0, 0, 0, 1, 2])  // a frame header and part of its body, then nothing
        #expect(await silent.waitClosed(timeout: .seconds(3)))
        #expect(await partial.waitClosed(timeout: .seconds(3)))
        #expect(await f.failures(.handshakeTimeout) >= 2)
        #expect(await f.logged(reason: "handshakeTimeout"))
        #expect(await f.honestSessionStillWorks(4))
        await f.stop()
    }

    @Test(arguments: [
        Array("GET / HTTP/1.1\r\nHost: plexus\r\n\r\n".utf8),
        frame([1, 2, 3, 4]),
        frame(Array(repeating: 0x41, count: 200)),
        // Within the 64 KiB session limit but over the 1 KiB pre-authentication limit.
        [0xD0, 0x07, 0, 0] + Array(repeating: 0x42, count: 100),
    ])
    func garbageBeforeTheHandshakeClosesTheConnection(garbage: [UInt8]) async throws {
        let f = await Fixture.make()
        let client = try await RawClient.connect(port: f.a.port)
        try await client.write(garbage)
        #expect(await client.waitClosed())
        #expect(await eventually { await f.failures(.frameTooLarge) + f.failures(.malformedHandshake) >= 1 })
        #expect(await f.logged(reason: "frameTooLarge", or: "malformedHandshake"))
        #expect(await f.honestSessionStillWorks(5))
        await f.stop()
    }

    @Test func authenticatedClientMessagesAreDelivered() async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        var (client, cipher) = try await authenticatedClient(evil, to: f.a)
        try await client.write(frame(cipher.seal(.message, [7, 7])))
        #expect(await eventually { f.a.recorder.messages(from: evil.id) == [[7, 7]] })
        await client.close()
        await f.stop()
    }

    @Test func frameOverTheLimitClosesTheSession() async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        let (client, _) = try await authenticatedClient(evil, to: f.a)
        #expect(await eventually { f.a.recorder.opened(evil.id) == 1 })
        // Declares one byte more than the maximum, sends only the header.
        var writer = ByteWriter()
        writer.write(littleEndian: UInt32(64 * 1024 + 1))
        try await client.write(writer.bytes)
        #expect(await client.waitClosed())
        #expect(await eventually { await f.rejected(.frameTooLarge) == 1 })
        #expect(await f.logged(reason: "frameTooLarge"))
        #expect(await eventually { f.a.recorder.closed(evil.id) == 1 })
        #expect(await f.honestSessionStillWorks(6))
        await f.stop()
    }

    @Test func replayedSealedFrameClosesTheSession() async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        var (client, cipher) = try await authenticatedClient(evil, to: f.a)
        let captured = frame(cipher.seal(.message, [1, 2, 3]))
        try await client.write(captured)
        #expect(await eventually { f.a.recorder.messages(from: evil.id) == [[1, 2, 3]] })
        try await client.write(captured)
        #expect(await client.waitClosed())
        #expect(await eventually { await f.rejected(.decryptFailed) == 1 })
        #expect(await f.logged(reason: "decryptFailed"))
        #expect(f.a.recorder.messages(from: evil.id) == [[1, 2, 3]])
        #expect(await eventually { f.a.recorder.closed(evil.id, because: .decryptFailed) })
        #expect(await f.honestSessionStillWorks(7))
        await f.stop()
    }

    @Test func alteredSealedFrameClosesTheSession() async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        var (client, cipher) = try await authenticatedClient(evil, to: f.a)
        var sealed = cipher.seal(.message, Array("deltas".utf8))
        sealed[3] ^= 0x20
        try await client.write(frame(sealed))
        #expect(await client.waitClosed())
        #expect(await eventually { await f.rejected(.decryptFailed) == 1 })
        #expect(f.a.recorder.messages(from: evil.id).isEmpty)
        #expect(await f.honestSessionStillWorks(8))
        await f.stop()
    }

    @Test func garbageAfterTheHandshakeClosesTheSession() async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        let (client, _) = try await authenticatedClient(evil, to: f.a)
        // Valid kind byte then garbage: fails authentication; unknown kind byte: malformed record.
        try await client.write(frame([2] + Array(repeating: 0x55, count: 64)))
        #expect(await client.waitClosed())
        #expect(await eventually { await f.rejected(.decryptFailed) == 1 })
        let (second, _) = try await authenticatedClient(evil, to: f.a)
        try await second.write(frame(Array(repeating: 0x55, count: 64)))
        #expect(await second.waitClosed())
        #expect(await eventually { await f.rejected(.malformedRecord) == 1 })
        #expect(await f.honestSessionStillWorks(9))
        await f.stop()
    }

    /// `a` is the pair's authority toward `evil`: keepalives from it are fine, but a `select` or
    /// `superseded` from the follower, or a select token of the wrong size, closes the session.
    @Test(arguments: [
        (SessionCipher.Kind.select, SelectToken(incarnation: 1, sequence: 1).encoded),
        (SessionCipher.Kind.superseded, []),
    ])
    func sessionControlRecordsFromTheFollowerCloseTheSession(kind: SessionCipher.Kind, payload: [UInt8]) async throws {
        let f = await Fixture.make()
        let evil = Identity("evil")
        await f.allow(evil)
        var (client, cipher) = try await authenticatedClient(evil, to: f.a)
        #expect(await eventually { f.a.recorder.opened(evil.id) == 1 })
        try await client.write(frame(cipher.seal(.keepalive, [])))
        try await client.write(frame(cipher.seal(.message, [4])))
        #expect(await eventually { f.a.recorder.messages(from: evil.id) == [[4]] })
        try await client.write(frame(cipher.seal(kind, payload)))
        #expect(await client.waitClosed())
        #expect(await eventually { f.a.recorder.closed(evil.id, because: .malformedRecord) })
        #expect(await f.honestSessionStillWorks(11))
        await f.stop()
    }

    @Test func pendingInboundConnectionsAreBounded() async throws {
        let f = await Fixture.make {
            $0.maximumPendingConnections = 2
            $0.helloTimeout = .milliseconds(500)
            $0.refusalSummaryInterval = .milliseconds(200)
        }
        let first = try await RawClient.connect(port: f.a.port)
        let second = try await RawClient.connect(port: f.a.port)
        _ = await eventually(timeout: .milliseconds(200)) { false }
        let third = try await RawClient.connect(port: f.a.port)
        #expect(await third.waitClosed(timeout: .seconds(1)))
        #expect(await f.failures(.tooManyPending) >= 1)
        // Not one line per refused connection: one summary per interval.
        #expect(await f.logged(reason: "tooManyPending"))
        #expect(f.logs.all.filter { $0.contains("mesh.me=a") && $0.contains("reason=tooManyPending") }.allSatisfy {
            $0.contains("Refused unauthenticated connections: refused")
        })
        // The stalled two are dropped by the timeout, freeing their slots.
        #expect(await first.waitClosed())
        #expect(await second.waitClosed())
        #expect(await f.honestSessionStillWorks(10))
        await f.stop()
    }
}

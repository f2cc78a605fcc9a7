import PlexusCore
import PlexusCrypto
import PlexusTransport
import Testing

/// The handshake with no sockets: two state machines passing frames by hand.
@Suite struct HandshakeStateMachineTests {
    let alice = Identity("alice")
    let bob = Identity("bob")

    func context(_ me: Identity, knows others: [Identity], plan: [UInt8] = testPlan) -> HandshakeContext {
        HandshakeContext(
            me: me.id, key: me.key, planHash: plan,
            peers: Dictionary(uniqueKeysWithValues: others.map { ($0.id, $0.key.publicKey) })
        )
    }

    enum Outcome {
        case established(initiator: PeerID, responder: PeerID, SessionCipher, SessionCipher)
        case initiatorFailed(HandshakeFailure, responderFailure: HandshakeFailure?)
        case responderFailed(HandshakeFailure)
    }

    /// Runs the exchange; `tamper` may alter the n-th frame on the wire (0 = hello).
    func run(
        initiator: HandshakeContext,
        responder: HandshakeContext,
        expecting: PeerID,
        tamper: (Int, inout [UInt8]) -> Void = { _, _ in }
    ) -> Outcome {
        var i = HandshakeStateMachine(role: .initiator(expecting: expecting), context: initiator)
        var r = HandshakeStateMachine(role: .responder, context: responder)
        var toResponder: [[UInt8]] = []
        var toInitiator: [[UInt8]] = []
        var initiatorCipher: SessionCipher?
        var responderCipher: SessionCipher?
        var initiatorPeer: PeerID?
        var responderPeer: PeerID?
        var responderFailure: HandshakeFailure?
        var index = 0
        func collect(_ actions: [HandshakeStateMachine.Action], into queue: inout [[UInt8]], cipher: inout SessionCipher?, peer: inout PeerID?) -> HandshakeFailure? {
            for action in actions {
                switch action {
                case .send(var bytes):
                    tamper(index, &bytes)
                    index += 1
                    queue.append(bytes)
                case .established(let p, let c):
                    cipher = c
                    peer = p
                case .fail(let failure):
                    return failure
                }
            }
            return nil
        }
        if let failure = collect(i.start(), into: &toResponder, cipher: &initiatorCipher, peer: &initiatorPeer) {
            return .initiatorFailed(failure, responderFailure: nil)
        }
        for _ in 0..<4 {
            while !toResponder.isEmpty {
                if let failure = collect(r.receive(toResponder.removeFirst()), into: &toInitiator, cipher: &responderCipher, peer: &responderPeer) {
                    responderFailure = failure
                }
            }
            while !toInitiator.isEmpty {
                if let failure = collect(i.receive(toInitiator.removeFirst()), into: &toResponder, cipher: &initiatorCipher, peer: &initiatorPeer) {
                    return .initiatorFailed(failure, responderFailure: responderFailure)
                }
            }
            if let responderFailure { return .responderFailed(responderFailure) }
        }
        guard let initiatorCipher, let responderCipher, let initiatorPeer, let responderPeer else {
            Issue.record("the handshake neither completed nor failed")
            return .responderFailed(HandshakeFailure(reason: .closedDuringHandshake, claimedPeer: nil, detail: "stuck"))
        }
        return .established(initiator: responderPeer, responder: initiatorPeer, initiatorCipher, responderCipher)
    }

    @Test func honestPeersEstablishAndExchangeRecords() throws {
        let outcome = run(initiator: context(alice, knows: [bob]), responder: context(bob, knows: [alice]), expecting: bob.id)
        guard case .established(let initiator, let responder, var a, var b) = outcome else {
            Issue.record("expected a session, got \(outcome)")
            return
        }
        #expect(initiator == alice.id && responder == bob.id)
        let sealed = a.seal(.message, [1, 2, 3])
        #expect(sealed.count == 3 + SessionCipher.overhead)
        #expect(try b.open(sealed).payload == [1, 2, 3])
        let back = b.seal(.message, Array("reply".utf8))
        #expect(try a.open(back).payload == Array("reply".utf8))
    }

    @Test func replayedReorderedAndAlteredRecordsFail() throws {
        guard case .established(_, _, var a, var b) = run(
            initiator: context(alice, knows: [bob]), responder: context(bob, knows: [alice]), expecting: bob.id
        ) else {
            Issue.record("no session")
            return
        }
        let first = a.seal(.message, [1])
        let second = a.seal(.message, [2])
        // Reordered: the second record first.
        var reorderedReceiver = b
        #expect(throws: SessionCipher.OpenError.self) { try reorderedReceiver.open(second) }
        #expect(try b.open(first).payload == [1])
        // Replayed.
        #expect(throws: SessionCipher.OpenError.self) { try b.open(first) }
        // Altered.
        var altered = second
        altered[altered.count - 1] ^= 0x01
        #expect(throws: SessionCipher.OpenError.self) { try b.open(altered) }
        // A failed open does not advance the counter: the genuine record still opens.
        #expect(try b.open(second).payload == [2])
        // A record reflected back to its sender does not open (one key per direction).
        #expect(throws: SessionCipher.OpenError.self) { try a.open(a.seal(.message, [3])) }
    }

    @Test func unknownInitiatorIsRefused() {
        let mallory = Identity("mallory")
        let outcome = run(initiator: context(mallory, knows: [bob]), responder: context(bob, knows: [alice]), expecting: bob.id)
        guard case .initiatorFailed(let failure, let responderFailure) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(responderFailure?.reason == .unknownPeer)
        #expect(responderFailure?.claimedPeer == "mallory")
        #expect(failure.reason == .refusedByPeer)
    }

    @Test func rightIdWrongKeyIsRefusedByTheResponder() {
        let impostor = Identity("alice")  // alice's id, another key
        let outcome = run(initiator: context(impostor, knows: [bob]), responder: context(bob, knows: [alice]), expecting: bob.id)
        guard case .responderFailed(let failure) = outcome else {
            Issue.record("expected the responder to refuse, got \(outcome)")
            return
        }
        #expect(failure.reason == .badSignature)
    }

    @Test func wrongResponderKeyIsRefusedByTheInitiator() {
        let impostor = Identity("bob")
        let outcome = run(initiator: context(alice, knows: [bob]), responder: context(impostor, knows: [alice]), expecting: bob.id)
        guard case .initiatorFailed(let failure, _) = outcome else {
            Issue.record("expected the initiator to refuse, got \(outcome)")
            return
        }
        #expect(failure.reason == .badSignature)
    }

    @Test func planMismatchNamesBothHashesOnBothSides() {
        let outcome = run(
            initiator: context(alice, knows: [bob], plan: otherPlan), responder: context(bob, knows: [alice]), expecting: bob.id
        )
        guard case .initiatorFailed(let failure, let responderFailure) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        let ours = shortHex(testPlan)
        let theirs = shortHex(otherPlan)
        #expect(failure.reason == .planMismatch)
        #expect(failure.detail.contains("ours \(theirs), theirs \(ours)"), "\(failure.detail)")
        #expect(responderFailure?.reason == .planMismatch)
        #expect(responderFailure?.detail.contains("ours \(ours), theirs \(theirs)") == true, "\(String(describing: responderFailure))")
    }

    @Test func dialledIdentityMustAnswer() {
        // alice dials "carol" at an address where bob answers.
        let carol = Identity("carol")
        let outcome = run(
            initiator: context(alice, knows: [bob, carol]), responder: context(bob, knows: [alice]), expecting: carol.id
        )
        guard case .initiatorFailed(let failure, let responderFailure) = outcome else {
            Issue.record("expected a refusal, got \(outcome)")
            return
        }
        #expect(failure.reason == .unexpectedPeer)
        #expect(responderFailure?.reason == .unexpectedPeer)
    }

    /// Flipping any single byte of any handshake frame ends the handshake.
    @Test(arguments: [0, 1, 2])
    func tamperedHandshakeFramesFail(frameIndex: Int) {
        for position in [0, 5, 6, 20, 45, 70, 100, 140, -1] {
            let outcome = run(
                initiator: context(alice, knows: [bob]), responder: context(bob, knows: [alice]), expecting: bob.id
            ) { index, bytes in
                guard index == frameIndex else { return }
                let at = position < 0 ? bytes.count - 1 : min(position, bytes.count - 1)
                bytes[at] ^= 0x40
            }
            if case .established = outcome {
                Issue.record("frame \(frameIndex) altered at \(position) still established a session")
            }
        }
    }

    @Test(arguments: [
        [UInt8](), Array("GET / HTTP/1.1\r\n".utf8), [UInt8](repeating: 0, count: 200),
        HandshakeMessage.magic + [1, 1], HandshakeMessage.magic + [1, 9] + [UInt8](repeating: 7, count: 120),
    ])
    func garbageIsMalformed(bytes: [UInt8]) {
        var responder = HandshakeStateMachine(role: .responder, context: context(bob, knows: [alice]))
        let actions = responder.receive(bytes)
        guard actions.count == 1, case .fail(let failure) = actions[0] else {
            Issue.record("expected one failure, got \(actions)")
            return
        }
        #expect(failure.reason == .malformedHandshake)
        #expect(responder.isFinished)
    }

    @Test func otherProtocolVersionIsRefusedByName() {
        var hello = HandshakeMessage.hello(
            .init(version: 9, planHash: testPlan, initiator: alice.id, responder: bob.id, ephemeral: X25519.EphemeralPrivateKey().publicKey)
        ).encoded
        var responder = HandshakeStateMachine(role: .responder, context: context(bob, knows: [alice]))
        let actions = responder.receive(hello)
        #expect(actions.count == 2)
        guard case .fail(let failure) = actions.last else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.reason == .versionMismatch)
        #expect(failure.detail.contains("theirs 9"))
        hello[0] = 0
        var second = HandshakeStateMachine(role: .responder, context: context(bob, knows: [alice]))
        guard case .fail(let malformed) = second.receive(hello).last else { return }
        #expect(malformed.reason == .malformedHandshake)
    }

    @Test func smallOrderEphemeralIsRefused() {
        let hello = HandshakeMessage.hello(
            .init(
                version: HandshakeMessage.protocolVersion, planHash: testPlan, initiator: alice.id, responder: bob.id,
                ephemeral: [UInt8](repeating: 0, count: 32)
            )
        ).encoded
        var responder = HandshakeStateMachine(role: .responder, context: context(bob, knows: [alice]))
        guard case .fail(let failure) = responder.receive(hello).last else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.reason == .weakEphemeralKey)
    }

    @Test func messagesRoundTrip() throws {
        let messages: [HandshakeMessage] = [
            .hello(.init(version: 1, planHash: testPlan, initiator: alice.id, responder: bob.id, ephemeral: Array(repeating: 3, count: 32))),
            .reply(.init(responder: bob.id, ephemeral: Array(repeating: 4, count: 32), signature: Array(repeating: 5, count: 64), mac: Array(repeating: 6, count: 32))),
            .finish(.init(signature: Array(repeating: 7, count: 64), mac: Array(repeating: 8, count: 32))),
            .refusal(.init(code: .planMismatch, planHash: otherPlan)),
        ]
        for message in messages {
            #expect(try HandshakeMessage.decode(message.encoded) == message)
            // Every truncation is refused without a crash.
            let bytes = message.encoded
            for length in 0..<bytes.count {
                #expect(throws: HandshakeMessage.DecodingError.self) { try HandshakeMessage.decode(Array(bytes.prefix(length))) }
            }
            #expect(throws: HandshakeMessage.DecodingError.self) { try HandshakeMessage.decode(bytes + [0]) }
        }
    }

    @Test func sessionKeysAreSecureBytesAndRedacted() {
        let shared = SecureBytes(randomCount: 32)
        let keys = HandshakeStateMachine.deriveKeys(shared: shared, hello: [1], replyCore: [2])
        let all = [keys.responderFinished, keys.initiatorFinished, keys.initiatorToResponder, keys.responderToInitiator]
        for (i, a) in all.enumerated() {
            #expect(String(describing: a) == "SecureBytes(32 bytes, redacted)")
            for b in all[(i + 1)...] { #expect(a != b) }
        }
        let again = HandshakeStateMachine.deriveKeys(shared: shared, hello: [1], replyCore: [2])
        #expect(again.initiatorToResponder == keys.initiatorToResponder)
        let otherTranscript = HandshakeStateMachine.deriveKeys(shared: shared, hello: [1], replyCore: [3])
        #expect(otherTranscript.initiatorToResponder != keys.initiatorToResponder)
    }
}

@Suite struct RedactionTests {
    @Test func noSecretInAnyDescription() {
        let me = Identity("alice")
        let seed = me.key.rawRepresentation.withUnsafeBytes { Base64.encode($0) }
        let machine = HandshakeStateMachine(
            role: .initiator(expecting: PeerID("bob")!),
            context: HandshakeContext(me: me.id, key: me.key, planHash: testPlan, peers: [:])
        )
        let cipher = SessionCipher(sendKey: SecureBytes(randomCount: 32), receiveKey: SecureBytes(randomCount: 32))
        for text in [String(describing: machine), String(reflecting: machine), String(reflecting: cipher)] {
            #expect(!text.contains(seed))
        }
        #expect(String(reflecting: cipher).contains("redacted"))
        #expect(String(describing: X25519.EphemeralPrivateKey()) == "X25519.EphemeralPrivateKey(redacted)")
    }
}

package import PlexusCore
package import PlexusCrypto

/// What a handshake needs to know about this node, captured when the connection starts.
package struct HandshakeContext: Sendable {
    package var me: PeerID
    package var key: Ed25519.PrivateKey
    package var planHash: [UInt8]
    /// The allowed neighbours and their pinned keys.
    package var peers: [PeerID: Ed25519.PublicKey]

    package init(me: PeerID, key: Ed25519.PrivateKey, planHash: [UInt8], peers: [PeerID: Ed25519.PublicKey]) {
        self.me = me
        self.key = key
        self.planHash = planHash
        self.peers = peers
    }
}

/// Why a handshake failed: a ``PlexusCore/Reason`` (the counter key and the `reason` log metadata
/// value) and a sentence.
package struct HandshakeFailure: Error, Equatable, CustomStringConvertible {

    package var reason: Reason
    /// The id the other side claimed, if it got that far. Unauthenticated: for logs only.
    package var claimedPeer: String?
    /// A sentence for the log; never contains key material.
    package var detail: String

    package init(reason: Reason, claimedPeer: String?, detail: String) {
        self.reason = reason
        self.claimedPeer = claimedPeer
        self.detail = detail
    }

    package var description: String { "\(reason): \(detail)" }
}

/// The Plexus handshake as a pure state machine: bytes in, actions out, no I/O and no clock.
///
/// A SIGMA-I-style sign-and-MAC exchange (the shape of TLS 1.3's mutually authenticated
/// handshake) over ephemeral X25519:
///
/// ```
/// initiator I                                             responder R
///   hello  = ver, plan, id_I, id_R, e_I          ───────▶
///                                                ◀───────  reply = id_R, e_R, sig_R, mac_R
///   finish = sig_I, mac_I                        ───────▶
///                                                ◀───────  sealed record 0: ready
/// ```
///
/// The handler feeds it every frame until it returns ``Action/established(peer:cipher:)`` or
/// ``Action/fail(_:)``; the timeout and the socket are the handler's.
package struct HandshakeStateMachine {
    package enum Role: Equatable {
        /// We dialled `expecting` and will accept no other identity.
        case initiator(expecting: PeerID)
        case responder
    }

    package enum Action {
        /// Write this frame body.
        case send([UInt8])
        /// The peer proved its pinned key; every later frame goes through `cipher`.
        case established(peer: PeerID, cipher: SessionCipher)
        /// Close the connection (after any `send` before it in the same list).
        case fail(HandshakeFailure)
    }

    private enum State {
        case idle
        case awaitingHello
        case awaitingReply(hello: [UInt8], expecting: PeerID)
        case awaitingFinish(peer: PeerID, transcript: [UInt8], finishKey: SecureBytes, cipher: SessionCipher)
        case awaitingReady(peer: PeerID, cipher: SessionCipher)
        case done
    }

    static let keyContext = "plxs1hsk"
    static let extractLabel: [UInt8] = Array("plexus/1 handshake keys".utf8)
    static let responderLabel: [UInt8] = Array("plexus/1 responder signature".utf8) + [0]
    static let initiatorLabel: [UInt8] = Array("plexus/1 initiator signature".utf8) + [0]

    private let context: HandshakeContext
    private let ephemeral: X25519.EphemeralPrivateKey
    private let role: Role
    private var state: State
    /// The id the other side claims (responder: from hello; initiator: the one we dialled).
    package private(set) var claimedPeer: String?

    package init(role: Role, context: HandshakeContext, ephemeral: X25519.EphemeralPrivateKey = .init()) {
        self.role = role
        self.context = context
        self.ephemeral = ephemeral
        switch role {
        case .initiator(let expecting):
            state = .idle
            claimedPeer = expecting.rawValue
        case .responder:
            state = .awaitingHello
        }
    }

    /// Whether the machine has finished, one way or the other.
    package var isFinished: Bool {
        if case .done = state { return true }
        return false
    }

    /// The initiator's first message; nothing for a responder.
    package mutating func start() -> [Action] {
        guard case .initiator(let expecting) = role, case .idle = state else { return [] }
        let hello = HandshakeMessage.hello(
            .init(
                version: HandshakeMessage.protocolVersion, planHash: context.planHash, initiator: context.me,
                responder: expecting, ephemeral: ephemeral.publicKey
            )
        ).encoded
        state = .awaitingReply(hello: hello, expecting: expecting)
        return [.send(hello)]
    }

    /// Feeds one frame body.
    package mutating func receive(_ frame: [UInt8]) -> [Action] {
        switch state {
        case .idle, .done:
            return fail(.malformedHandshake, "a frame arrived before the handshake started or after it ended")
        case .awaitingReady(let peer, var cipher):
            guard let record = try? cipher.open(frame), record.kind == .ready, record.payload.isEmpty else {
                return fail(.badConfirmation, "the responder's first record did not open as the key confirmation")
            }
            state = .done
            return [.established(peer: peer, cipher: cipher)]
        case .awaitingHello:
            return receiveHello(frame)
        case .awaitingReply(let hello, let expecting):
            return receiveReply(frame, hello: hello, expecting: expecting)
        case .awaitingFinish(let peer, let transcript, let finishKey, let cipher):
            return receiveFinish(frame, peer: peer, transcript: transcript, finishKey: finishKey, cipher: cipher)
        }
    }

    // MARK: Responder

    private mutating func receiveHello(_ frame: [UInt8]) -> [Action] {
        guard case .hello(let hello) = try? HandshakeMessage.decode(frame) else {
            return fail(.malformedHandshake, "expected a hello message")
        }
        claimedPeer = hello.initiator.rawValue
        guard hello.version == HandshakeMessage.protocolVersion else {
            return refuse(
                .versionMismatch, .versionMismatch,
                "protocol version mismatch: ours \(HandshakeMessage.protocolVersion), theirs \(hello.version)"
            )
        }
        guard hello.responder == context.me else {
            return refuse(.wrongResponder, .unexpectedPeer, "the peer dialled '\(hello.responder)' but this is '\(context.me)'")
        }
        guard hello.initiator != context.me, context.peers[hello.initiator] != nil else {
            return refuse(.unknownPeer, .unknownPeer, "'\(hello.initiator)' is not a neighbour in the topology")
        }
        guard hello.planHash == context.planHash else {
            return refuse(
                .planMismatch, .planMismatch,
                "plan hash mismatch: ours \(shortHex(context.planHash)), theirs \(shortHex(hello.planHash))"
            )
        }
        let shared: SecureBytes
        do { shared = try ephemeral.sharedSecret(with: hello.ephemeral) } catch {
            return fail(.weakEphemeralKey, "\(error)")
        }
        var reply = HandshakeMessage.Reply(responder: context.me, ephemeral: ephemeral.publicKey, signature: [], mac: [])
        let helloBytes = HandshakeMessage.hello(hello).encoded
        let core = reply.core
        let keys = Self.deriveKeys(shared: shared, hello: helloBytes, replyCore: core)
        reply.signature = context.key.signature(for: Self.responderLabel + BLAKE2b.hash256(helloBytes + core))
        reply.mac = KeyDerivation.authenticationCode(
            key: keys.responderFinished, message: BLAKE2b.hash256(helloBytes + core + reply.signature)
        )
        let replyBytes = HandshakeMessage.reply(reply).encoded
        state = .awaitingFinish(
            peer: hello.initiator, transcript: helloBytes + replyBytes, finishKey: keys.initiatorFinished,
            cipher: SessionCipher(sendKey: keys.responderToInitiator, receiveKey: keys.initiatorToResponder)
        )
        return [.send(replyBytes)]
    }

    private mutating func receiveFinish(
        _ frame: [UInt8],
        peer: PeerID,
        transcript: [UInt8],
        finishKey: SecureBytes,
        cipher: SessionCipher
    ) -> [Action] {
        guard case .finish(let finish) = try? HandshakeMessage.decode(frame) else {
            return fail(.malformedHandshake, "expected a finish message")
        }
        guard let publicKey = context.peers[peer] else {
            return fail(.unknownPeer, "'\(peer)' is not a neighbour in the topology")
        }
        guard publicKey.isValidSignature(finish.signature, for: Self.initiatorLabel + BLAKE2b.hash256(transcript)) else {
            return fail(.badSignature, "the initiator's signature does not verify under the key pinned for '\(peer)'")
        }
        let expected = KeyDerivation.authenticationCode(
            key: finishKey, message: BLAKE2b.hash256(transcript + finish.signature)
        )
        guard constantTimeEquals(expected, finish.mac) else {
            return fail(.badMAC, "the initiator's finished MAC does not match the session keys")
        }
        var cipher = cipher
        let ready = cipher.seal(.ready, [])
        state = .done
        return [.send(ready), .established(peer: peer, cipher: cipher)]
    }

    // MARK: Initiator

    private mutating func receiveReply(_ frame: [UInt8], hello: [UInt8], expecting: PeerID) -> [Action] {
        let message: HandshakeMessage
        do { message = try HandshakeMessage.decode(frame) } catch {
            return fail(.malformedHandshake, "expected a reply message: \(error)")
        }
        switch message {
        case .refusal(let refusal):
            switch refusal.code {
            case .planMismatch:
                return fail(
                    .planMismatch,
                    "refused by the peer: plan hash mismatch: ours \(shortHex(context.planHash)), theirs \(shortHex(refusal.planHash))"
                )
            case .versionMismatch:
                return fail(.versionMismatch, "refused by the peer: protocol version \(HandshakeMessage.protocolVersion) not spoken")
            case .unknownPeer:
                return fail(.refusedByPeer, "refused by the peer: it does not list '\(context.me)' as a neighbour")
            case .wrongResponder:
                return fail(.unexpectedPeer, "refused by the peer: it is not '\(expecting)'")
            }
        case .reply(let reply):
            guard reply.responder == expecting else {
                return fail(.unexpectedPeer, "dialled '\(expecting)' but the peer says it is '\(reply.responder)'")
            }
            guard let publicKey = context.peers[expecting] else {
                return fail(.unknownPeer, "'\(expecting)' is not a neighbour in the topology")
            }
            let shared: SecureBytes
            do { shared = try ephemeral.sharedSecret(with: reply.ephemeral) } catch {
                return fail(.weakEphemeralKey, "\(error)")
            }
            let core = reply.core
            guard publicKey.isValidSignature(reply.signature, for: Self.responderLabel + BLAKE2b.hash256(hello + core)) else {
                return fail(.badSignature, "the responder's signature does not verify under the key pinned for '\(expecting)'")
            }
            let keys = Self.deriveKeys(shared: shared, hello: hello, replyCore: core)
            let expectedMAC = KeyDerivation.authenticationCode(
                key: keys.responderFinished, message: BLAKE2b.hash256(hello + core + reply.signature)
            )
            guard constantTimeEquals(expectedMAC, reply.mac) else {
                return fail(.badMAC, "the responder's finished MAC does not match the session keys")
            }
            let transcript = hello + HandshakeMessage.reply(reply).encoded
            let signature = context.key.signature(for: Self.initiatorLabel + BLAKE2b.hash256(transcript))
            let mac = KeyDerivation.authenticationCode(
                key: keys.initiatorFinished, message: BLAKE2b.hash256(transcript + signature)
            )
            state = .awaitingReady(
                peer: expecting,
                cipher: SessionCipher(sendKey: keys.initiatorToResponder, receiveKey: keys.responderToInitiator)
            )
            return [.send(HandshakeMessage.finish(.init(signature: signature, mac: mac)).encoded)]
        case .hello, .finish:
            return fail(.malformedHandshake, "expected a reply message")
        }
    }

    // MARK: Keys

    package struct Keys {
        package var responderFinished: SecureBytes
        package var initiatorFinished: SecureBytes
        package var initiatorToResponder: SecureBytes
        package var responderToInitiator: SecureBytes
    }

    /// PRK = BLAKE2b-256(key: X25519(e_I, e_R), "plexus/1 handshake keys" ‖ H(hello ‖ reply core));
    /// subkeys 1…4 = crypto_kdf_derive_from_key(PRK, id, "plxs1hsk").
    package static func deriveKeys(shared: SecureBytes, hello: [UInt8], replyCore: [UInt8]) -> Keys {
        let prk = KeyDerivation.extract(inputKeyMaterial: shared, salt: extractLabel + BLAKE2b.hash256(hello + replyCore))
        return Keys(
            responderFinished: KeyDerivation.expand(prk, subkeyID: 1, context: keyContext),
            initiatorFinished: KeyDerivation.expand(prk, subkeyID: 2, context: keyContext),
            initiatorToResponder: KeyDerivation.expand(prk, subkeyID: 3, context: keyContext),
            responderToInitiator: KeyDerivation.expand(prk, subkeyID: 4, context: keyContext)
        )
    }

    // MARK: Failing

    private mutating func fail(_ reason: Reason, _ detail: String) -> [Action] {
        state = .done
        return [.fail(HandshakeFailure(reason: reason, claimedPeer: claimedPeer, detail: detail))]
    }

    private mutating func refuse(
        _ code: HandshakeMessage.Refusal.Code,
        _ reason: Reason,
        _ detail: String
    ) -> [Action] {
        let refusal = HandshakeMessage.refusal(.init(code: code, planHash: context.planHash)).encoded
        return [.send(refusal)] + fail(reason, detail)
    }
}

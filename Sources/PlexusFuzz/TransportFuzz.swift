import NIOCore
import PlexusCore
import PlexusCrypto
import PlexusTransport

/// Handshake messages: decode raw bytes; what decodes re-encodes to the same bytes — except a
/// refusal's version byte: refusals of any version are read (a peer of another version can still
/// say why it refuses) and always written with this one's.
enum HandshakeMessageFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let message = try? HandshakeMessage.decode(bytes) else { return }
        var encoded = message.encoded
        if case .refusal = message, encoded.count > 4, bytes.count > 4 { encoded[4] = bytes[4] }
        fuzzCheck(encoded == bytes, "handshake message does not re-encode to its bytes")
    }
}

/// The length-prefixed framing, as a stream cut at fuzzer-chosen points: the frames are the same
/// however the bytes arrive, none exceeds the maximum, and a too-large declared length is an error.
enum FramingFuzz {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let maximum = Int(input.u16())
        let cuts = (0..<Int(input.byte() % 8)).map { _ in Int(input.u16()) }
        let stream = input.rest()
        let whole = frames(of: [stream], maximum: maximum)
        var pieces: [[UInt8]] = []
        var start = 0
        for cut in cuts.map({ $0 % (stream.count + 1) }).sorted() {
            pieces.append(Array(stream[start..<max(start, cut)]))
            start = max(start, cut)
        }
        pieces.append(Array(stream[start...]))
        let streamed = frames(of: pieces, maximum: maximum)
        fuzzCheck(whole.frames == streamed.frames && whole.failed == streamed.failed, "framing depends on how the bytes arrive")
        // The frames are exactly the stream's prefix, header by header.
        var rebuilt: [UInt8] = []
        for frame in whole.frames {
            fuzzCheck(frame.count <= maximum, "a frame exceeds the maximum")
            withUnsafeBytes(of: UInt32(frame.count).littleEndian) { rebuilt.append(contentsOf: $0) }
            rebuilt.append(contentsOf: frame)
        }
        fuzzCheck(Array(stream.prefix(rebuilt.count)) == rebuilt, "frames are not the stream's prefix")
    }

    static func frames(of pieces: [[UInt8]], maximum: Int) -> (frames: [[UInt8]], failed: Bool) {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        var out: [[UInt8]] = []
        for piece in pieces {
            buffer.writeBytes(piece)
            do {
                while let frame = try FrameDecoder.nextFrame(in: &buffer, maximum: maximum) {
                    out.append(Array(frame.readableBytesView))
                }
            } catch {
                return (out, true)
            }
        }
        return (out, false)
    }
}

/// The handshake state machine of one side (chosen by the fuzzer), against an honest peer whose
/// every frame the fuzzer may deliver, alter (bit flips, truncation, extension) or replace by
/// raw bytes; after establishment, records the same way. Oracles: nothing traps; a side that
/// establishes names the pinned peer; an unaltered record opens to what was sealed.
enum HandshakeFuzz {
    static let initiatorID = PeerID("p001")!
    static let responderID = PeerID("p000")!
    static let keys = [FuzzKeys.key(0), FuzzKeys.key(1)]
    static let peers = [responderID: keys[0].publicKey, initiatorID: keys[1].publicKey, PeerID("p002")!: FuzzKeys.key(2).publicKey]

    static func ephemeral(_ i: UInt8) -> X25519.EphemeralPrivateKey {
        var secret = [UInt8](repeating: 0x33, count: 32)
        secret[0] = i
        return X25519.EphemeralPrivateKey(secret: secret.withUnsafeBytes { SecureBytes(copying: $0) })
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let setup = input.byte()
        let plan = setup & 2 == 0 ? FuzzKeys.planHash : BLAKE2b.hash256([setup])
        var responder = HandshakeStateMachine(
            role: .responder, context: HandshakeContext(me: responderID, key: keys[0], planHash: FuzzKeys.planHash, peers: peers),
            ephemeral: ephemeral(0)
        )
        var initiator = HandshakeStateMachine(
            role: .initiator(expecting: setup & 4 == 0 ? responderID : PeerID("p002")!),
            context: HandshakeContext(me: initiatorID, key: keys[1], planHash: plan, peers: peers),
            ephemeral: ephemeral(1)
        )
        // Frames in flight to each side: [0] to the responder, [1] to the initiator.
        var inFlight: [[[UInt8]]] = [[], []]
        var ciphers: [SessionCipher?] = [nil, nil]
        var established: [PeerID?] = [nil, nil]
        var failed = [false, false]

        func apply(_ actions: [HandshakeStateMachine.Action], side: Int) {
            for action in actions {
                switch action {
                case .send(let frame): inFlight[1 - side].append(frame)
                case .established(let peer, let cipher):
                    established[side] = peer
                    ciphers[side] = cipher
                case .fail: failed[side] = true
                }
            }
        }
        apply(initiator.start(), side: 1)
        var steps = 0
        while !input.isAtEnd && steps < 24 {
            steps += 1
            let op = input.byte()
            let side = Int(op & 1)
            if let cipher = ciphers[1 - side], ciphers[side] != nil, op & 0x10 != 0 {
                // Records after establishment: the peer seals, the fuzzer may alter, this side opens.
                var sender = cipher
                let kind = SessionCipher.Kind(rawValue: 1 + input.byte() % 5)!
                let payload = input.chunk()
                var record = sender.seal(kind, payload)
                ciphers[1 - side] = sender
                let altered = alter(&record, &input)
                var receiver = ciphers[side]!
                let opened = try? receiver.open(record)
                if !altered {
                    fuzzCheck(opened?.kind == kind && opened?.payload == payload, "an unaltered record did not open")
                }
                if opened != nil { ciphers[side] = receiver } else { ciphers[side] = nil }
                continue
            }
            var frame: [UInt8]
            if op & 0x20 != 0 || inFlight[side].isEmpty {
                frame = input.chunk()
            } else {
                frame = inFlight[side].removeFirst()
                _ = alter(&frame, &input)
            }
            if side == 0 { apply(responder.receive(frame), side: 0) } else { apply(initiator.receive(frame), side: 1) }
        }
        if let peer = established[0] { fuzzCheck(peer == initiatorID, "the responder established with \(peer)") }
        if let peer = established[1] { fuzzCheck(peer == responderID && setup & 4 == 0 && setup & 2 == 0, "the initiator established with \(peer)") }
        _ = failed
    }

    /// Maybe alters `bytes` (flip bits, truncate, extend); returns whether they changed.
    static func alter(_ bytes: inout [UInt8], _ input: inout FuzzInput) -> Bool {
        let original = bytes
        switch input.byte() % 8 {
        case 0:
            guard !bytes.isEmpty else { break }
            let i = input.below(bytes.count)
            bytes[i] ^= max(1, input.byte())
        case 1:
            bytes.removeLast(min(bytes.count, Int(input.byte())))
        case 2:
            bytes.append(contentsOf: input.take(Int(input.byte() % 16)))
        case 3:
            guard !bytes.isEmpty else { break }
            let i = input.below(bytes.count)
            bytes[i] = input.byte()
        default:
            break
        }
        return bytes != original
    }
}

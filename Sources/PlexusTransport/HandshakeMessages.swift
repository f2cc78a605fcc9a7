package import PlexusCore

/// The plaintext handshake messages (see `Handshake.md`, reproduced in the README).
///
/// Every message starts with the same header:
///
/// ```
/// "PLXS" (4 bytes) | version: u8 | type: u8 | …
/// ```
///
/// Peer ids are a u8 length then that many ASCII bytes, validated with ``PeerID``.
package enum HandshakeMessage: Equatable {
    /// msg 1, initiator → responder.
    case hello(Hello)
    /// msg 2, responder → initiator.
    case reply(Reply)
    /// msg 3, initiator → responder.
    case finish(Finish)
    /// Either side, instead of its next message: why it refuses the handshake.
    case refusal(Refusal)

    package static let magic: [UInt8] = Array("PLXS".utf8)
    /// 2: the session layer has `select` and `keepalive` records and only the pair's authority
    /// supersedes (see ``SessionTable``); a version-1 peer is refused by name (`versionMismatch`)
    /// instead of failing later on a record kind it does not know. 3: the `topology` record (the
    /// topology-file fingerprint, sent first on every session).
    package static let protocolVersion: UInt8 = 3

    package struct Hello: Equatable {
        package var version: UInt8
        package var planHash: [UInt8]
        package var initiator: PeerID
        package var responder: PeerID
        package var ephemeral: [UInt8]

        package init(version: UInt8, planHash: [UInt8], initiator: PeerID, responder: PeerID, ephemeral: [UInt8]) {
            self.version = version
            self.planHash = planHash
            self.initiator = initiator
            self.responder = responder
            self.ephemeral = ephemeral
        }
    }

    package struct Reply: Equatable {
        package var responder: PeerID
        package var ephemeral: [UInt8]
        package var signature: [UInt8]
        package var mac: [UInt8]

        package init(responder: PeerID, ephemeral: [UInt8], signature: [UInt8], mac: [UInt8]) {
            self.responder = responder
            self.ephemeral = ephemeral
            self.signature = signature
            self.mac = mac
        }

        /// The bytes of the reply up to and excluding the signature: what the keys are derived from.
        package var core: [UInt8] {
            var writer = ByteWriter(capacity: 80)
            HandshakeMessage.writeHeader(type: 2, into: &writer)
            HandshakeMessage.write(responder, into: &writer)
            writer.write(contentsOf: ephemeral)
            return writer.bytes
        }
    }

    package struct Finish: Equatable {
        package var signature: [UInt8]
        package var mac: [UInt8]

        package init(signature: [UInt8], mac: [UInt8]) {
            self.signature = signature
            self.mac = mac
        }
    }

    package struct Refusal: Equatable {
        package enum Code: UInt8 {
            case versionMismatch = 1
            case planMismatch = 2
            case unknownPeer = 3
            case wrongResponder = 4
        }
        package var code: Code
        /// The refusing side's plan hash, so the other side can log both.
        package var planHash: [UInt8]

        package init(code: Code, planHash: [UInt8]) {
            self.code = code
            self.planHash = planHash
        }
    }

    static func writeHeader(type: UInt8, version: UInt8 = protocolVersion, into writer: inout ByteWriter) {
        writer.write(contentsOf: magic)
        writer.write(version)
        writer.write(type)
    }

    static func write(_ id: PeerID, into writer: inout ByteWriter) {
        writer.write(peerID: id)
    }

    package var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 200)
        switch self {
        case .hello(let hello):
            HandshakeMessage.writeHeader(type: 1, version: hello.version, into: &writer)
            writer.write(contentsOf: hello.planHash)
            HandshakeMessage.write(hello.initiator, into: &writer)
            HandshakeMessage.write(hello.responder, into: &writer)
            writer.write(contentsOf: hello.ephemeral)
        case .reply(let reply):
            writer.write(contentsOf: reply.core)
            writer.write(contentsOf: reply.signature)
            writer.write(contentsOf: reply.mac)
        case .finish(let finish):
            HandshakeMessage.writeHeader(type: 3, into: &writer)
            writer.write(contentsOf: finish.signature)
            writer.write(contentsOf: finish.mac)
        case .refusal(let refusal):
            HandshakeMessage.writeHeader(type: 4, into: &writer)
            writer.write(refusal.code.rawValue)
            writer.write(contentsOf: refusal.planHash)
        }
        return writer.bytes
    }

    /// Why bytes are not a handshake message.
    package struct DecodingError: Error, Equatable, CustomStringConvertible {
        package var description: String
    }

    /// Parses untrusted bytes. A `hello` with another version parses (so it can be refused by
    /// name); every other message must carry ``protocolVersion``.
    package static func decode(_ bytes: [UInt8]) throws(DecodingError) -> HandshakeMessage {
        let parsed: HandshakeMessage?
        do {
            parsed = try bytes.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                return try parse(&reader)
            }
        } catch {
            throw DecodingError(description: "truncated handshake message: \(error)")
        }
        guard let parsed else {
            throw DecodingError(description: "not a Plexus handshake message (bad magic, version, type, peer id or trailing bytes)")
        }
        return parsed
    }

    private static func parse(_ reader: inout ByteReader) throws(ByteReader.Error) -> HandshakeMessage? {
        let magic = try reader.readSlice(4, "the magic")
        guard Array(magic) == HandshakeMessage.magic else { return nil }
        let version = try reader.readByte("the version")
        let type = try reader.readByte("the message type")
        let message: HandshakeMessage
        switch type {
        case 1:
            let plan = Array(try reader.readSlice(32, "the plan hash"))
            guard let initiator = try readID(&reader), let responder = try readID(&reader) else { return nil }
            let ephemeral = Array(try reader.readSlice(32, "the ephemeral key"))
            message = .hello(
                Hello(version: version, planHash: plan, initiator: initiator, responder: responder, ephemeral: ephemeral)
            )
        case 2 where version == protocolVersion:
            guard let responder = try readID(&reader) else { return nil }
            let ephemeral = Array(try reader.readSlice(32, "the ephemeral key"))
            let signature = Array(try reader.readSlice(64, "the signature"))
            let mac = Array(try reader.readSlice(32, "the MAC"))
            message = .reply(Reply(responder: responder, ephemeral: ephemeral, signature: signature, mac: mac))
        case 3 where version == protocolVersion:
            let signature = Array(try reader.readSlice(64, "the signature"))
            let mac = Array(try reader.readSlice(32, "the MAC"))
            message = .finish(Finish(signature: signature, mac: mac))
        case 4:
            guard let code = Refusal.Code(rawValue: try reader.readByte("the refusal code")) else { return nil }
            let plan = Array(try reader.readSlice(32, "the plan hash"))
            message = .refusal(Refusal(code: code, planHash: plan))
        default:
            return nil
        }
        guard reader.isAtEnd else { return nil }
        return message
    }

    private static func readID(_ reader: inout ByteReader) throws(ByteReader.Error) -> PeerID? {
        try reader.readPeerID()
    }
}

/// The first 8 bytes of a hash in hex, for log lines and refusal reasons.
package func shortHex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    for byte in bytes.prefix(8) {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return text
}

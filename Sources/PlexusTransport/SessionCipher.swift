package import PlexusCrypto

/// The record layer of one established session: XChaCha20-Poly1305 with one key per direction
/// and an implicit per-direction message counter as the nonce.
///
/// ```
/// sealed record = kind: u8 ‖ AEAD(key: k_dir, nonce: LE64(counter) ‖ 0^16,
///                                 ad: "plexus/1 record" ‖ kind, plaintext: payload)
///                 (payload + 17 bytes; the kind byte is authenticated as associated data)
/// ```
///
/// The counter is never sent: the receiver opens record *n* with nonce *n*, so a replayed,
/// reordered, dropped-then-resumed or altered record fails authentication, and the session closes.
package struct SessionCipher {
    package enum Kind: UInt8 {
        /// The responder's first record: key confirmation for the initiator. Empty payload.
        case ready = 1
        /// An application message.
        case message = 2
        /// "I keep another connection with you; this one closes now." Sent only by the pair's
        /// authority (the lower id, see ``SessionTable``), so the follower swaps sessions without
        /// reporting a close. Empty payload.
        case superseded = 3
        /// "This connection is the session": the authority's first record on a connection it
        /// chose. Payload: a ``SelectToken`` (16 bytes).
        case select = 4
        /// Sent when nothing else was sent for the keepalive interval, so the other side can tell
        /// a quiet session from a dead one. Empty payload; sealed and authenticated like a message.
        case keepalive = 5
        /// "My topology file's fingerprint is …": the first record after the handshake on every
        /// connection, and again when the file changes. Payload: 32 bytes. Informational only.
        case topology = 6
    }

    package enum OpenError: Error, Equatable, CustomStringConvertible {
        case authenticationFailed(counter: UInt64)
        case malformed
        case exhausted

        package var description: String {
            switch self {
            case .authenticationFailed(let counter):
                return "record \(counter) failed authentication (altered, replayed, reordered or garbage)"
            case .malformed: return "record has an unknown kind byte"
            case .exhausted: return "record counter exhausted"
            }
        }
    }

    /// Bytes a sealed record adds to its payload: the kind byte and the Poly1305 tag.
    package static let overhead = 1 + XChaCha20Poly1305.tagByteCount
    static let associatedData: [UInt8] = Array("plexus/1 record".utf8)

    private let sendKey: SecureBytes
    private let receiveKey: SecureBytes
    package private(set) var sendCounter: UInt64 = 0
    package private(set) var receiveCounter: UInt64 = 0

    package init(sendKey: SecureBytes, receiveKey: SecureBytes) {
        self.sendKey = sendKey
        self.receiveKey = receiveKey
    }

    /// The sealed record for `payload`, written straight into a new buffer.
    package mutating func seal(_ kind: Kind, _ payload: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(sendCounter < UInt64.max, "record counter exhausted")
        let nonce = XChaCha20Poly1305.counterNonce(sendCounter)
        sendCounter += 1
        let associatedData = Self.associatedData + [kind.rawValue]
        let key = sendKey
        return [UInt8](unsafeUninitializedCapacity: payload.count + Self.overhead) { buffer, count in
            buffer[0] = kind.rawValue
            XChaCha20Poly1305.seal(
                payload, into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[1...])), key: key, nonce: nonce,
                associatedData: associatedData
            )
            count = payload.count + Self.overhead
        }
    }

    package mutating func seal(_ kind: Kind, _ payload: [UInt8]) -> [UInt8] {
        payload.withUnsafeBytes { seal(kind, $0) }
    }

    /// Opens the next record. The counter only advances on success.
    package mutating func open(_ record: [UInt8]) throws(OpenError) -> (kind: Kind, payload: [UInt8]) {
        try record.withUnsafeBytes { raw in Result { () throws(OpenError) in try open(raw) } }.get()
    }

    package mutating func open(_ record: UnsafeRawBufferPointer) throws(OpenError) -> (kind: Kind, payload: [UInt8]) {
        guard receiveCounter < UInt64.max else { throw .exhausted }
        guard let first = record.first else { throw .authenticationFailed(counter: receiveCounter) }
        guard let kind = Kind(rawValue: first) else { throw .malformed }
        let payload: [UInt8]
        do {
            payload = try XChaCha20Poly1305.open(
                UnsafeRawBufferPointer(rebasing: record[1...]), key: receiveKey,
                nonce: XChaCha20Poly1305.counterNonce(receiveCounter), associatedData: Self.associatedData + [first]
            )
        } catch {
            throw .authenticationFailed(counter: receiveCounter)
        }
        receiveCounter += 1
        return (kind, payload)
    }
}

import PlexusCore

/// What peers say to each other, above the transport: one byte of type, then its body.
///
///     type 1  envelope          the body is a signed delta envelope (PlexusCodec's DeltaEnvelope)
///     type 2  keyframe request  the body is a u64 LE: the version of the sender's copy of the
///                               receiver's model (0 = none); the receiver answers with a keyframe,
///                               at most one per requester per round (further requests are
///                               counted as `keyframeBudget`)
///
/// The network shell seals these bytes in an authenticated session; the simulator carries them
/// as they are. Decoding is bounded: nothing is allocated beyond the input.
public enum GossipMessage: Hashable, Sendable {
    case envelope([UInt8])
    case keyframeRequest(heldVersion: UInt64)

    public func encoded() -> [UInt8] {
        switch self {
        case .envelope(let bytes):
            var out = [UInt8]()
            out.reserveCapacity(bytes.count + 1)
            out.append(1)
            out.append(contentsOf: bytes)
            return out
        case .keyframeRequest(let version):
            var w = ByteWriter(capacity: 9)
            w.write(2)
            w.write(littleEndian: version)
            return w.bytes
        }
    }

    public struct DecodingError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(decoding bytes: [UInt8]) throws(DecodingError) {
        guard let type = bytes.first else { throw DecodingError(description: "empty message") }
        switch type {
        case 1:
            self = .envelope(Array(bytes.dropFirst()))
        case 2:
            guard bytes.count == 9 else {
                throw DecodingError(description: "keyframe request of \(bytes.count) bytes; expected 9")
            }
            var version: UInt64 = 0
            for i in (1...8).reversed() { version = version << 8 | UInt64(bytes[i]) }
            self = .keyframeRequest(heldVersion: version)
        default:
            throw DecodingError(description: "unknown message type \(type); expected 1 (envelope) or 2 (keyframe request)")
        }
    }
}

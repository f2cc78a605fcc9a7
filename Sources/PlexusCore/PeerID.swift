/// The identifier of one peer in a Plexus network, as written in the topology file.
///
/// A peer id is 1–64 characters drawn from lowercase ASCII letters, digits, `-` and `_`.
/// The restriction keeps ids safe as file names (`<log-dir>/<peer>.jsonl`), as log metadata
/// and on the wire, where an id is carried as a length-prefixed ASCII string.
public struct PeerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The longest id accepted, in bytes.
    public static let maximumLength = 64

    /// The id's text. Always valid: the only way to build a `PeerID` is through ``init(_:)``.
    public let rawValue: String

    /// Validates `text` as a peer id.
    ///
    /// - Returns: `nil` when `text` is empty, longer than ``maximumLength`` or contains a
    ///   character other than `a`–`z`, `0`–`9`, `-` and `_`. ``problem(with:)`` says which.
    public init?(_ text: String) {
        guard Self.problem(with: text) == nil else { return nil }
        self.rawValue = text
    }

    /// Explains why `text` is not a valid peer id, or returns `nil` when it is one.
    public static func problem(with text: String) -> String? {
        let bytes = Array(text.utf8)
        if bytes.isEmpty { return "a peer id must not be empty" }
        if bytes.count > maximumLength {
            return "a peer id is at most \(maximumLength) characters, this one has \(bytes.count)"
        }
        for byte in bytes where !isAllowed(byte) {
            return "a peer id may contain only lowercase letters, digits, '-' and '_'"
        }
        return nil
    }

    /// Whether `byte` may appear in a peer id.
    @inlinable
    public static func isAllowed(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x5F
    }

    public var description: String { rawValue }

    public static func < (lhs: PeerID, rhs: PeerID) -> Bool { lhs.rawValue < rhs.rawValue }
}

// Every binary format of Plexus writes a peer id the same way: its length (u8), then its ASCII bytes.

extension ByteWriter {
    /// Writes `id` as its length (u8) and its bytes.
    public mutating func write(peerID id: PeerID) {
        let bytes = Array(id.rawValue.utf8)
        write(UInt8(bytes.count))
        write(contentsOf: bytes)
    }
}

extension ByteReader {
    /// Reads what ``ByteWriter/write(peerID:)`` writes: `nil` when the bytes are not a valid peer
    /// id (empty, too long, a character outside the allowed set); throws only when cut short.
    public mutating func readPeerID(_ what: @autoclosure () -> String = "a peer id") throws(Error) -> PeerID? {
        let length = Int(try readByte(what() + " length"))
        let bytes = try readSlice(length, what())
        guard bytes.allSatisfy(PeerID.isAllowed) else { return nil }
        return PeerID(String(decoding: bytes, as: UTF8.self))
    }
}

import PlexusCore
import PlexusCrypto

/// Consumes fuzzer bytes as structured choices; reads past the end yield zeros, so every input
/// is a valid program.
struct FuzzInput {
    private let bytes: [UInt8]
    private var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { index >= bytes.count }
    var remaining: Int { max(0, bytes.count - index) }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func bool() -> Bool { byte() & 1 == 1 }

    mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }

    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }

    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// A value in 0..<bound (bound ≥ 1).
    mutating func below(_ bound: Int) -> Int { Int(u16()) % bound }

    mutating func take(_ count: Int) -> [UInt8] {
        let n = min(max(0, count), remaining)
        defer { index += n }
        return Array(bytes[index..<(index + n)])
    }

    /// A length-prefixed chunk (u16 length).
    mutating func chunk() -> [UInt8] { take(Int(u16())) }

    mutating func rest() -> [UInt8] { take(remaining) }

    /// A u64 that is usually small or near an edge, sometimes arbitrary.
    mutating func interesting64() -> UInt64 {
        switch byte() % 8 {
        case 0: 0
        case 1: 1
        case 2: UInt64(byte())
        case 3: UInt64.max - UInt64(byte())
        case 4: (1 << 32) + UInt64(byte()) &- 128
        case 5: (1 << 40) + UInt64(byte()) &- 128
        case 6: (1 << 62) + UInt64(byte()) &- 128
        default: u64()
        }
    }
}

/// Deterministic keys for the harnesses' peers.
enum FuzzKeys {
    static func key(_ i: UInt8) -> Ed25519.PrivateKey {
        var seed = [UInt8](repeating: 0x5A, count: 32)
        seed[0] = i
        return try! Ed25519.PrivateKey(rawRepresentation: seed.withUnsafeBytes { SecureBytes(copying: $0) })
    }

    static let planHash = BLAKE2b.hash256(Array("plexus fuzz plan".utf8))

    /// The state key the state-file target authenticates with (a node's is random; this one is fixed).
    static let stateKey = SecureBytes(count: 32) { $0.initializeMemory(as: UInt8.self, repeating: 0x42) }

    /// The MAC a state file ends with under ``stateKey``.
    static func stateMAC(_ body: [UInt8]) -> [UInt8] { LocalFileMAC.mac(body, key: stateKey) }

    /// A local file (state, statistics) from fuzzer bytes: the first byte picks the trailer the
    /// rest gets — the MAC under ``stateKey`` (version 2), the plain checksum (version 1) or none.
    static func localFile(_ bytes: [UInt8]) -> [UInt8]? {
        guard let first = bytes.first else { return nil }
        let body = Array(bytes.dropFirst())
        switch first & 3 {
        case 0: return body + stateMAC(body)
        case 1: return body + BLAKE2b.hash256(body)
        default: return body
        }
    }
}

func allFinite(_ values: some Sequence<Float>) -> Bool { values.allSatisfy(\.isFinite) }

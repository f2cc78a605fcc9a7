internal import CSodium

/// Ephemeral X25519 Diffie–Hellman (libsodium's `crypto_scalarmult_curve25519`), for the
/// forward secrecy of PlexusTransport's handshake.
///
/// The secret scalar lives in ``SecureBytes`` and is wiped when the key is released; a key is
/// meant to be used for exactly one handshake and then dropped.
public enum X25519 {
    /// Bytes in a public key, a secret scalar and a shared secret.
    public static let keyByteCount = 32

    public enum Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        /// The peer's public key has the wrong length.
        case wrongLength(expected: Int, actual: Int)
        /// The shared secret is all zeros: the peer sent a small-order point, which would let
        /// it force a known key. libsodium's `crypto_scalarmult` refuses it.
        case weakPublicKey

        public var description: String {
            switch self {
            case .wrongLength(let expected, let actual):
                return "expected a \(expected)-byte X25519 public key, got \(actual) bytes"
            case .weakPublicKey:
                return "the X25519 public key is a small-order point (the shared secret would be all zeros)"
            }
        }
    }

    /// A fresh ephemeral key pair.
    public struct EphemeralPrivateKey: Sendable, CustomStringConvertible {
        private let secret: SecureBytes
        public let publicKey: [UInt8]

        /// A new key from the system CSPRNG.
        public init() {
            self.init(secret: SecureBytes(randomCount: X25519.keyByteCount))
        }

        /// The key whose scalar is `secret` (32 bytes). For test vectors; real keys use ``init()``.
        public init(secret: SecureBytes) {
            precondition(secret.count == X25519.keyByteCount, "an X25519 scalar is 32 bytes")
            Sodium.ensureInitialized()
            var publicKey = [UInt8](repeating: 0, count: X25519.keyByteCount)
            let rc = secret.withUnsafeBytes { sk in
                publicKey.withUnsafeMutableBufferPointer { pk in
                    crypto_scalarmult_curve25519_base(pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            precondition(rc == 0, "crypto_scalarmult_curve25519_base failed")
            self.secret = secret
            self.publicKey = publicKey
        }

        /// The raw X25519 shared secret with `peerPublicKey`. Hash it (``KeyDerivation``) before use.
        ///
        /// - Throws: ``X25519/Error/weakPublicKey`` for small-order points.
        public func sharedSecret(with peerPublicKey: [UInt8]) throws(X25519.Error) -> SecureBytes {
            guard peerPublicKey.count == X25519.keyByteCount else {
                throw .wrongLength(expected: X25519.keyByteCount, actual: peerPublicKey.count)
            }
            var rc: Int32 = 0
            let shared = secret.withUnsafeBytes { sk in
                SecureBytes(count: X25519.keyByteCount) { out in
                    rc = peerPublicKey.withUnsafeBufferPointer { pk in
                        crypto_scalarmult_curve25519(
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            pk.baseAddress!
                        )
                    }
                }
            }
            guard rc == 0 else { throw .weakPublicKey }
            return shared
        }

        public var description: String { "X25519.EphemeralPrivateKey(redacted)" }
    }
}

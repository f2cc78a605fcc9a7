internal import CSodium

/// Ed25519 signatures (libsodium's `crypto_sign_*`), in the shape of swift-crypto's `Curve25519.Signing`.
public enum Ed25519 {
    /// Bytes in a public key.
    public static let publicKeyByteCount = 32
    /// Bytes in a private key's seed, which is what key files hold.
    public static let seedByteCount = 32
    /// Bytes in a signature.
    public static let signatureByteCount = 64

    /// A signing key. Its bytes live in ``SecureBytes`` and are wiped when the key is released.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        /// The 32-byte seed: the key's raw representation and the content of a key file.
        public let rawRepresentation: SecureBytes
        /// libsodium's 64-byte expanded secret key (seed ‖ public key).
        private let expanded: SecureBytes
        public let publicKey: PublicKey

        /// A new random key.
        public init() {
            self.init(validatedSeed: SecureBytes(randomCount: Ed25519.seedByteCount))
        }

        /// The key whose seed is `seed`.
        ///
        /// - Throws: ``KeyError/wrongLength(expected:actual:)`` unless `seed` is 32 bytes.
        public init(rawRepresentation seed: SecureBytes) throws(KeyError) {
            guard seed.count == Ed25519.seedByteCount else {
                throw .wrongLength(expected: Ed25519.seedByteCount, actual: seed.count)
            }
            self.init(validatedSeed: seed)
        }

        private init(validatedSeed seed: SecureBytes) {
            Sodium.ensureInitialized()
            var publicBytes = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
            let expanded = seed.withUnsafeBytes { seedBytes in
                SecureBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { secret in
                    let rc = publicBytes.withUnsafeMutableBufferPointer { pk in
                        crypto_sign_seed_keypair(
                            pk.baseAddress!,
                            secret.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            seedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        )
                    }
                    precondition(rc == 0, "crypto_sign_seed_keypair failed")
                }
            }
            self.rawRepresentation = seed
            self.expanded = expanded
            self.publicKey = PublicKey(validatedBytes: publicBytes)
        }

        /// An Ed25519 signature of `message`.
        public func signature(for message: UnsafeRawBufferPointer) -> [UInt8] {
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
            expanded.withUnsafeBytes { secret in
                signature.withUnsafeMutableBufferPointer { sig in
                    let rc = crypto_sign_detached(
                        sig.baseAddress!,
                        nil,
                        message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        UInt64(message.count),
                        secret.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    )
                    precondition(rc == 0, "crypto_sign_detached failed")
                }
            }
            return signature
        }

        public func signature(for message: [UInt8]) -> [UInt8] {
            message.withUnsafeBytes { signature(for: $0) }
        }

        /// Never shows the secret: only the public key.
        public var description: String { "Ed25519.PrivateKey(public: \(publicKey.base64))" }
    }

    /// A verification key, as pinned in a topology file.
    public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
        public let rawRepresentation: [UInt8]

        /// - Throws: ``KeyError/wrongLength(expected:actual:)`` unless `bytes` is 32 bytes,
        ///   ``KeyError/notOnCurve`` when they do not encode a usable point.
        public init(rawRepresentation bytes: [UInt8]) throws(KeyError) {
            guard bytes.count == Ed25519.publicKeyByteCount else {
                throw .wrongLength(expected: Ed25519.publicKeyByteCount, actual: bytes.count)
            }
            Sodium.ensureInitialized()
            // Reject small-order and non-canonical encodings: such a key would accept forgeries.
            var curve = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
            let rc = crypto_sign_ed25519_pk_to_curve25519(&curve, bytes)
            guard rc == 0 else { throw .notOnCurve }
            self.rawRepresentation = bytes
        }

        init(validatedBytes bytes: [UInt8]) { self.rawRepresentation = bytes }

        /// Parses the 44-character standard base64 form used in topology files and by `plexus pubkey`.
        public init(base64 text: String) throws(KeyError) {
            guard let bytes = Base64.decode(text), bytes.count == Ed25519.publicKeyByteCount else {
                throw .malformedBase64(expectedBytes: Ed25519.publicKeyByteCount)
            }
            try self.init(rawRepresentation: bytes)
        }

        /// Standard base64 with padding: 44 characters.
        public var base64: String { Base64.encode(rawRepresentation) }

        /// Whether `signature` is a valid signature of `message` by this key.
        public func isValidSignature(_ signature: UnsafeRawBufferPointer, for message: UnsafeRawBufferPointer) -> Bool {
            guard signature.count == Ed25519.signatureByteCount else { return false }
            return rawRepresentation.withUnsafeBufferPointer { pk in
                crypto_sign_verify_detached(
                    signature.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(message.count),
                    pk.baseAddress!
                ) == 0
            }
        }

        public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
            signature.withUnsafeBytes { s in message.withUnsafeBytes { m in isValidSignature(s, for: m) } }
        }

        public var description: String { base64 }
    }

    public enum KeyError: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongLength(expected: Int, actual: Int)
        case malformedBase64(expectedBytes: Int)
        case notOnCurve

        public var description: String {
            switch self {
            case .wrongLength(let expected, let actual):
                return "expected a \(expected)-byte key, got \(actual) bytes"
            case .malformedBase64(let expectedBytes):
                let characters = (expectedBytes + 2) / 3 * 4
                return "expected \(characters) characters of standard base64 encoding \(expectedBytes) bytes"
            case .notOnCurve:
                return "the bytes are not a valid Ed25519 public key (not a point on the curve)"
            }
        }
    }
}

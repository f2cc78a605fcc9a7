internal import CSodium

/// XChaCha20-Poly1305 AEAD (libsodium's `crypto_aead_xchacha20poly1305_ietf_*`).
///
/// PlexusTransport uses it with one key per direction and per session and a nonce made of a
/// message counter, so a reordered, replayed or altered record fails to open.
public enum XChaCha20Poly1305 {
    public static let keyByteCount = 32
    public static let nonceByteCount = 24
    /// The Poly1305 tag appended to every ciphertext.
    public static let tagByteCount = 16

    public struct AuthenticationFailure: Error, Equatable, Sendable, CustomStringConvertible {
        public init() {}
        public var description: String { "the record failed authentication (altered, replayed, reordered or sealed with another key)" }
    }

    /// The nonce for message number `counter`: the counter in little-endian, then zeros.
    public static func counterNonce(_ counter: UInt64) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: nonceByteCount)
        var value = counter.littleEndian
        withUnsafeBytes(of: &value) { for i in 0..<8 { nonce[i] = $0[i] } }
        return nonce
    }

    /// `plaintext` encrypted and authenticated together with `associatedData`; `tagByteCount` longer.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        key: SecureBytes,
        nonce: [UInt8],
        associatedData: [UInt8] = []
    ) -> [UInt8] {
        precondition(key.count == keyByteCount && nonce.count == nonceByteCount)
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        var written: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            out.withUnsafeMutableBufferPointer { o in
                associatedData.withUnsafeBufferPointer { ad in
                    crypto_aead_xchacha20poly1305_ietf_encrypt(
                        o.baseAddress!, &written,
                        plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                        ad.baseAddress, UInt64(ad.count), nil, nonce,
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    )
                }
            }
        }
        precondition(rc == 0 && Int(written) == out.count, "crypto_aead_xchacha20poly1305_ietf_encrypt failed")
        return out
    }

    /// Seals `plaintext` into `output` (exactly `plaintext.count + tagByteCount` bytes), with no
    /// intermediate copy: for large records written straight into an I/O buffer.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer,
        key: SecureBytes,
        nonce: [UInt8],
        associatedData: [UInt8] = []
    ) {
        precondition(key.count == keyByteCount && nonce.count == nonceByteCount)
        precondition(output.count == plaintext.count + tagByteCount, "output must be plaintext + tag bytes")
        Sodium.ensureInitialized()
        var written: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            associatedData.withUnsafeBufferPointer { ad in
                crypto_aead_xchacha20poly1305_ietf_encrypt(
                    output.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                    ad.baseAddress, UInt64(ad.count), nil, nonce,
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
            }
        }
        precondition(rc == 0 && Int(written) == output.count, "crypto_aead_xchacha20poly1305_ietf_encrypt failed")
    }

    public static func seal(_ plaintext: [UInt8], key: SecureBytes, nonce: [UInt8], associatedData: [UInt8] = []) -> [UInt8] {
        plaintext.withUnsafeBytes { seal($0, key: key, nonce: nonce, associatedData: associatedData) }
    }

    /// The plaintext of `ciphertext`, or ``AuthenticationFailure``.
    public static func open(
        _ ciphertext: UnsafeRawBufferPointer,
        key: SecureBytes,
        nonce: [UInt8],
        associatedData: [UInt8] = []
    ) throws(AuthenticationFailure) -> [UInt8] {
        precondition(key.count == keyByteCount && nonce.count == nonceByteCount)
        guard ciphertext.count >= tagByteCount else { throw AuthenticationFailure() }
        Sodium.ensureInitialized()
        // At least one byte, so the buffer always has a base address; trimmed after.
        var out = [UInt8](repeating: 0, count: max(ciphertext.count - tagByteCount, 1))
        var written: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            out.withUnsafeMutableBufferPointer { o in
                associatedData.withUnsafeBufferPointer { ad in
                    crypto_aead_xchacha20poly1305_ietf_decrypt(
                        o.baseAddress!, &written, nil,
                        ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                        ad.baseAddress, UInt64(ad.count), nonce,
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    )
                }
            }
        }
        guard rc == 0 else { throw AuthenticationFailure() }
        out.removeLast(out.count - Int(written))
        return out
    }

    public static func open(_ ciphertext: [UInt8], key: SecureBytes, nonce: [UInt8], associatedData: [UInt8] = []) throws(AuthenticationFailure) -> [UInt8] {
        let result = ciphertext.withUnsafeBytes { c in
            Result { () throws(AuthenticationFailure) in try open(c, key: key, nonce: nonce, associatedData: associatedData) }
        }
        return try result.get()
    }
}

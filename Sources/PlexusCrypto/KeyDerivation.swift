internal import CSodium

/// Key derivation and message authentication from libsodium's BLAKE2b, in HKDF's two steps.
///
/// - ``extract(inputKeyMaterial:salt:)``: PRK = BLAKE2b-256 keyed with the input key material
///   (a Diffie–Hellman output) over a context string and transcript hash — the construction
///   libsodium's documentation gives for hashing a `crypto_scalarmult` result.
/// - ``expand(_:subkeyID:context:)``: `crypto_kdf_derive_from_key`, i.e. BLAKE2b keyed with the
///   PRK, personalised with an 8-byte context and salted with a 64-bit subkey id.
/// - ``authenticationCode(key:message:)``: keyed BLAKE2b-256 used as a MAC, checked in constant time.
public enum KeyDerivation {
    /// Bytes in a PRK, a subkey and a MAC.
    public static let keyByteCount = 32

    /// HKDF-Extract with keyed BLAKE2b-256.
    public static func extract(inputKeyMaterial: SecureBytes, salt: [UInt8]) -> SecureBytes {
        precondition(inputKeyMaterial.count >= 16 && inputKeyMaterial.count <= 64, "BLAKE2b keys are 16…64 bytes")
        Sodium.ensureInitialized()
        return inputKeyMaterial.withUnsafeBytes { key in
            SecureBytes(count: keyByteCount) { out in
                let rc = salt.withUnsafeBufferPointer { message in
                    crypto_generichash(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), keyByteCount,
                        message.baseAddress, UInt64(message.count),
                        key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count
                    )
                }
                precondition(rc == 0, "crypto_generichash failed")
            }
        }
    }

    /// HKDF-Expand with `crypto_kdf_derive_from_key`: a 32-byte subkey of `prk`.
    ///
    /// - Parameter context: exactly 8 ASCII characters naming the protocol (libsodium's rule).
    public static func expand(_ prk: SecureBytes, subkeyID: UInt64, context: String) -> SecureBytes {
        let contextBytes = Array(context.utf8)
        precondition(contextBytes.count == Int(crypto_kdf_CONTEXTBYTES), "a crypto_kdf context is 8 bytes")
        precondition(prk.count == Int(crypto_kdf_KEYBYTES), "a crypto_kdf master key is 32 bytes")
        Sodium.ensureInitialized()
        let ctx = contextBytes.map { CChar(bitPattern: $0) }
        return prk.withUnsafeBytes { key in
            SecureBytes(count: keyByteCount) { out in
                let rc = crypto_kdf_derive_from_key(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), keyByteCount, subkeyID, ctx,
                    key.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
                precondition(rc == 0, "crypto_kdf_derive_from_key failed")
            }
        }
    }

    /// Keyed BLAKE2b-256 of `message`: a 32-byte MAC. Compare MACs with ``constantTimeEquals(_:_:)``.
    public static func authenticationCode(key: SecureBytes, message: [UInt8]) -> [UInt8] {
        precondition(key.count >= 16 && key.count <= 64, "BLAKE2b keys are 16…64 bytes")
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: keyByteCount)
        key.withUnsafeBytes { k in
            let rc = out.withUnsafeMutableBufferPointer { o in
                message.withUnsafeBufferPointer { m in
                    crypto_generichash(
                        o.baseAddress!, keyByteCount, m.baseAddress, UInt64(m.count),
                        k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count
                    )
                }
            }
            precondition(rc == 0, "crypto_generichash failed")
        }
        return out
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths (`sodium_memcmp`).
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    Sodium.ensureInitialized()
    return a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in sodium_memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}

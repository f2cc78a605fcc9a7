import PlexusCrypto
import Testing

@Suite struct TransportCryptoTests {
    @Test func x25519AgreesBothWays() throws {
        let a = X25519.EphemeralPrivateKey()
        let b = X25519.EphemeralPrivateKey()
        let ab = try a.sharedSecret(with: b.publicKey)
        let ba = try b.sharedSecret(with: a.publicKey)
        #expect(ab == ba)
        #expect(ab.count == 32)
        #expect(!String(describing: a).contains("\(a.publicKey)"))
    }

    @Test func x25519RefusesSmallOrderPoints() {
        let a = X25519.EphemeralPrivateKey()
        #expect(throws: X25519.Error.weakPublicKey) { try a.sharedSecret(with: [UInt8](repeating: 0, count: 32)) }
        var one = [UInt8](repeating: 0, count: 32)
        one[0] = 1
        #expect(throws: X25519.Error.weakPublicKey) { try a.sharedSecret(with: one) }
        #expect(throws: X25519.Error.self) { try a.sharedSecret(with: [1, 2, 3]) }
    }

    /// RFC 7748 §6.1 Diffie–Hellman test vector.
    @Test func rfc7748Vector() throws {
        let alice = X25519.EphemeralPrivateKey(secret: secure("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        #expect(alice.publicKey == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        let bob = X25519.EphemeralPrivateKey(secret: secure("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(bob.publicKey == hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let shared = try alice.sharedSecret(with: bob.publicKey)
        #expect(shared == secure("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"))
    }

    @Test func keyDerivationSeparatesSubkeysAndContexts() {
        let ikm = SecureBytes(randomCount: 32)
        let prk = KeyDerivation.extract(inputKeyMaterial: ikm, salt: Array("salt".utf8))
        #expect(prk == KeyDerivation.extract(inputKeyMaterial: ikm, salt: Array("salt".utf8)))
        #expect(prk != KeyDerivation.extract(inputKeyMaterial: ikm, salt: Array("salu".utf8)))
        let k1 = KeyDerivation.expand(prk, subkeyID: 1, context: "plxs1hsk")
        let k2 = KeyDerivation.expand(prk, subkeyID: 2, context: "plxs1hsk")
        let k1other = KeyDerivation.expand(prk, subkeyID: 1, context: "plxs1xxx")
        #expect(k1 != k2 && k1 != k1other)
        #expect(k1 == KeyDerivation.expand(prk, subkeyID: 1, context: "plxs1hsk"))
        #expect(String(describing: k1) == "SecureBytes(32 bytes, redacted)")
        let mac = KeyDerivation.authenticationCode(key: k1, message: [1, 2, 3])
        #expect(constantTimeEquals(mac, KeyDerivation.authenticationCode(key: k1, message: [1, 2, 3])))
        #expect(!constantTimeEquals(mac, KeyDerivation.authenticationCode(key: k2, message: [1, 2, 3])))
        #expect(!constantTimeEquals(mac, Array(mac.dropLast())))
    }

    @Test func aeadRoundTripAndRejections() throws {
        let key = SecureBytes(randomCount: 32)
        let nonce = XChaCha20Poly1305.counterNonce(7)
        let sealed = XChaCha20Poly1305.seal(Array("hello".utf8), key: key, nonce: nonce, associatedData: [9])
        #expect(sealed.count == 5 + 16)
        #expect(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: [9]) == Array("hello".utf8))
        var altered = sealed
        altered[0] ^= 1
        #expect(throws: XChaCha20Poly1305.AuthenticationFailure.self) {
            try XChaCha20Poly1305.open(altered, key: key, nonce: nonce, associatedData: [9])
        }
        #expect(throws: XChaCha20Poly1305.AuthenticationFailure.self) {
            try XChaCha20Poly1305.open(sealed, key: key, nonce: XChaCha20Poly1305.counterNonce(8), associatedData: [9])
        }
        #expect(throws: XChaCha20Poly1305.AuthenticationFailure.self) {
            try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: [])
        }
        #expect(throws: XChaCha20Poly1305.AuthenticationFailure.self) {
            try XChaCha20Poly1305.open([1, 2, 3], key: key, nonce: nonce)
        }
        let empty = XChaCha20Poly1305.seal([], key: key, nonce: nonce)
        #expect(try XChaCha20Poly1305.open(empty, key: key, nonce: nonce) == [])
    }
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = text.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        bytes.append(UInt8(String([high, low]), radix: 16)!)
    }
    return bytes
}

func secure(_ hexText: String) -> SecureBytes {
    hex(hexText).withUnsafeBytes { SecureBytes(copying: $0) }
}

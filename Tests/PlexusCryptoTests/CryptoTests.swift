import PlexusCrypto
import Testing

@Suite struct Ed25519Tests {
    @Test func signAndVerify() {
        let key = Ed25519.PrivateKey()
        let message: [UInt8] = Array("plexus".utf8)
        let signature = key.signature(for: message)
        #expect(signature.count == 64)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        var tampered = message
        tampered[0] ^= 1
        #expect(!key.publicKey.isValidSignature(signature, for: tampered))
        var badSignature = signature
        badSignature[63] ^= 0x80
        #expect(!key.publicKey.isValidSignature(badSignature, for: message))
    }

    /// RFC 8032 §7.1, test 1: the empty message under a fixed seed.
    @Test func rfc8032TestVector1() throws {
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        let key = try Ed25519.PrivateKey(rawRepresentation: seed.withUnsafeBytes { SecureBytes(copying: $0) })
        #expect(key.publicKey.rawRepresentation == hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"))
        let expected = hex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
        #expect(key.signature(for: []) == expected)
    }

    @Test func publicKeyBase64RoundTrip() throws {
        let key = Ed25519.PrivateKey()
        let text = key.publicKey.base64
        #expect(text.count == 44)
        #expect(try Ed25519.PublicKey(base64: text) == key.publicKey)
    }

    @Test(arguments: [
        "", "abc", "not base64 at all but forty-four chars long!",
        String(repeating: "A", count: 43), String(repeating: "A", count: 45),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  // canonical but only 32 zero bytes: small order
    ])
    func malformedPublicKeysAreRejected(_ text: String) {
        #expect(throws: Ed25519.KeyError.self) { try Ed25519.PublicKey(base64: text) }
    }

    @Test func privateKeyDescriptionNeverShowsTheSecret() throws {
        let key = Ed25519.PrivateKey()
        let seedText = key.rawRepresentation.withUnsafeBytes { Base64.encode($0) }
        #expect(!String(describing: key).contains(seedText))
        #expect(!String(reflecting: key.rawRepresentation).contains(seedText))
        #expect(String(describing: key.rawRepresentation).contains("redacted"))
    }
}

@Suite struct SecureBytesTests {
    @Test func constantTimeEquality() {
        let a = SecureBytes(copying: UnsafeRawBufferPointer(start: nil, count: 0))
        let b = SecureBytes(count: 0) { _ in }
        #expect(a == b)
        let x = [UInt8](repeating: 7, count: 32).withUnsafeBytes { SecureBytes(copying: $0) }
        let y = [UInt8](repeating: 7, count: 32).withUnsafeBytes { SecureBytes(copying: $0) }
        var zBytes = [UInt8](repeating: 7, count: 32)
        zBytes[31] = 8
        let z = zBytes.withUnsafeBytes { SecureBytes(copying: $0) }
        #expect(x == y)
        #expect(x != z)
        #expect(x != SecureBytes(randomCount: 31))
    }
}

@Suite struct BLAKE2bTests {
    /// BLAKE2b-256 of the empty string and of "abc" (reference values from the BLAKE2 reference implementation).
    @Test func knownAnswers() {
        #expect(BLAKE2b.hash256([]) == hex("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"))
        #expect(BLAKE2b.hash256(Array("abc".utf8)) == hex("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"))
    }

    @Test func incrementalEqualsOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var hasher = BLAKE2b()
        hasher.update(Array(data[0..<3]))
        hasher.update(Array(data[3..<999]))
        hasher.update(Array(data[999...]))
        #expect(hasher.finalize() == BLAKE2b.hash256(data))
    }
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        bytes.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
    }
    return bytes
}

internal import CSodium

/// Standard base64 (RFC 4648 §4, with padding), through libsodium's constant-time codec.
public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encode($0) }
    }

    public static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        Sodium.ensureInitialized()
        let variant = sodium_base64_VARIANT_ORIGINAL
        let length = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: length)
        _ = sodium_bin2base64(&out, length, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, variant)
        return String(decoding: out.prefix(length - 1).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes `text`; `nil` when it is not canonical standard base64.
    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        var out = [UInt8](repeating: 0, count: input.count / 4 * 3 + 3)
        let length = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { o in decodeSecret(i, into: o) } }
        guard let length else { return nil }
        return Array(out.prefix(length))
    }

    /// Decodes `input` into `output`, which must be large enough; returns the byte count, or
    /// `nil` unless all of `input` is standard base64. Used for secrets: neither side is copied.
    static func decodeSecret(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        Sodium.ensureInitialized()
        guard let inBase = input.baseAddress, input.count > 0 else { return nil }
        var length = 0
        var end: UnsafePointer<CChar>? = nil
        let chars = inBase.assumingMemoryBound(to: CChar.self)
        let rc = sodium_base642bin(
            output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count,
            chars, input.count, nil, &length, &end, sodium_base64_VARIANT_ORIGINAL
        )
        guard rc == 0, let end, chars.distance(to: end) == input.count else { return nil }
        return length
    }

    /// Encodes secret bytes into `output` (at least `encodedLength + 1` bytes, for the NUL libsodium writes).
    static func encodeSecret(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        Sodium.ensureInitialized()
        let variant = sodium_base64_VARIANT_ORIGINAL
        let length = sodium_base64_encoded_len(input.count, variant)
        precondition(output.count >= length, "base64 output buffer too small")
        _ = sodium_bin2base64(
            output.baseAddress!.assumingMemoryBound(to: CChar.self), length,
            input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count, variant
        )
        return length - 1
    }
}

internal import CSodium

/// BLAKE2b (libsodium's `crypto_generichash_blake2b`), incremental; unkeyed, or keyed as a MAC.
public struct BLAKE2b: ~Copyable {
    // libsodium wants this state 64-byte aligned; allocate it raw with that alignment.
    private let state: UnsafeMutableRawBufferPointer
    private let outputByteCount: Int

    /// A hasher producing `outputByteCount` bytes (16…64; default 32, BLAKE2b-256).
    public init(outputByteCount: Int = 32) {
        precondition(outputByteCount >= 16 && outputByteCount <= 64, "BLAKE2b output must be 16…64 bytes")
        Sodium.ensureInitialized()
        self.outputByteCount = outputByteCount
        self.state = .allocate(byteCount: crypto_generichash_blake2b_statebytes(), alignment: 64)
        let rc = CSodium_blake2b_init(state.baseAddress, outputByteCount)
        precondition(rc == 0, "crypto_generichash_blake2b_init failed")
    }

    /// A keyed hasher (BLAKE2b's built-in MAC mode) with a 16…64-byte secret key.
    public init(key: SecureBytes, outputByteCount: Int = 32) {
        precondition(outputByteCount >= 16 && outputByteCount <= 64, "BLAKE2b output must be 16…64 bytes")
        precondition(key.count >= 16 && key.count <= 64, "BLAKE2b keys are 16…64 bytes")
        Sodium.ensureInitialized()
        self.outputByteCount = outputByteCount
        self.state = .allocate(byteCount: crypto_generichash_blake2b_statebytes(), alignment: 64)
        let rc = key.withUnsafeBytes { CSodium_blake2b_init_keyed(state.baseAddress, $0.baseAddress, $0.count, outputByteCount) }
        precondition(rc == 0, "crypto_generichash_blake2b_init failed")
    }

    deinit {
        Sodium.memzero(state)
        state.deallocate()
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = CSodium_blake2b_update(state.baseAddress, base, UInt64(bytes.count))
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public mutating func update(_ text: String) { update(Array(text.utf8)) }

    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputByteCount)
        _ = out.withUnsafeMutableBytes { CSodium_blake2b_final(state.baseAddress, $0.baseAddress, outputByteCount) }
        return out
    }

    /// BLAKE2b-256 of `bytes`.
    public static func hash256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = BLAKE2b()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash256(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash256($0) }
    }
}

internal import CSodium

/// libsodium's one-time initialisation.
///
/// Every entry point of this module calls ``ensureInitialized()`` before its first libsodium
/// call; `sodium_init()` runs once per process and its result is checked.
enum Sodium {
    private static let initialized: Bool = {
        // 0: initialised now; 1: already initialised; -1: failure (no entropy source).
        sodium_init() >= 0
    }()

    static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise (sodium_init() returned -1): no entropy source?")
    }

    /// Fills `buffer` with bytes from the system CSPRNG.
    static func randomBytes(_ buffer: UnsafeMutableRawBufferPointer) {
        ensureInitialized()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }

    static func memzero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }
}

/// Random bytes from the operating system's CSPRNG (libsodium's `randombytes_buf`).
public func secureRandomBytes(count: Int) -> [UInt8] {
    precondition(count >= 0)
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { Sodium.randomBytes($0) }
    return bytes
}

internal import CSodium

/// Random numbers for privacy noise and secret sampling, from the operating system's CSPRNG
/// (libsodium's `randombytes_buf`), 4 KiB at a time. What a real node draws its differential-
/// privacy noise and its Poisson batches from: nothing a neighbour knows (the plan's seed is
/// public to every peer) can predict it.
///
/// A class, not a struct: a copy of a generator would replay the same numbers, and reusing noise
/// undoes it. Its buffer is wiped (`sodium_memzero`) as it is used up and on deinit: learning the
/// noise after the fact would let anyone subtract it.
public final class SystemNoiseGenerator: RandomNumberGenerator {
    private let buffer = NoiseBuffer()

    public init() { Sodium.ensureInitialized() }

    public func next() -> UInt64 {
        buffer.next { Sodium.randomBytes($0) }
    }
}

/// A deterministic CSPRNG: the ChaCha20 (IETF) keystream of a 32-byte key, the block counter in
/// the nonce. For the simulator and the bit-for-bit test flag: noise that is reproducible from a
/// key derived from the seed, and still a cryptographic stream. Never the default on a real node.
public final class DeterministicNoiseGenerator: RandomNumberGenerator {
    private let key: SecureBytes
    private let buffer = NoiseBuffer()
    private var block: UInt64 = 0

    /// - Parameter key: 32 bytes.
    public init(key: [UInt8]) {
        precondition(key.count == 32, "a ChaCha20 key is 32 bytes")
        self.key = SecureBytes(count: 32) { $0.copyBytes(from: key) }
    }

    /// A generator keyed by BLAKE2b-256 of `label` (e.g. "plexus.dp.noise|<seed>|<peer>"), so that
    /// no two peers or purposes share a stream.
    public convenience init(label: String) {
        self.init(key: BLAKE2b.hash256(Array(label.utf8)))
    }

    public func next() -> UInt64 {
        buffer.next { out in
            var nonce = [UInt8](repeating: 0, count: 12)
            withUnsafeBytes(of: block.littleEndian) { for i in 0..<8 { nonce[i] = $0[i] } }
            block &+= 1
            key.withUnsafeBytes { k in
                _ = crypto_stream_chacha20_ietf(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(out.count), nonce,
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }
}

/// 4 KiB of random bytes handed out eight at a time; each word is zeroed as it is taken.
private final class NoiseBuffer {
    static let size = 4096
    private let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: NoiseBuffer.size, alignment: 8)
    private var position = NoiseBuffer.size

    deinit {
        Sodium.memzero(storage)
        storage.deallocate()
    }

    func next(refill: (UnsafeMutableRawBufferPointer) -> Void) -> UInt64 {
        if position + 8 > Self.size {
            refill(storage)
            position = 0
        }
        let value = storage.load(fromByteOffset: position, as: UInt64.self)
        Sodium.memzero(UnsafeMutableRawBufferPointer(rebasing: storage[position..<(position + 8)]))
        position += 8
        return value
    }
}

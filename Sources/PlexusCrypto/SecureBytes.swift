internal import CSodium
#if canImport(Glibc)
internal import Glibc
#endif

/// Fixed-size storage for secret bytes.
///
/// - The whole allocation is wiped with `sodium_memzero` when the last reference goes away.
/// - It lives in pages of its own, excluded from core dumps (`madvise(MADV_DONTDUMP)`), so a
///   crash of the node never writes a key to disk.
/// - `==` compares in constant time (`sodium_memcmp`).
/// - `description` and `debugDescription` never show the contents.
///
/// Copies out of this storage (into `[UInt8]`, `String`, `Data`) are not wiped; code holding
/// secrets works on the buffer in place through ``withUnsafeBytes(_:)``.
public final class SecureBytes: @unchecked Sendable, Equatable, CustomStringConvertible,
    CustomDebugStringConvertible
{
    // Immutable after init; the only mutation is in init and deinit, hence @unchecked Sendable.
    private let storage: UnsafeMutableRawBufferPointer

    /// The number of secret bytes.
    public let count: Int

    /// `count` zero bytes, to be filled by `initializer`.
    public init(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(count >= 0)
        Sodium.ensureInitialized()
        // A mapping of its own (whole pages), so MADV_DONTDUMP covers exactly this storage, and
        // munmap on release returns it: marking heap pages instead would split the heap's
        // mappings for good, and a long-running node would creep toward vm.max_map_count.
        let buffer = Self.mapPages(count)
        do {
            try initializer(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            Sodium.memzero(buffer)
            Self.unmap(buffer)
            throw error
        }
        self.storage = buffer
        self.count = count
    }

    /// `count` bytes from the system CSPRNG.
    public convenience init(randomCount count: Int) {
        self.init(count: count) { Sodium.randomBytes($0) }
    }

    /// A copy of `bytes`. The caller remains responsible for wiping its own copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count) { $0.copyMemory(from: bytes) }
    }

    deinit {
        // Wipe the whole allocation, not just the bytes we think were used.
        Sodium.memzero(storage)
        Self.unmap(storage)
    }

    private static func mapPages(_ count: Int) -> UnsafeMutableRawBufferPointer {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = (max(count, 1) + page - 1) / page * page
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else { fatalError("SecureBytes: mmap of \(size) bytes failed (out of memory)") }
        #if os(Linux)
        _ = madvise(address, size, MADV_DONTDUMP)
        #endif
        // Anonymous pages are zero-filled by the kernel.
        return UnsafeMutableRawBufferPointer(start: address, count: size)
    }

    private static func unmap(_ buffer: UnsafeMutableRawBufferPointer) {
        _ = munmap(buffer.baseAddress, buffer.count)
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    public static func == (lhs: SecureBytes, rhs: SecureBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return sodium_memcmp(lhs.storage.baseAddress!, rhs.storage.baseAddress!, lhs.count) == 0
    }

    public var description: String { "SecureBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}

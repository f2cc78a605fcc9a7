import Foundation
import PlexusCrypto
import Testing

/// Secret storage is excluded from core dumps: the kernel marks its pages `dd` (VM_DONTDUMP).
@Suite struct CoreDumpTests {
    /// The VmFlags of the mapping holding `address`, from /proc/self/smaps.
    func flags(at address: UInt) throws -> [String]? {
        // procfs files report size 0, so read to EOF rather than by the file's size.
        let fd = open("/proc/self/smaps", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let smaps = String(decoding: bytes, as: UTF8.self)
        var inside = false
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), fields.count >= 5, !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= address && address < bounds[1]
            } else if inside, line.hasPrefix("VmFlags:") {
                return fields.dropFirst().map(String.init)
            }
        }
        return nil
    }

    @Test func secretPagesAreNotDumped() throws {
        let secret = SecureBytes(randomCount: 32)
        let address = secret.withUnsafeBytes { UInt(bitPattern: $0.baseAddress!) }
        let vmFlags = try #require(try flags(at: address))
        #expect(vmFlags.contains("dd"), "VmFlags \(vmFlags)")
        // An ordinary heap allocation is dumped as usual (the test can tell the difference).
        let ordinary = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { ordinary.deallocate() }
        let other = try #require(try flags(at: UInt(bitPattern: ordinary)))
        #expect(!other.contains("dd"), "VmFlags \(other)")
    }
}

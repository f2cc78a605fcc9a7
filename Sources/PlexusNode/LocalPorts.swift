#if canImport(Glibc)
import Glibc
#endif

/// Free TCP ports on 127.0.0.1, for local networks (`plexus demo`, tests).
public enum LocalPorts {
    /// Whether `port` can be bound on 127.0.0.1 right now.
    public static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// The first of `count` consecutive ports in 20000…60000 that are all free now, or nil.
    public static func freeRange(count: Int, attempts: Int = 200) -> Int? {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<attempts {
            let base = Int.random(in: 20000..<(60000 - count), using: &generator)
            if (base..<base + count).allSatisfy(isFree) { return base }
        }
        return nil
    }
}

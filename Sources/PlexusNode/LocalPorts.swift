import Foundation
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

    /// The first of `count` consecutive ports that are all free now, or nil. They are drawn from
    /// 20000 up to the start of the kernel's ephemeral range (`ip_local_port_range`, 32768 by
    /// default), never inside it: a port there can be taken at any moment by an outgoing
    /// connection's local end, and a node that then tries to listen on it fails to bind.
    public static func freeRange(count: Int, attempts: Int = 200) -> Int? {
        var generator = SystemRandomNumberGenerator()
        let top = ephemeralStart()
        let low = top - count > 20000 ? 20000 : 1024
        guard count > 0, top - count > low else { return nil }
        for _ in 0..<attempts {
            let base = Int.random(in: low..<(top - count), using: &generator)
            if (base..<base + count).allSatisfy(isFree) { return base }
        }
        return nil
    }

    /// The first port of the kernel's ephemeral range, or 32768 when it cannot be read.
    package static func ephemeralStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
              let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) }),
              (1025...65535).contains(first)
        else { return 32768 }
        return first
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Whether a TCP port can be bound, found by binding it (and letting go at once): for
/// `plexus run --check`, before the node itself tries.
enum PortProbe {
    /// `nil` when `host:port` can be bound now; otherwise why not, as a person would say it.
    static func problem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let info = result else { return "cannot resolve '\(host)': \(String(cString: gai_strerror(status)))" }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            return errno == EADDRINUSE ? "address already in use" : String(cString: strerror(errno))
        }
        return nil
    }
}

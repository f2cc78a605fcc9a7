#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a peer listens: a host name, IPv4 address or IPv6 address, and a TCP port.
///
/// Written `host:port` in a topology file; an IPv6 address MUST be in brackets: `[::1]:7400`.
/// Host names are 1–253 characters of dot-separated labels (letters, digits, `-`; each label
/// 1–63 characters, not starting or ending with `-`). Ports are 1–65535.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// The host, without brackets.
    public let host: String
    public let port: Int

    /// Builds an endpoint without checking it; ``parse(_:)`` checks.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Whether ``host`` is an IPv6 address (and so is written in brackets).
    public var isIPv6: Bool { host.contains(":") }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The form compared when looking for duplicates: the host lowercased.
    var normalised: String { description.lowercased() }

    /// Parses `text`, or explains what is wrong with it and what was expected.
    public static func parse(_ text: String) -> Result<Endpoint, EndpointError> {
        func fail(_ reason: String) -> Result<Endpoint, EndpointError> { .failure(EndpointError(reason: reason)) }
        let example = "expected host:port, e.g. 10.0.0.11:7400 or [fd00::11]:7400"
        guard !text.isEmpty else { return fail("the endpoint is empty; \(example)") }
        guard text.utf8.count <= 300 else { return fail("the endpoint is longer than 300 characters") }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return fail("missing ']' after the IPv6 address; \(example)") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return fail("missing ':PORT' after ']'; \(example)") }
            portText = rest.dropFirst()
            guard isIPv6Address(String(host)) else { return fail("'\(host)' is not a valid IPv6 address") }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return fail("missing port; \(example)") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return fail("an IPv6 address must be written in brackets, e.g. [\(host)]:\(portText)")
            }
            if let problem = hostProblem(host) { return fail(problem) }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let port = Int(portText), (1...65535).contains(port)
        else {
            return fail("port '\(portText)' must be a number from 1 to 65535")
        }
        return .success(Endpoint(host: String(host), port: port))
    }

    static func isIPv6Address(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 45 else { return false }
        var storage = in6_addr()
        return inet_pton(AF_INET6, text, &storage) == 1
    }

    static func hostProblem(_ host: Substring) -> String? {
        if host.isEmpty { return "the host is empty; expected host:port, e.g. 10.0.0.11:7400" }
        if host.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }) {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            let valid = parts.count == 4 && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && (Int(part).map { $0 <= 255 } ?? false)
            }
            return valid ? nil : "'\(host)' is not a valid IPv4 address"
        }
        if host.utf8.count > 253 { return "the host name is longer than 253 characters" }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            let allowed = bytes.allSatisfy { b in
                (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D
            }
            if bytes.isEmpty || bytes.count > 63 || !allowed || bytes.first == 0x2D || bytes.last == 0x2D {
                return "'\(host)' is not a valid host name (labels of letters, digits and '-', separated by dots)"
            }
        }
        return nil
    }
}

/// Why an endpoint string was rejected.
public struct EndpointError: Error, Hashable, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// An error the command has already phrased for the user: printed as `Error: <message>`, exit 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { self.description = message }
}

/// Unbuffered writes to the standard streams, for output that must not sit in a stdio buffer
/// (secrets, progress lines interleaved with other processes).
enum StandardStream {
    case output, error

    private var fd: Int32 { self == .output ? STDOUT_FILENO : STDERR_FILENO }

    func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    var isTerminal: Bool { isatty(fd) != 0 }
}

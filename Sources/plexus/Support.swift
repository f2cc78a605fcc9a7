import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// An error the command has already phrased for the user: printed as `Error: <message>`, exit 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { self.description = message }
}

/// `problem` as one `error:` line for standard error — unless it is already a compiler-style
/// diagnostic (`FILE:LINE[:COLUMN]: error: …` or `warning: …`), which is printed as it is rather
/// than as `error: FILE:LINE: error: …`.
func errorLine(_ problem: String) -> String {
    isDiagnostic(problem) ? problem : "error: " + problem
}

/// Whether `text` starts `FILE:LINE[:COLUMN]: error: ` or `…: warning: `.
func isDiagnostic(_ text: String) -> Bool {
    for severity in [": error: ", ": warning: "] {
        guard let found = text.firstRange(of: severity) else { continue }
        let position = text[..<found.lowerBound].split(separator: ":", omittingEmptySubsequences: false)
        // FILE:LINE or FILE:LINE:COLUMN, the numbers all digits.
        let numbers = position.suffix(position.count >= 3 && position[position.count - 2].allSatisfy(\.isNumber) ? 2 : 1)
        if position.count >= 2, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) { return true }
    }
    return false
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

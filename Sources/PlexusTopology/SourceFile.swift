#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TOMLKit

/// Reading a topology or plan file from disk and turning its text into a TOML table, with one
/// clear diagnostic for every way that can fail.
enum SourceFile {
    /// The largest file read: 16 MiB. A topology of thousands of peers is well under 1 MiB.
    static let maximumByteCount = 16 << 20

    /// Reads `path`: one file-level diagnostic when it does not exist, cannot be read, is a
    /// directory or is larger than ``maximumByteCount``; a positioned one when it is not UTF-8.
    static func read(path: String) -> Result<String, Diagnostic> {
        func failure(_ message: String) -> Result<String, Diagnostic> {
            .failure(Diagnostic(.error, message, path: path, at: .file))
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            switch code {
            case ENOENT: return failure("no such file")
            case EACCES: return failure("permission denied")
            default: return failure("cannot open the file: \(String(cString: strerror(code)))")
            }
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { return failure("cannot read the file: \(String(cString: strerror(errno)))") }
        if (info.st_mode & S_IFMT) == S_IFDIR { return failure("is a directory, not a file") }
        if (info.st_mode & S_IFMT) == S_IFREG && Int(info.st_size) > maximumByteCount {
            return failure("the file is \(info.st_size) bytes, larger than the \(maximumByteCount)-byte (16 MiB) limit")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return failure("cannot read the file: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maximumByteCount {
                return failure("the file is larger than the \(maximumByteCount)-byte (16 MiB) limit")
            }
        }
        return decode(bytes, path: path)
    }

    /// Checks that `bytes` are UTF-8 without NUL bytes; drops a leading byte-order mark.
    static func decode(_ bytes: [UInt8], path: String) -> Result<String, Diagnostic> {
        var body = bytes[...]
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        var line = 1, column = 1
        var iterator = body.makeIterator()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if let problem = textProblem(scalar, path: path, line: &line, column: &column) { return .failure(problem) }
            case .emptyInput:
                break loop
            case .error:
                return .failure(Diagnostic(.error, "the file is not valid UTF-8 text", path: path, at: .init(line: line, column: column)))
            }
        }
        return .success(String(decoding: body, as: UTF8.self))
    }

    /// A NUL byte or a control character TOML forbids, at `line`:`column`; otherwise advances
    /// the position past `scalar` and returns nil.
    private static func textProblem(_ scalar: Unicode.Scalar, path: String, line: inout Int, column: inout Int) -> Diagnostic? {
        if scalar == "\0" {
            return Diagnostic(.error, "the file contains a NUL byte; a TOML file is text", path: path, at: .init(line: line, column: column))
        }
        if let message = controlCharacterProblem(scalar) {
            return Diagnostic(.error, message, path: path, at: .init(line: line, column: column))
        }
        if scalar == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        return nil
    }

    /// Parses `source` as TOML, or returns the syntax error at its position. `index` MUST be
    /// the ``SourceIndex`` of `source`: inputs toml++ cannot take safely are rejected first.
    ///
    /// Known limitation: TOMLKit 0.6.0 never frees a parsed document (its tables have no
    /// `deinit` and CTOML exports no free function), so every parse leaks roughly the size of
    /// the document's tree. Loading on start-up and on each edit of the file is fine; parsing
    /// in a tight loop is not.
    static func parseTOML(_ source: String, path: String, index: SourceIndex) -> Result<TOMLTable, Diagnostic> {
        if source.utf8.count > maximumByteCount {
            return .failure(Diagnostic(.error, "the text is larger than the \(maximumByteCount)-byte (16 MiB) limit", path: path, at: .file))
        }
        var line = 1, column = 1
        for scalar in source.unicodeScalars {
            if let problem = textProblem(scalar, path: path, line: &line, column: &column) { return .failure(problem) }
        }
        // toml++ skips one leading byte-order mark of the text it is given; the SourceIndex does
        // not, so a construct toml++ asserts on could hide behind it on the first line
        // (`\u{FEFF}[,` aborted). A file's own BOM was dropped when it was read (`decode`), so one
        // here is a second BOM or text that never was a file: refuse it, like toml++ would not.
        if source.unicodeScalars.first == "\u{FEFF}" {
            return .failure(Diagnostic(
                .error, "the text starts with a byte-order mark (U+FEFF) after the file's own one was removed; remove it",
                path: path, at: .start
            ))
        }
        if let (position, message) = index.unsafeForTOMLKit {
            return .failure(Diagnostic(.error, "TOML syntax: \(message)", path: path, at: position))
        }
        do {
            return .success(try TOMLTable(string: source))
        } catch let error as TOMLParseError {
            let position = SourcePosition(line: max(1, error.source.begin.line), column: max(1, error.source.begin.column))
            return .failure(Diagnostic(.error, syntaxMessage(error.description), path: path, at: position))
        } catch {
            return .failure(Diagnostic(.error, "not valid TOML", path: path, at: .start))
        }
    }

    /// TOML allows no raw control character but tab, line feed and carriage return (in strings
    /// they must be escaped), so rejecting them up front is exact — and keeps bytes toml++
    /// handles with assertions away from it.
    static func controlCharacterProblem(_ scalar: Unicode.Scalar) -> String? {
        let v = scalar.value
        guard (v < 0x20 && v != 0x09 && v != 0x0A && v != 0x0D) || v == 0x7F else { return nil }
        let hex = String(v, radix: 16, uppercase: true)
        return "control character U+\(String(repeating: "0", count: 4 - hex.count))\(hex) is not allowed in TOML; write it as an escape inside a string"
    }

    /// toml++ says "Error while parsing key-value pair: encountered end-of-file"; we say
    /// "TOML syntax: encountered end-of-file (while parsing key-value pair)".
    static func syntaxMessage(_ raw: String) -> String {
        // An unclosed "…" string: toml++ reports the line feed (or the end of the file) it runs
        // into as a control character inside the string; the admin's mistake is the missing quote.
        if raw.contains("parsing string"), raw.contains("control characters") || raw.contains("end-of-file") {
            return "TOML syntax: unterminated string (a \"…\" string must close on the line it opens)"
        }
        let prefix = "Error while parsing "
        if raw.hasPrefix(prefix) {
            let rest = raw.dropFirst(prefix.count)
            if let colon = rest.firstIndex(of: ":") {
                let what = rest[..<colon]
                let detail = rest[rest.index(after: colon)...].drop(while: { $0 == " " })
                return "TOML syntax: \(detail) (while parsing \(what))"
            }
        }
        return "TOML syntax: \(raw)"
    }
}

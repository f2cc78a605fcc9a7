/// Where each table header, array-of-tables entry, key and value sits in a TOML source.
///
/// TOMLKit (toml++) reports positions only for syntax errors, and its tables do not keep the
/// order or position of their keys. Semantic diagnostics ("rounds must be ≥ 1") need the line
/// and column of the offending key, so this light scanner walks the text once and records them.
/// It is not a second TOML parser: it understands just enough lexical structure — comments,
/// the four string forms, arrays and inline tables spanning lines — to find where each
/// key/value pair starts. It runs only on text TOMLKit has accepted, but it MUST NOT trap or
/// loop on any input: every loop advances at least one byte, and nesting is bounded.
///
/// Sections are named by their header path joined with `.`; the N-th `[[peer]]` entry is the
/// section `peer#N` (0-based). Keys before any header belong to the section `""`.
package struct SourceIndex: Sendable {
    package struct Entry: Sendable {
        /// Where the key starts.
        package var key: SourcePosition
        /// Where the value starts.
        package var value: SourcePosition
        /// Where each element of an array value starts (empty for other values).
        package var elements: [SourcePosition]
    }

    private(set) var headers: [String: SourcePosition] = [:]
    /// The first construct toml++ (TOMLKit 0.6.0's parser) asserts on instead of reporting —
    /// undefined behaviour in release builds — with a syntax message. Text with one MUST be
    /// rejected before it reaches TOMLKit. Found by fuzzing: a table header whose name starts
    /// with neither a bare-key character nor a quote (`[[`x]]`), and an array element that
    /// starts with `}` (`[}1]`).
    package fileprivate(set) var unsafeForTOMLKit: (position: SourcePosition, message: String)?
    private(set) var entries: [String: Entry] = [:]
    private var arrayCounts: [String: Int] = [:]

    static let maximumNesting = 64

    package init(source: String) {
        var scanner = Scanner(bytes: Array(source.utf8))
        scanner.run(into: &self)
    }

    package func header(_ section: String) -> SourcePosition? { headers[section] }

    package func entry(_ section: String, _ key: String) -> Entry? { entries[Self.entryKey(section, key)] }

    private static func entryKey(_ section: String, _ key: String) -> String { section + "\u{1F}" + key }

    fileprivate mutating func addHeader(_ path: [String], isArray: Bool, at position: SourcePosition) -> String {
        var name = path.joined(separator: ".")
        if isArray {
            let n = arrayCounts[name, default: 0]
            arrayCounts[name] = n + 1
            name += "#\(n)"
        }
        if headers[name] == nil { headers[name] = position }
        return name
    }

    fileprivate mutating func addEntry(section: String, path: [String], entry: Entry) {
        guard let first = path.first else { return }
        let full = Self.entryKey(section, path.joined(separator: "."))
        if entries[full] == nil { entries[full] = entry }
        // `a.b = 1` is also found as key `a` of the section, for "unknown key 'a'".
        let head = Self.entryKey(section, first)
        if entries[head] == nil { entries[head] = entry }
    }
}

private struct Scanner {
    let bytes: [UInt8]
    var i = 0
    var line = 1
    var column = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { i >= bytes.count }
    var peek: UInt8 { i < bytes.count ? bytes[i] : 0 }
    func peek(_ offset: Int) -> UInt8 { i + offset < bytes.count ? bytes[i + offset] : 0 }
    var position: SourcePosition { SourcePosition(line: line, column: column) }

    mutating func advance() {
        guard i < bytes.count else { return }
        let b = bytes[i]
        i += 1
        if b == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else if b & 0xC0 != 0x80 {
            column += 1
        }
    }

    mutating func skipBlanks() {
        while peek == UInt8(ascii: " ") || peek == UInt8(ascii: "\t") { advance() }
    }

    mutating func skipToEndOfLine() {
        while !atEnd && peek != UInt8(ascii: "\n") { advance() }
        advance()
    }

    /// Blanks, newlines and comments, as found between array elements.
    mutating func skipTrivia() {
        while !atEnd {
            switch peek {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): advance()
            case UInt8(ascii: "#"):
                while !atEnd && peek != UInt8(ascii: "\n") { advance() }
            default: return
            }
        }
    }

    /// The first unsafe construct found (see ``SourceIndex/unsafeForTOMLKit``).
    var unsafe: (position: SourcePosition, message: String)?

    mutating func flag(_ message: String) {
        if unsafe == nil { unsafe = (position, message) }
    }

    /// The character at the cursor, quoted, for messages.
    func describeCurrent() -> String {
        guard i < bytes.count else { return "the end of the file" }
        switch bytes[i] {
        case UInt8(ascii: "\n"): return "a line break"
        case UInt8(ascii: "\r"): return "a carriage return"
        default:
            var end = i + 1
            while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
            return "'" + String(decoding: bytes[i..<end], as: UTF8.self) + "'"
        }
    }

    mutating func run(into index: inout SourceIndex) {
        defer { index.unsafeForTOMLKit = unsafe }
        var section = ""
        while !atEnd {
            let start = i
            skipBlanks()
            switch peek {
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                advance()
            case UInt8(ascii: "#"):
                skipToEndOfLine()
            case UInt8(ascii: "["):
                let at = position
                advance()
                let isArray = peek == UInt8(ascii: "[")
                if isArray { advance() }
                skipBlanks()
                let b = peek
                if !atEnd && !Self.isBareKeyByte(b) && b != UInt8(ascii: "\"") && b != UInt8(ascii: "'") && b != UInt8(ascii: "]") {
                    flag("expected a table name after '[', saw \(describeCurrent())")
                }
                let path = keyPath()
                section = index.addHeader(path, isArray: isArray, at: at)
                skipToEndOfLine()
            default:
                let at = position
                let path = keyPath()
                skipBlanks()
                if path.isEmpty || peek != UInt8(ascii: "=") {
                    skipToEndOfLine()
                } else {
                    advance()
                    skipBlanks()
                    let valueAt = position
                    var elements: [SourcePosition] = []
                    skipValue(depth: 0, elements: &elements)
                    index.addEntry(
                        section: section,
                        path: path,
                        entry: SourceIndex.Entry(key: at, value: valueAt, elements: elements)
                    )
                    skipToEndOfLine()
                }
            }
            if i == start { advance() }
        }
    }

    /// A dotted key: bare, "basic" or 'literal' parts separated by dots.
    mutating func keyPath() -> [String] {
        var parts: [String] = []
        while !atEnd {
            skipBlanks()
            let start = i
            switch peek {
            case UInt8(ascii: "\""):
                advance()
                var part: [UInt8] = []
                while !atEnd && peek != UInt8(ascii: "\"") && peek != UInt8(ascii: "\n") {
                    if peek == UInt8(ascii: "\\") { advance() }
                    part.append(peek)
                    advance()
                }
                advance()
                parts.append(String(decoding: part, as: UTF8.self))
            case UInt8(ascii: "'"):
                advance()
                let from = i
                while !atEnd && peek != UInt8(ascii: "'") && peek != UInt8(ascii: "\n") { advance() }
                parts.append(String(decoding: bytes[from..<i], as: UTF8.self))
                advance()
            default:
                while !atEnd && Self.isBareKeyByte(peek) { advance() }
                if i == start { return parts }
                parts.append(String(decoding: bytes[start..<i], as: UTF8.self))
            }
            skipBlanks()
            guard peek == UInt8(ascii: ".") else { return parts }
            advance()
        }
        return parts
    }

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
    }

    mutating func skipValue(depth: Int, elements: inout [SourcePosition]) {
        switch peek {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") {
                advance(); advance(); advance()
                while !atEnd {
                    if peek == UInt8(ascii: "\\") {
                        advance(); advance()
                    } else if peek == UInt8(ascii: "\"") && peek(1) == UInt8(ascii: "\"") && peek(2) == UInt8(ascii: "\"") {
                        advance(); advance(); advance()
                        while peek == UInt8(ascii: "\"") { advance() }
                        return
                    } else {
                        advance()
                    }
                }
            } else {
                advance()
                while !atEnd && peek != UInt8(ascii: "\"") && peek != UInt8(ascii: "\n") {
                    if peek == UInt8(ascii: "\\") { advance() }
                    advance()
                }
                if peek == UInt8(ascii: "\"") { advance() }
            }
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") {
                advance(); advance(); advance()
                while !atEnd {
                    if peek == UInt8(ascii: "'") && peek(1) == UInt8(ascii: "'") && peek(2) == UInt8(ascii: "'") {
                        advance(); advance(); advance()
                        while peek == UInt8(ascii: "'") { advance() }
                        return
                    }
                    advance()
                }
            } else {
                advance()
                while !atEnd && peek != UInt8(ascii: "'") && peek != UInt8(ascii: "\n") { advance() }
                if peek == UInt8(ascii: "'") { advance() }
            }
        case UInt8(ascii: "[") where depth < SourceIndex.maximumNesting:
            advance()
            var ignored: [SourcePosition] = []
            while !atEnd {
                let start = i
                skipTrivia()
                if peek == UInt8(ascii: "]") {
                    advance()
                    return
                }
                if peek == UInt8(ascii: "}") { flag("expected a value or ']' in the array, saw '}'") }
                if depth == 0 { elements.append(position) }
                skipValue(depth: depth + 1, elements: &ignored)
                skipTrivia()
                if peek == UInt8(ascii: ",") { advance() }
                if i == start { advance() }
            }
        case UInt8(ascii: "{") where depth < SourceIndex.maximumNesting:
            advance()
            var ignored: [SourcePosition] = []
            while !atEnd {
                let start = i
                skipBlanks()
                if peek == UInt8(ascii: "}") {
                    advance()
                    return
                }
                _ = keyPath()
                skipBlanks()
                if peek == UInt8(ascii: "=") {
                    advance()
                    skipBlanks()
                    skipValue(depth: depth + 1, elements: &ignored)
                }
                skipBlanks()
                if peek == UInt8(ascii: ",") { advance() }
                if peek == UInt8(ascii: "\n") { return }
                if i == start { advance() }
            }
        default:
            while !atEnd {
                switch peek {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"),
                    UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: "#"):
                    return
                default:
                    advance()
                }
            }
        }
    }
}

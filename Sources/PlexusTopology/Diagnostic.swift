/// A line and column in a source file, both 1-based. Columns count Unicode scalars.
///
/// Line 0 means "the file as a whole" (it does not exist, cannot be read, is too large):
/// such a diagnostic prints as `path: error: …` with no position.
public struct SourcePosition: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// The file as a whole.
    public static let file = SourcePosition(line: 0, column: 0)
    /// The first character of the file.
    public static let start = SourcePosition(line: 1, column: 1)

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// One problem (or remark) found in a topology or plan file, printed in compiler style:
///
///     Topologies/broken.toml:12:9: error: unknown peer 'sotuh' in link; did you mean 'south'?
///
/// Diagnostics are collected, never thrown one at a time: a file with five mistakes yields
/// five diagnostics, sorted by position.
public struct Diagnostic: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Severity: String, Hashable, Sendable, Codable, Comparable {
        case note
        case warning
        case error

        private var rank: Int {
            switch self {
            case .note: 0
            case .warning: 1
            case .error: 2
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }
    }

    public var severity: Severity
    public var message: String
    /// The file, as the user named it.
    public var path: String
    /// 1-based; 0 when the diagnostic is about the file as a whole.
    public var line: Int
    /// 1-based, in Unicode scalars; 0 when the diagnostic is about the file as a whole.
    public var column: Int

    public init(_ severity: Severity, _ message: String, path: String, at position: SourcePosition) {
        self.severity = severity
        self.message = message
        self.path = path
        self.line = position.line
        self.column = position.column
    }

    public var position: SourcePosition { SourcePosition(line: line, column: column) }

    /// `path:line:column: severity: message`, or `path: severity: message` for line 0.
    public var description: String {
        if line <= 0 { return "\(path): \(severity.rawValue): \(message)" }
        return "\(path):\(line):\(column): \(severity.rawValue): \(message)"
    }

    /// Sorts by position (file-level first), keeping the order of diagnostics at one position.
    public static func sorted(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        diagnostics.enumerated()
            .sorted { a, b in
                if a.element.position != b.element.position { return a.element.position < b.element.position }
                return a.offset < b.offset
            }
            .map(\.element)
    }
}

/// The error thrown when a file has at least one error-severity diagnostic.
///
/// ``diagnostics`` holds every diagnostic found, warnings included, sorted by position;
/// ``description`` is their compiler-style lines, one per line.
public struct TopologyError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(diagnostics: [Diagnostic]) {
        self.diagnostics = Diagnostic.sorted(diagnostics)
    }

    /// Only the errors.
    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics for one file.
struct DiagnosticCollector {
    let path: String
    private(set) var diagnostics: [Diagnostic] = []

    init(path: String) { self.path = path }

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    mutating func error(_ message: String, at position: SourcePosition) {
        diagnostics.append(Diagnostic(.error, message, path: path, at: position))
    }

    mutating func warning(_ message: String, at position: SourcePosition) {
        diagnostics.append(Diagnostic(.warning, message, path: path, at: position))
    }

    mutating func note(_ message: String, at position: SourcePosition) {
        diagnostics.append(Diagnostic(.note, message, path: path, at: position))
    }

    /// Throws everything collected when any of it is an error.
    func throwIfErrors() throws(TopologyError) {
        if hasErrors { throw TopologyError(diagnostics: diagnostics) }
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean …".
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

/// The candidate closest to `word`, when it is close enough to be a plausible typo:
/// at most 2 edits, and fewer edits than half the word's length.
func suggestion(for word: String, among candidates: some Sequence<String>) -> String? {
    guard word.unicodeScalars.count <= 128 else { return nil }
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(word.lowercased(), candidate)
        if d <= 2, d * 2 <= word.count, d < (best?.1 ?? Int.max) { best = (candidate, d) }
    }
    return best?.0
}

/// `" did you mean 'x'?"` or the empty string.
func didYouMean(_ word: String, among candidates: some Sequence<String>) -> String {
    if let s = suggestion(for: word, among: candidates) { return "; did you mean '\(s)'?" }
    return ""
}

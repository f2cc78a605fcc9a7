/// A problem with input data: a CSV file, a split file, a row filter, or a column mapping.
///
/// The description reads like a compiler diagnostic — `file:line:column: error: message` — and
/// names the column and quotes the bad value where there is one.
public struct DataError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem this is. A struct over a private enum, so cases can be added later.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: String, Sendable, Hashable {
            case unreadable, tooLarge, empty, malformed, raggedRow, missingColumn, duplicateColumn, notNumeric
            case missingValue, notBinary, negativeTime, noRows, badFilter, badSplit, badPlan
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The file cannot be opened or read.
        public static let unreadable = Code(.unreadable)
        /// The file is larger than the reader's size bound.
        public static let tooLarge = Code(.tooLarge)
        /// The file has no header row, or no data rows.
        public static let empty = Code(.empty)
        /// Broken quoting, invalid UTF-8.
        public static let malformed = Code(.malformed)
        /// A row with a different number of fields than the header.
        public static let raggedRow = Code(.raggedRow)
        /// The plan or a filter names a column the header does not have.
        public static let missingColumn = Code(.missingColumn)
        /// Two header fields have the same name.
        public static let duplicateColumn = Code(.duplicateColumn)
        /// A feature or target cell that is not a finite number.
        public static let notNumeric = Code(.notNumeric)
        /// An empty cell with `missing = "error"`.
        public static let missingValue = Code(.missingValue)
        /// A label or event that is not 0 or 1.
        public static let notBinary = Code(.notBinary)
        /// A survival time below zero.
        public static let negativeTime = Code(.negativeTime)
        /// Filters or a split left no rows.
        public static let noRows = Code(.noRows)
        /// A `column=value` filter that does not parse.
        public static let badFilter = Code(.badFilter)
        /// A split file that is not what the protocol describes.
        public static let badSplit = Code(.badSplit)
        /// The plan does not fit the data (no label for a classifier, …).
        public static let badPlan = Code(.badPlan)

        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    /// The file the problem is in, as given by the caller.
    public var file: String
    /// 1-based physical line in the file, when the problem has one.
    public var line: Int?
    /// 1-based field index in the row, when the problem has one.
    public var column: Int?
    /// What went wrong, naming the column and quoting the value.
    public var message: String

    public init(_ code: Code, file: String, line: Int? = nil, column: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return "\(location): error: \(message)"
    }
}

/// The closest name to `name` among `candidates` by edit distance, if it is close enough to suggest.
func closestName(to name: String, in candidates: [String]) -> String? {
    let target = Array(name.lowercased())
    var best: (String, Int)?
    for candidate in candidates {
        let c = Array(candidate.lowercased())
        var previous = Array(0...c.count)
        var current = [Int](repeating: 0, count: c.count + 1)
        for i in 1...max(target.count, 1) where !target.isEmpty {
            current[0] = i
            for j in 1...max(c.count, 1) where !c.isEmpty {
                let cost = target[i - 1] == c[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        let distance = target.isEmpty ? c.count : (c.isEmpty ? target.count : previous[c.count])
        if distance <= max(2, target.count / 3), best == nil || distance < best!.1 {
            best = (candidate, distance)
        }
    }
    return best?.0
}

import TOMLKit

/// One TOML table being read: its values, its section name in the ``SourceIndex`` and the
/// name used in messages (`[plan]`, `[[peer]] #3`).
struct TableRef {
    let table: TOMLTable
    let section: String
    let displayName: String
    /// Where the table starts when it has no header of its own (an inline table).
    var origin: SourcePosition? = nil
}

/// Typed access to TOML values that reports every wrong type, missing key and unknown key
/// as a positioned diagnostic instead of failing on the first.
struct Reader {
    var diagnostics: DiagnosticCollector
    let index: SourceIndex

    init(path: String, index: SourceIndex) {
        self.diagnostics = DiagnosticCollector(path: path)
        self.index = index
    }

    mutating func error(_ message: String, at position: SourcePosition) { diagnostics.error(message, at: position) }
    mutating func warning(_ message: String, at position: SourcePosition) { diagnostics.warning(message, at: position) }

    /// The table's header, else where its inline table starts, else the start of the file.
    func headerPosition(_ t: TableRef) -> SourcePosition { index.header(t.section) ?? t.origin ?? .start }

    func keyPosition(_ t: TableRef, _ key: String) -> SourcePosition {
        index.entry(t.section, key)?.key ?? headerPosition(t)
    }

    func valuePosition(_ t: TableRef, _ key: String) -> SourcePosition {
        index.entry(t.section, key)?.value ?? headerPosition(t)
    }

    func elementPosition(_ t: TableRef, _ key: String, _ i: Int) -> SourcePosition {
        if let e = index.entry(t.section, key), e.elements.indices.contains(i) { return e.elements[i] }
        return valuePosition(t, key)
    }

    /// Reports every key of `t` not in `known`, with a suggestion when one is close.
    mutating func checkKeys(_ t: TableRef, known: [String]) {
        for key in t.table.keys.sorted() where !known.contains(key) {
            error("unknown key '\(key)' in \(t.displayName)\(didYouMean(key, among: known))", at: keyPosition(t, key))
        }
    }

    static func kind(_ type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a floating-point number"
        case .bool: "a boolean"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    /// The value at `key`, or `nil` after reporting it missing when `required` describes it.
    mutating func value(_ t: TableRef, _ key: String, required: String?) -> (any TOMLValueConvertible)? {
        if let v = t.table[key] { return v }
        if let required {
            error("\(t.displayName) is missing '\(key)' (\(required))", at: headerPosition(t))
        }
        return nil
    }

    mutating func wrongType(_ t: TableRef, _ key: String, expected: String, found: TOMLType) {
        error("'\(key)' must be \(expected), found \(Self.kind(found))", at: valuePosition(t, key))
    }

    mutating func string(_ t: TableRef, _ key: String, required: String? = nil) -> String? {
        guard let v = value(t, key, required: required) else { return nil }
        guard let s = v.string else {
            wrongType(t, key, expected: "a string", found: v.type)
            return nil
        }
        return s
    }

    mutating func integer(_ t: TableRef, _ key: String, required: String? = nil) -> Int? {
        guard let v = value(t, key, required: required) else { return nil }
        guard let n = v.int else {
            wrongType(t, key, expected: "an integer", found: v.type)
            return nil
        }
        return n
    }

    /// A number: a TOML float, or an integer (`learning_rate = 1`).
    mutating func number(_ t: TableRef, _ key: String, required: String? = nil) -> Double? {
        guard let v = value(t, key, required: required) else { return nil }
        if let d = v.double { return d }
        if let n = v.int { return Double(n) }
        wrongType(t, key, expected: "a number", found: v.type)
        return nil
    }

    /// An array of strings; each bad element is reported at its own position.
    mutating func stringArray(_ t: TableRef, _ key: String, required: String? = nil) -> [String]? {
        guard let v = value(t, key, required: required) else { return nil }
        guard let array = v.array else {
            wrongType(t, key, expected: "an array of strings", found: v.type)
            return nil
        }
        return strings(of: array, t, key)
    }

    mutating func strings(of array: TOMLArray, _ t: TableRef, _ key: String) -> [String]? {
        var result: [String] = []
        var ok = true
        for i in 0..<array.count {
            let element = array[i]
            if let s = element.string {
                result.append(s)
            } else {
                error("element \(i + 1) of '\(key)' must be a string, found \(Self.kind(element.type))", at: elementPosition(t, key, i))
                ok = false
            }
        }
        return ok ? result : nil
    }

    mutating func integerArray(_ t: TableRef, _ key: String) -> [Int]? {
        guard let v = value(t, key, required: nil) else { return nil }
        guard let array = v.array else {
            wrongType(t, key, expected: "an array of integers", found: v.type)
            return nil
        }
        var result: [Int] = []
        var ok = true
        for i in 0..<array.count {
            let element = array[i]
            if let n = element.int {
                result.append(n)
            } else {
                error("element \(i + 1) of '\(key)' must be an integer, found \(Self.kind(element.type))", at: elementPosition(t, key, i))
                ok = false
            }
        }
        return ok ? result : nil
    }

    /// A string that must be one of `cases`' raw values.
    mutating func choice<E: RawRepresentable & CaseIterable>(_ t: TableRef, _ key: String, _: E.Type, required: String? = nil) -> E?
    where E.RawValue == String {
        guard let s = string(t, key, required: required) else { return nil }
        if let e = E(rawValue: s) { return e }
        let names = E.allCases.map(\.rawValue)
        error("unknown \(key) '\(s)'; expected \(Self.list(names))\(didYouMean(s, among: names))", at: valuePosition(t, key))
        return nil
    }

    /// `a, b or c`
    static func list(_ names: [String]) -> String {
        guard names.count > 1, let last = names.last else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + " or " + last
    }
}

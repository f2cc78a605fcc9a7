import Foundation

// NOT FOR PUBLIC CONSUMPTION: a strict reader of the Prometheus text exposition format
// (version 0.0.4), for tests of `/metrics`. Stricter than Prometheus itself where the node's
// own conventions are stricter: every family has HELP and TYPE before its samples, counters end
// in `_total`.

/// One sample line.
package struct PrometheusSample: Sendable, Equatable {
    package var name: String
    /// In the order written.
    package var labels: [(String, String)]
    package var value: Double

    package func label(_ name: String) -> String? { labels.first { $0.0 == name }?.1 }

    package static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.labels.elementsEqual(b.labels, by: ==) && (a.value == b.value || (a.value.isNaN && b.value.isNaN))
    }
}

/// An exposition, parsed, with every departure from the format (and from the node's
/// conventions) in ``problems``.
package struct PrometheusExposition: Sendable {
    package var help: [String: String] = [:]
    package var types: [String: String] = [:]
    package var samples: [PrometheusSample] = []
    /// One line per problem, naming the line; empty for a valid exposition.
    package var problems: [String] = []

    package init(parsing text: String) {
        if !text.isEmpty && !text.hasSuffix("\n") { problems.append("the exposition does not end with a line feed") }
        var familyOrder: [String] = []
        var seriesSeen: Set<String> = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0)
        for (offset, rawLine) in lines.enumerated() {
            let line = String(rawLine)
            let at = "line \(offset + 1) '\(line)'"
            if line.isEmpty {
                problems.append("\(at): empty line")
                continue
            }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                guard parts.count >= 3, parts[0] == "#", parts[1] == "HELP" || parts[1] == "TYPE" else { continue }  // a comment
                let name = parts[2]
                if !Self.isMetricName(name) { problems.append("\(at): invalid metric name '\(name)'") }
                if familyOrder.contains(name) { problems.append("\(at): \(parts[1]) of '\(name)' after its samples") }
                if parts[1] == "HELP" {
                    if help[name] != nil { problems.append("\(at): a second HELP for '\(name)'") }
                    help[name] = parts.count > 3 ? parts[3] : ""
                } else {
                    let type = parts.count > 3 ? parts[3] : ""
                    if types[name] != nil { problems.append("\(at): a second TYPE for '\(name)'") }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(type) {
                        problems.append("\(at): unknown type '\(type)'")
                    }
                    types[name] = type
                }
                continue
            }
            guard let sample = Self.parseSample(line, problems: &problems, at: at) else { continue }
            let family = family(of: sample.name)
            guard let type = types[family] else {
                problems.append("\(at): sample of '\(family)' without a TYPE before it")
                continue
            }
            if help[family] == nil { problems.append("\(at): sample of '\(family)' without a HELP before it") }
            if familyOrder.last != family {
                if familyOrder.contains(family) { problems.append("\(at): the samples of '\(family)' are not together") }
                familyOrder.append(family)
            }
            switch type {
            case "counter":
                if !family.hasSuffix("_total") { problems.append("\(at): counter '\(family)' does not end in _total") }
                if sample.value < 0 { problems.append("\(at): negative counter") }
            case "histogram":
                if sample.name == family + "_bucket" && sample.label("le") == nil { problems.append("\(at): a bucket without le") }
                if sample.name == family { problems.append("\(at): a histogram sample without _bucket, _sum or _count") }
            default:
                break
            }
            let key = sample.name + "{" + sample.labels.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
            if !seriesSeen.insert(key).inserted { problems.append("\(at): a second sample of \(key)") }
            samples.append(sample)
        }
        for (name, type) in types where type == "histogram" { checkHistogram(name) }
    }

    /// The family a sample belongs to: its name, or for a histogram or summary the name less
    /// `_bucket`, `_sum` or `_count`.
    package func family(of name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return name
    }

    /// The value of the sample `name` with exactly `labels` (in any order).
    package func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && Dictionary($0.labels, uniquingKeysWith: { a, _ in a }) == labels }?.value
    }

    /// Every sample of `name`.
    package func samples(_ name: String) -> [PrometheusSample] { samples.filter { $0.name == name } }

    private mutating func checkHistogram(_ name: String) {
        var series: [String: [(Double, Double)]] = [:]
        var counts: [String: Double] = [:]
        func key(_ sample: PrometheusSample) -> String {
            sample.labels.filter { $0.0 != "le" }.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        }
        for sample in samples where sample.name == name + "_bucket" {
            guard let le = sample.label("le"), let bound = Self.parseValue(le) else {
                problems.append("\(name): a bucket with an invalid le")
                continue
            }
            series[key(sample), default: []].append((bound, sample.value))
        }
        for sample in samples where sample.name == name + "_count" { counts[key(sample)] = sample.value }
        for (labels, buckets) in series {
            if buckets.map(\.0) != buckets.map(\.0).sorted() { problems.append("\(name){\(labels)}: buckets not in increasing le") }
            if buckets.map(\.1) != buckets.map(\.1).sorted() { problems.append("\(name){\(labels)}: bucket counts decrease") }
            if buckets.last?.0 != .infinity { problems.append("\(name){\(labels)}: no +Inf bucket") }
            if buckets.last?.1 != counts[labels] { problems.append("\(name){\(labels)}: the +Inf bucket is not _count") }
        }
    }

    package static func isMetricName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIILetter || first == "_" || first == ":" else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
    }

    package static func isLabelName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return !name.hasPrefix("__") && name.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    /// A sample value: a Go float, or exactly `NaN`, `+Inf`, `-Inf` (not Swift's `nan`, `inf`).
    package static func parseValue(_ text: String) -> Double? {
        switch text {
        case "NaN": return .nan
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        default:
            guard text.unicodeScalars.allSatisfy({ $0.isASCIIDigit || "+-.eE".unicodeScalars.contains($0) }),
                text.unicodeScalars.contains(where: \.isASCIIDigit)
            else { return nil }
            return Double(text)
        }
    }

    private static func parseSample(_ line: String, problems: inout [String], at: String) -> PrometheusSample? {
        let scalars = Array(line.unicodeScalars)
        var index = 0
        var name = ""
        while index < scalars.count && scalars[index] != "{" && scalars[index] != " " {
            name.unicodeScalars.append(scalars[index])
            index += 1
        }
        guard isMetricName(name) else {
            problems.append("\(at): invalid metric name '\(name)'")
            return nil
        }
        var labels: [(String, String)] = []
        if index < scalars.count && scalars[index] == "{" {
            index += 1
            while index < scalars.count && scalars[index] != "}" {
                var labelName = ""
                while index < scalars.count && scalars[index] != "=" {
                    labelName.unicodeScalars.append(scalars[index])
                    index += 1
                }
                guard isLabelName(labelName), index + 1 < scalars.count, scalars[index + 1] == "\"" else {
                    problems.append("\(at): invalid label '\(labelName)'")
                    return nil
                }
                index += 2
                var value = ""
                while index < scalars.count && scalars[index] != "\"" {
                    if scalars[index] == "\\" {
                        guard index + 1 < scalars.count else { break }
                        switch scalars[index + 1] {
                        case "\\": value += "\\"
                        case "\"": value += "\""
                        case "n": value += "\n"
                        default: problems.append("\(at): invalid escape in label '\(labelName)'")
                        }
                        index += 2
                    } else {
                        value.unicodeScalars.append(scalars[index])
                        index += 1
                    }
                }
                guard index < scalars.count else {
                    problems.append("\(at): unterminated label value")
                    return nil
                }
                index += 1
                if labels.contains(where: { $0.0 == labelName }) { problems.append("\(at): label '\(labelName)' twice") }
                labels.append((labelName, value))
                if index < scalars.count && scalars[index] == "," { index += 1 }
            }
            guard index < scalars.count else {
                problems.append("\(at): unterminated label set")
                return nil
            }
            index += 1
        }
        guard index < scalars.count, scalars[index] == " " else {
            problems.append("\(at): no space before the value")
            return nil
        }
        let rest = String(String.UnicodeScalarView(scalars[(index + 1)...])).split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(rest.count), let value = parseValue(String(rest[0])) else {
            problems.append("\(at): invalid value")
            return nil
        }
        if rest.count == 2 && Int64(rest[1]) == nil { problems.append("\(at): invalid timestamp") }
        return PrometheusSample(name: name, labels: labels, value: value)
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Debian's `promtool` (the prometheus package), where installed: CI installs it and sets
/// `PLEXUS_REQUIRE_PROMTOOL=1`.
public enum Promtool {
    public static let path = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `promtool check metrics` on `input`: its exit status and what it printed.
    public static func checkMetrics(_ promtool: String, input: [UInt8]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        let stdin = Pipe()
        let output = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        try process.run()
        stdin.fileHandleForWriting.write(Data(input))
        try stdin.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}

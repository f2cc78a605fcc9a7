#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed CSV file: a header row and data rows of text fields, each row with the physical line
/// it starts on (for error messages).
public struct CSVTable: Sendable, Hashable {
    /// The name used in error messages (usually the path).
    public var file: String
    public var header: [String]
    public var rows: [[String]]
    /// `lines[i]` is the 1-based physical line on which `rows[i]` starts.
    public var lines: [Int]

    public init(file: String, header: [String], rows: [[String]], lines: [Int]) {
        self.file = file
        self.header = header
        self.rows = rows
        self.lines = lines
    }

    /// The index of `name` in the header, or a ``DataError`` naming the file and suggesting a close name.
    public func columnIndex(_ name: String, role: String) throws(DataError) -> Int {
        if let index = header.firstIndex(of: name) { return index }
        var message = "no column '\(name)' (\(role)) in the header"
        if let suggestion = closestName(to: name, in: header) {
            message += "; did you mean '\(suggestion)'?"
        }
        throw DataError(.missingColumn, file: file, line: 1, message)
    }
}

/// An RFC 4180 CSV reader.
///
/// Accepts: a header row; fields separated by commas; fields quoted with `"` that may contain
/// commas, line breaks and doubled quotes (`""`); CRLF or LF line ends; a UTF-8 byte-order mark;
/// a missing final line break. Blank lines are skipped. Rejects, with file and line: a quote inside
/// an unquoted field, text after a closing quote, an unterminated quote, invalid UTF-8, a row whose
/// field count differs from the header's, duplicate header names, an empty file, and a file larger
/// than ``maximumBytes``.
public enum CSV {
    /// The default size bound: 1 GiB. Clinical cohort exports are far smaller; the bound keeps a
    /// wrong path (a disk image, /dev/zero) from exhausting memory.
    public static let defaultMaximumBytes = 1 << 30

    /// Reads and parses the file at `path`.
    public static func read(path: String, maximumBytes: Int = defaultMaximumBytes) throws(DataError) -> CSVTable {
        let bytes = try readFile(path: path, maximumBytes: maximumBytes)
        return try parse(bytes, file: path)
    }

    /// Reads a whole file with a size bound, without Foundation.
    public static func readFile(path: String, maximumBytes: Int = defaultMaximumBytes) throws(DataError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw DataError(.unreadable, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw DataError(.unreadable, file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw DataError(.unreadable, file: path, "is a directory, not a CSV file")
        }
        if Int(info.st_size) > maximumBytes {
            throw DataError(.tooLarge, file: path, "file is \(info.st_size) bytes, over the limit of \(maximumBytes)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(info.st_size) + 1)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError(.unreadable, file: path, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            // Not regular files (pipes, devices) have no size: enforce the bound while reading.
            if bytes.count + n > maximumBytes {
                throw DataError(.tooLarge, file: path, "file is over the limit of \(maximumBytes) bytes")
            }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Parses CSV text. `file` names the source in errors.
    public static func parse(_ bytes: [UInt8], file: String) throws(DataError) -> CSVTable {
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }

        var records: [[String]] = []
        var recordLines: [Int] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1
        var recordLine = 1
        var i = start
        let n = bytes.count
        var fieldWasQuoted = false
        var fieldWasQuotedInRecord = false

        func finishField() throws(DataError) {
            guard let text = String(validating: field, as: UTF8.self) else {
                throw DataError(.malformed, file: file, line: line, column: fields.count + 1, "field is not valid UTF-8")
            }
            fields.append(text)
            field.removeAll(keepingCapacity: true)
            fieldWasQuoted = false
        }
        func finishRecord() {
            // A blank line (one empty unquoted field) is skipped.
            if !(fields.count == 1 && fields[0].isEmpty && !fieldWasQuotedInRecord) {
                records.append(fields)
                recordLines.append(recordLine)
            }
            fields.removeAll(keepingCapacity: true)
            fieldWasQuotedInRecord = false
        }

        while i < n {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                guard field.isEmpty && !fieldWasQuoted else {
                    throw DataError(
                        .malformed, file: file, line: line, column: fields.count + 1,
                        "quote inside an unquoted field; quote the whole field and double inner quotes (\"\")")
                }
                fieldWasQuoted = true
                fieldWasQuotedInRecord = true
                let openLine = line
                i += 1
                var closed = false
                while i < n {
                    let b = bytes[i]
                    if b == UInt8(ascii: "\"") {
                        if i + 1 < n && bytes[i + 1] == UInt8(ascii: "\"") {
                            field.append(b)
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    if b == UInt8(ascii: "\n") { line += 1 }
                    field.append(b)
                    i += 1
                }
                guard closed else {
                    throw DataError(.malformed, file: file, line: openLine, column: fields.count + 1, "unterminated quoted field")
                }
                if i < n {
                    let next = bytes[i]
                    let isEnd = next == UInt8(ascii: ",") || next == UInt8(ascii: "\n")
                        || (next == UInt8(ascii: "\r") && (i + 1 == n || bytes[i + 1] == UInt8(ascii: "\n")))
                    guard isEnd else {
                        throw DataError(
                            .malformed, file: file, line: line, column: fields.count + 1,
                            "text after the closing quote of a quoted field")
                    }
                }
                continue
            }
            if byte == UInt8(ascii: ",") {
                try finishField()
                i += 1
                continue
            }
            if byte == UInt8(ascii: "\r") && (i + 1 == n || bytes[i + 1] == UInt8(ascii: "\n")) {
                i += 1
                continue
            }
            if byte == UInt8(ascii: "\n") {
                try finishField()
                finishRecord()
                line += 1
                recordLine = line
                i += 1
                continue
            }
            if fieldWasQuoted {
                throw DataError(
                    .malformed, file: file, line: line, column: fields.count + 1, "text after the closing quote of a quoted field")
            }
            field.append(byte)
            i += 1
        }
        if !field.isEmpty || fieldWasQuoted || !fields.isEmpty {
            try finishField()
            finishRecord()
        }

        guard let header = records.first else {
            throw DataError(.empty, file: file, "the file is empty; expected a header row and data rows")
        }
        var seen: [String: Int] = [:]
        for (index, name) in header.enumerated() {
            if let first = seen[name] {
                throw DataError(
                    .duplicateColumn, file: file, line: recordLines[0], column: index + 1,
                    "column '\(name)' appears twice in the header (also field \(first + 1))")
            }
            seen[name] = index
        }
        for r in 1..<records.count where records[r].count != header.count {
            throw DataError(
                .raggedRow, file: file, line: recordLines[r],
                "row has \(records[r].count) fields, the header has \(header.count)")
        }
        return CSVTable(file: file, header: header, rows: Array(records.dropFirst()), lines: Array(recordLines.dropFirst()))
    }
}

private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

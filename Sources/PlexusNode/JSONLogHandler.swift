import Foundation
public import Logging
import PlexusLog

/// `plexus run --log-format json`: the operator log as one JSON object per line on standard
/// error, for a log shipper — the same events as the text format, with stable keys:
///
///     {"time":"2026-12-01T17:02:19.123Z","level":"warning","message":"Sample count bounded",
///      "node":"hospital-a","metadata":{"peer":"hospital-c","signed":"46000","used":"1092"}}
///
/// - `time`: UTC, RFC 3339 with milliseconds; `level`: swift-log's level name (`trace` …
///   `critical`); `message`: the event; `node`: this node's peer id; `metadata`: every other
///   metadata value as a string (an empty object when there is none).
/// - One `write(2)` per line, so lines of concurrent writers never interleave; a line is at
///   most ``maximumLineBytes`` (longer messages and metadata values are cut, marked `…`).
public struct JSONLogHandler: LogHandler {
    public static let maximumLineBytes = 16 * 1024
    /// The longest message or metadata value kept whole.
    static let maximumValueBytes = 2 * 1024

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let write: @Sendable ([UInt8]) -> Void

    /// A handler writing to standard error.
    public static func standardError(label: String) -> JSONLogHandler {
        JSONLogHandler { bytes in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    /// A handler giving each line (with its newline) to `write`.
    public init(write: @escaping @Sendable ([UInt8]) -> Void) {
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    struct Line: Encodable {
        var time: String
        var level: String
        var message: String
        var node: String?
        var metadata: [String: String]
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let node = merged.removeValue(forKey: "node").map { Self.cut("\($0)") }
        var fields: [String: String] = [:]
        for (key, value) in merged { fields[Self.cut(key)] = Self.cut("\(value)") }
        var line = Line(time: Self.timestamp(Date()), level: event.level.rawValue, message: Self.cut("\(event.message)"), node: node, metadata: fields)
        var bytes = (try? PlexusJSON.encode(line, pretty: false)) ?? []
        if bytes.count + 1 > Self.maximumLineBytes {
            // Too many values: keep the event, say what was dropped.
            line.metadata = ["truncated": "\(fields.count) metadata values over \(Self.maximumLineBytes) bytes"]
            bytes = (try? PlexusJSON.encode(line, pretty: false)) ?? []
        }
        bytes.append(UInt8(ascii: "\n"))
        write(bytes)
    }

    static func cut(_ text: String) -> String {
        guard text.utf8.count > maximumValueBytes else { return text }
        var kept = Substring(text).utf8.prefix(maximumValueBytes - 3)
        // Back off to a character boundary.
        while !kept.isEmpty, String(kept) == nil { kept = kept.dropLast() }
        return (String(kept) ?? "") + "…"
    }

    static func timestamp(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        let millis = Int(((seconds - Double(whole)) * 1000).rounded(.down))
        var parts = tm()
        gmtime_r(&whole, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(max(millis, 0), 999)
        )
    }
}

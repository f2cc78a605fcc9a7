import Foundation

/// Plexus's one JSON dialect: every JSON Plexus writes — convergence logs, `--json` outputs —
/// goes through ``encode(_:pretty:)``, and what Plexus reads back through ``decode(_:from:)``.
///
/// - Keys are sorted (`.sortedKeys`), so the same value always prints the same bytes: logs of
///   two runs with the same seed diff clean, and the simulator's and a real node's lines compare
///   bit for bit.
/// - Slashes are not escaped; numbers print in Swift's shortest round-trip form (`3`, `0.1`,
///   `1e-05`).
/// - **Non-finite numbers (NaN, ±infinity) are written as `null`** — JSON has no NaN. A reader
///   takes a `null` (or a missing key) where a number belongs as "no value": `nil` in the
///   optional number fields of the log records, an absent entry in a metric map. Record types
///   never hold a non-finite number in memory (their initializers turn one into `nil` or drop
///   it), so a record written and read back is equal to the original.
///
/// Foundation's coders are fine here: these are local files and terminal output, not network
/// input. Readers still bound what they read (``ConvergenceLog/maximumLineBytes``).
public enum PlexusJSON {
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Stands in for a non-finite number while Foundation encodes (it has no `null` strategy for
    /// them), then is replaced by `null`. U+FFFF is a Unicode noncharacter Plexus never writes.
    static let nonFiniteMarker = "\u{FFFF}plexus:non-finite\u{FFFF}"

    /// The marker as the encoder prints it, quotes included.
    static let encodedMarker: [UInt8] = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode([nonFiniteMarker])).map { Array($0.dropFirst().dropLast()) } ?? []
    }()

    /// `value` as JSON: compact (one line) unless `pretty`.
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws(Error) -> [UInt8] {
        try encode(value, pretty: pretty, nonFiniteAsNull: true)
    }

    /// With `nonFiniteAsNull` false, a non-finite number is an error rather than `null`: for
    /// types that write their numbers through `encodeNumber` (the log records), which never
    /// hand one to the encoder — so no string of theirs can be mistaken for the marker.
    static func encode<T: Encodable>(_ value: T, pretty: Bool, nonFiniteAsNull: Bool) throws(Error) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        if nonFiniteAsNull {
            encoder.nonConformingFloatEncodingStrategy = .convertToString(
                positiveInfinity: nonFiniteMarker, negativeInfinity: nonFiniteMarker, nan: nonFiniteMarker)
        }
        let data: Data
        do { data = try encoder.encode(value) } catch { throw Error(description: "cannot encode \(T.self) as JSON: \(error)") }
        return nonFiniteAsNull ? replacingMarkers(Array(data)) : Array(data)
    }

    /// `value` as JSON text, for standard output.
    public static func string<T: Encodable>(_ value: T, pretty: Bool = false) throws(Error) -> String {
        String(decoding: try encode(value, pretty: pretty), as: UTF8.self)
    }

    /// Decodes `bytes` (one JSON document) as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(Error) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw Error(description: describe(error))
        } catch {
            throw Error(description: "\(error)")
        }
    }

    private static func replacingMarkers(_ bytes: [UInt8]) -> [UInt8] {
        let marker = encodedMarker
        guard let first = marker.first, bytes.contains(first) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == first, i + marker.count <= bytes.count, bytes[i..<i + marker.count].elementsEqual(marker) {
                out += Array("null".utf8)
                i += marker.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.isEmpty ? "" : " at " + context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let c): return "malformed JSON\(path(c)): \(c.debugDescription)"
        case .keyNotFound(let key, let c): return "missing key '\(key.stringValue)'\(path(c))"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "unexpected value\(path(c)): \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

extension Double {
    /// The number, or `nil` when it is not finite (the NaN convention of ``PlexusJSON``).
    var finiteOrNil: Double? { isFinite ? self : nil }
}

extension Dictionary where Key == String, Value == Double {
    /// The finite entries of `pairs` (the first of a repeated key).
    init(finite pairs: [(String, Double)]) {
        self.init(pairs.filter { $0.1.isFinite }, uniquingKeysWith: { first, _ in first })
    }
}

extension KeyedEncodingContainer {
    /// A number, or `null` when there is none or it is not finite.
    mutating func encodeNumber(_ value: Double?, forKey key: Key) throws {
        if let value, value.isFinite { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

extension KeyedDecodingContainer {
    /// A number; `nil` when the key is missing, `null` or not finite.
    func decodeNumber(forKey key: Key) throws -> Double? {
        try decodeIfPresent(Double.self, forKey: key)?.finiteOrNil
    }

    /// A metric map; `null` values are dropped.
    func decodeNumbers(forKey key: Key) throws -> [String: Double] {
        (try decodeIfPresent([String: Double?].self, forKey: key) ?? [:]).compactMapValues { $0?.finiteOrNil }
    }
}

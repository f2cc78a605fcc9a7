/// Which delta codec a plan uses, as written in a topology file's `codec = "…"`.
///
/// Grammar (the canonical form is what ``description`` prints):
///
///     lossless            float32, byte-shuffled, zstd; bit-exact
///     f16 | bf16          IEEE half / bfloat16, byte-shuffled, zstd
///     int8[:CHUNK]        int8 with one float32 absmax scale per CHUNK values (default 4096)
///     topk:F[+VALUES]     the ⌈F·n⌉ largest magnitudes, 0 < F ≤ 1; VALUES = f32 (default) | f16 | int8
public enum CodecSpec: Hashable, Sendable, CustomStringConvertible {
    case lossless
    case float16
    case bfloat16
    case int8(chunk: Int)
    case topK(fraction: Double, values: TopKValues)

    /// How top-k stores its kept values.
    public enum TopKValues: UInt8, Hashable, Sendable, CaseIterable {
        case float32 = 0
        case float16 = 1
        /// One float32 scale (absmax / 127) for all kept values, then one int8 each.
        case int8 = 2

        public var name: String {
            switch self {
            case .float32: "f32"
            case .float16: "f16"
            case .int8: "int8"
            }
        }
    }

    /// The default int8 chunk: 4096 values share one scale.
    public static let defaultInt8Chunk = 4096
    /// The largest int8 chunk accepted.
    public static let maximumInt8Chunk = 1 << 24

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Parses `text`; the error message quotes the bad part and lists what is accepted.
    public init(parsing text: String) throws(ParseError) {
        let accepted = "expected lossless, f16, bf16, int8, int8:CHUNK, topk:F or topk:F+f32|f16|int8"
        switch text {
        case "lossless": self = .lossless
        case "f16": self = .float16
        case "bf16": self = .bfloat16
        case "int8": self = .int8(chunk: Self.defaultInt8Chunk)
        default:
            if text.hasPrefix("int8:") {
                let rest = text.dropFirst(5)
                guard let chunk = Int(rest), chunk >= 1, chunk <= Self.maximumInt8Chunk else {
                    throw ParseError(message: "int8 chunk '\(rest)' must be a whole number from 1 to \(Self.maximumInt8Chunk)")
                }
                self = .int8(chunk: chunk)
            } else if text.hasPrefix("topk:") {
                let rest = text.dropFirst(5)
                let parts = rest.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
                guard let fraction = Double(parts[0]), fraction.isFinite, fraction > 0, fraction <= 1 else {
                    throw ParseError(message: "top-k fraction '\(parts[0])' must be a number in (0, 1], e.g. topk:0.01")
                }
                var values = TopKValues.float32
                if parts.count == 2 {
                    guard let v = TopKValues.allCases.first(where: { $0.name == parts[1] }) else {
                        throw ParseError(message: "top-k values '\(parts[1])' must be f32, f16 or int8")
                    }
                    values = v
                }
                self = .topK(fraction: fraction, values: values)
            } else {
                throw ParseError(message: "unknown codec '\(text)'; \(accepted)")
            }
        }
    }

    public var description: String {
        switch self {
        case .lossless: "lossless"
        case .float16: "f16"
        case .bfloat16: "bf16"
        case .int8(let chunk): chunk == Self.defaultInt8Chunk ? "int8" : "int8:\(chunk)"
        case .topK(let fraction, let values): values == .float32 ? "topk:\(fraction)" : "topk:\(fraction)+\(values.name)"
        }
    }

    /// Whether decoding reproduces the input bit for bit.
    public var isLossless: Bool { self == .lossless }

    /// The number of entries top-k keeps of `count`: ⌈fraction · count⌉, at least 1 when count > 0.
    public static func topKCount(fraction: Double, of count: Int) -> Int {
        guard count > 0 else { return 0 }
        return min(count, max(1, Int((fraction * Double(count)).rounded(.up))))
    }
}

/// Why a delta or an envelope was rejected.
///
/// `code` is stable and short (it labels counters and log lines: `delta.rejected.reason`);
/// `message` says what was wrong, quoting the offending value. Neither ever holds payload
/// bytes, parameter values or keys.
public struct DeltaError: Error, Equatable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: String, Hashable, Sendable {
            case truncated, trailingBytes, badMagic, unsupportedVersion, unknownKind, unknownCodec
            case badCodecParameters, planMismatch, wrongParameterCount, badOrigin, unknownOrigin
            case badLength, badSignature, replay, badSequence, decompression, badIndices, nonFinite
            case badInput
        }

        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The input ended before a field it declares.
        public static let truncated = Code(.truncated)
        /// Bytes follow the end of the envelope or of a payload section.
        public static let trailingBytes = Code(.trailingBytes)
        public static let badMagic = Code(.badMagic)
        public static let unsupportedVersion = Code(.unsupportedVersion)
        public static let unknownKind = Code(.unknownKind)
        public static let unknownCodec = Code(.unknownCodec)
        public static let badCodecParameters = Code(.badCodecParameters)
        /// The envelope is for another learning plan.
        public static let planMismatch = Code(.planMismatch)
        /// The parameter count is not the plan's.
        public static let wrongParameterCount = Code(.wrongParameterCount)
        /// The origin field is not a valid peer id.
        public static let badOrigin = Code(.badOrigin)
        /// No public key is pinned for the origin.
        public static let unknownOrigin = Code(.unknownOrigin)
        /// A declared length is outside what the header allows.
        public static let badLength = Code(.badLength)
        public static let badSignature = Code(.badSignature)
        /// The sequence number is not above the last one accepted from this origin.
        public static let replay = Code(.replay)
        /// A sequence field is inconsistent (zero, or a keyframe naming a base).
        public static let badSequence = Code(.badSequence)
        /// zstd refused the frame, or it does not decompress to exactly the declared size.
        public static let decompression = Code(.decompression)
        /// Top-k indices are out of range or not strictly increasing.
        public static let badIndices = Code(.badIndices)
        /// A value or scale is NaN or infinite.
        public static let nonFinite = Code(.nonFinite)
        /// The encoder was handed values it cannot encode.
        public static let badInput = Code(.badInput)

        /// The code as a short kebab-free identifier, e.g. `badSignature`.
        public var description: String { wrapped.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Runs `body`, which only throws ``DeltaError`` but goes through a `rethrows` standard-library
/// call that erases the type, and restores the type.
@inline(__always)
func rethrowingDeltaError<R>(_ body: () throws -> R) throws(DeltaError) -> R {
    do {
        return try body()
    } catch let error as DeltaError {
        throw error
    } catch {
        throw DeltaError(.badInput, "unexpected error: \(error)")
    }
}

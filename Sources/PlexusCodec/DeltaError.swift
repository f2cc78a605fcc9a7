public import PlexusCore

/// Why a delta or an envelope was rejected.
///
/// `code` is one of PlexusCore's ``Reason`` cases — the one enum of reason codes, spelled the
/// same in logs, metrics labels and every module; `message` says what was wrong, quoting the
/// offending value. Neither ever holds payload bytes, parameter values or keys.
public struct DeltaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The codes are PlexusCore's ``Reason`` (this alias keeps `DeltaError.Code.replay` spelled as before).
    public typealias Code = Reason

    public var code: Reason
    public var message: String

    public init(_ code: Reason, _ message: String) {
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

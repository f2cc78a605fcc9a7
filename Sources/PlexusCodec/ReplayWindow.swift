public import PlexusCore

/// Per-origin replay protection: an envelope is admitted only if its sequence number is above
/// the last one admitted from the same origin.
///
/// The network shell and the simulator share this type, and it is part of a node's persisted
/// state so that a restart does not reopen the window.
public struct ReplayWindow: Hashable, Sendable {
    public private(set) var lastAccepted: [PeerID: UInt64] = [:]

    public init(lastAccepted: [PeerID: UInt64] = [:]) { self.lastAccepted = lastAccepted }

    /// Throws ``Reason/replay`` unless `sequence` from `origin` is new. Does not record it.
    public func check(origin: PeerID, sequence: UInt64) throws(DeltaError) {
        if let last = lastAccepted[origin], sequence <= last {
            throw DeltaError(.replay, "sequence \(sequence) from '\(origin)' is not above the last accepted, \(last)")
        }
    }

    /// Records `sequence` as accepted, after the envelope was verified and applied.
    public mutating func record(origin: PeerID, sequence: UInt64) {
        lastAccepted[origin] = max(lastAccepted[origin] ?? 0, sequence)
    }

    /// ``check(origin:sequence:)`` then ``record(origin:sequence:)``.
    public mutating func admit(origin: PeerID, sequence: UInt64) throws(DeltaError) {
        try check(origin: origin, sequence: sequence)
        record(origin: origin, sequence: sequence)
    }
}

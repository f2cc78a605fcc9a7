/// Why something from outside was refused, dropped or closed: one stable code per cause, spelled
/// one way (lower camel case) everywhere — in the convergence log's `reason` field, in operator
/// log metadata and as the value of every `reason` metric label. Because it is an enum, a label
/// never takes a value outside ``allCases``; free text belongs in the message beside the code,
/// never in the code.
///
/// Adding a case is a compatible change; renaming or removing one breaks dashboards and log
/// queries, so don't.
public enum Reason: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    // MARK: Bytes that do not parse (envelopes, gossip messages, statistics, state files)
    /// The input ended before a field it declares.
    case truncated
    /// Bytes follow the end of a message or of one of its sections.
    case trailingBytes
    case badMagic
    case unsupportedVersion
    case unknownKind
    case unknownCodec
    case badCodecParameters
    /// A declared length is outside what the format allows.
    case badLength
    /// zstd refused the frame, or it does not decompress to exactly the declared size.
    case decompression
    /// Top-k indices are out of range or not strictly increasing.
    case badIndices
    /// A gossip message of an unknown type, or one that does not parse.
    case badMessage
    /// The encoder was handed values it cannot encode (a local error, never a peer's).
    case badInput

    // MARK: Authentication and agreement
    case badSignature
    /// No public key is pinned for the origin.
    case unknownOrigin
    /// The origin field is not a valid peer id.
    case badOrigin
    /// A message from a peer that is not a neighbour in the running topology.
    case unknownPeer
    /// An envelope signed by one peer arrived from another.
    case originMismatch
    /// An envelope advertises another sample count than its origin's signed statistics message.
    case sampleCountMismatch
    /// The message is for another learning plan.
    case planMismatch
    /// The parameter count is not the plan's.
    case wrongParameterCount
    /// Statistics of another number of features than the plan's.
    case wrongDimension
    /// The envelope's codec is not the one the plan names.
    case wrongCodec
    /// A site's resolved feature columns or targets differ from this site's.
    case schemaMismatch
    /// One origin signed two different statistics messages and sent them to different peers.
    case equivocation

    // MARK: Sequencing
    /// The sequence number is not above the last one accepted from this origin.
    case replay
    /// A sequence field is inconsistent (zero, or a keyframe naming a base).
    case badSequence
    /// A delta whose base is not the version held; a keyframe is requested.
    case gap
    /// A synchronous-mode envelope further ahead than the held-envelope window.
    case tooFarAhead

    // MARK: Values
    /// A value, a scale or a statistic is NaN or infinite.
    case nonFinite
    /// Applying a delta (copy + delta) would give a non-finite copy.
    case nonFiniteResult
    /// This node's own training or consensus step gave a non-finite model; the step is refused.
    case nonFiniteModel
    /// A count, round, version or length outside its documented range.
    case outOfRange
    /// Statistics that cannot come from real rows (a non-positive variance where rows vary, …).
    case implausible

    // MARK: Handshakes and sessions (the transport)
    case malformedHandshake
    case versionMismatch
    /// The peer authenticated as someone other than the peer dialled.
    case unexpectedPeer
    /// The other side refused the handshake and said why.
    case refusedByPeer
    case weakEphemeralKey
    case badMAC
    case badConfirmation
    case handshakeTimeout
    /// Too many unauthenticated connections pending, in all or from one address.
    case tooManyPending
    case frameTooLarge
    case closedDuringHandshake
    /// A sealed record did not open (tampered, replayed or out of order).
    case decryptFailed
    case malformedRecord
    /// The peer was removed from the topology.
    case removed
    /// The other side closed the connection.
    case closedByPeer
    /// The session lost the simultaneous-dial tie-break to another connection with the same peer.
    case superseded
    /// This node closed the session (``PeerMesh/disconnect``); the peer is refused and not dialled
    /// until its backoff elapses.
    case disconnected
    /// The mesh is stopping.
    case stopping
    /// The connection failed with an I/O error.
    case connectionError
    /// Messages held back behind a draining connection exceeded their bound; the draining one is closed.
    case drainOverflow

    // MARK: Budgets and liveness
    /// A neighbour exceeded its budget of rejected messages in one round; the session is closed.
    case rejectionBudget
    /// More keyframe requests than one answer per round.
    case keyframeBudget
    /// More statistics requests for an origin than one answer per half request interval.
    case requestBudget
    /// A neighbour's outbound queue is full: it is not reading; the session is closed.
    case outboundOverflow
    /// A sealed session carried nothing, not even a keepalive, for longer than the idle timeout.
    case idleTimeout
    /// A phase did not complete before its deadline.
    case deadline
}

extension Reason {
    public var description: String { rawValue }
}

public import PlexusCore
public import PlexusCrypto

/// One allowed neighbour: where to dial it and the Ed25519 key it must prove.
public struct MeshPeer: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var publicKey: Ed25519.PublicKey

    public init(host: String, port: Int, publicKey: Ed25519.PublicKey) {
        self.host = host
        self.port = port
        self.publicKey = publicKey
    }
}

/// Reconnection backoff toward each neighbour.
///
/// Attempt *n* (0 after a session ends, +1 after each failed dial) waits
/// `min(maximumDelay, initialDelay · 2ⁿ) · (1 − jitter · u)` with `u` uniform in [0, 1).
public struct ReconnectPolicy: Sendable, Hashable {
    /// Default: 100 ms. MUST be > 0.
    public var initialDelay: Duration
    /// Default: 5 s. MUST be ≥ `initialDelay`.
    public var maximumDelay: Duration
    /// The fraction of each delay that is randomised away, in [0, 1]. Default: 0.5.
    public var jitter: Double
    /// Seeds the jitter (SplitMix64) for reproducible runs; `nil` (the default) seeds from the CSPRNG.
    public var seed: UInt64?

    public init(
        initialDelay: Duration = .milliseconds(100),
        maximumDelay: Duration = .seconds(5),
        jitter: Double = 0.5,
        seed: UInt64? = nil
    ) {
        precondition(initialDelay > .zero && maximumDelay >= initialDelay, "backoff delays must satisfy 0 < initial ≤ maximum")
        precondition(jitter >= 0 && jitter <= 1, "jitter must be in [0, 1]")
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.jitter = jitter
        self.seed = seed
    }

    /// The un-jittered delay before attempt `attempt`.
    public func baseDelay(attempt: Int) -> Duration {
        var delay = initialDelay
        for _ in 0..<min(attempt, 62) {
            delay = delay * 2
            if delay >= maximumDelay { return maximumDelay }
        }
        return min(delay, maximumDelay)
    }

    /// The jittered delay before attempt `attempt`, with `unit` uniform in [0, 1).
    public func delay(attempt: Int, unit: Double) -> Duration {
        baseDelay(attempt: attempt) * (1 - jitter * unit)
    }
}

/// Everything a ``PeerMesh`` needs.
public struct MeshConfiguration: Sendable {
    /// This node's id.
    public var me: PeerID
    /// This node's identity key; its public half is what neighbours pin.
    public var key: Ed25519.PrivateKey
    /// The plan hash (32 bytes); a peer with another plan is refused.
    public var planHash: [UInt8]
    /// Where to listen. Port 0 picks an ephemeral port (see ``PeerMesh/boundPort``).
    public var listen: (host: String, port: Int)
    /// The allowed neighbours: only these may complete a handshake, and each is dialled.
    public var peers: [PeerID: MeshPeer]
    /// The largest frame body accepted or sent, in bytes; a message may be up to
    /// `maximumFrameSize − 17` bytes. Derive it from the model size plus slack. MUST be ≥ 1024.
    public var maximumFrameSize: Int
    /// A handshake not finished within this is dropped. Default: 10 s.
    public var handshakeTimeout: Duration
    /// Inbound connections still in their handshake beyond this are refused. Default: 32.
    public var maximumPendingConnections: Int
    /// Reconnection backoff. Default: 100 ms doubling to 5 s, half jitter.
    public var reconnect: ReconnectPolicy
    /// How long a dial waits for TCP to connect. Default: 3 s.
    public var connectTimeout: Duration

    public init(
        me: PeerID,
        key: Ed25519.PrivateKey,
        planHash: [UInt8],
        listen: (host: String, port: Int),
        peers: [PeerID: MeshPeer],
        maximumFrameSize: Int,
        handshakeTimeout: Duration = .seconds(10),
        maximumPendingConnections: Int = 32,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        connectTimeout: Duration = .seconds(3)
    ) {
        precondition(planHash.count == 32, "the plan hash is 32 bytes")
        precondition(maximumFrameSize >= Framing.handshakeFrameLimit, "maximumFrameSize must be at least 1024 bytes")
        precondition(maximumPendingConnections >= 1, "maximumPendingConnections must be at least 1")
        self.me = me
        self.key = key
        self.planHash = planHash
        self.listen = listen
        self.peers = peers
        self.maximumFrameSize = maximumFrameSize
        self.handshakeTimeout = handshakeTimeout
        self.maximumPendingConnections = maximumPendingConnections
        self.reconnect = reconnect
        self.connectTimeout = connectTimeout
    }

    /// The largest message ``PeerMesh/send(_:to:)`` accepts.
    public var maximumMessageSize: Int { maximumFrameSize - SessionCipher.overhead }
}

/// What happens on the mesh, in order. Messages from one peer arrive in the order they were sent.
public enum MeshEvent: Sendable, Equatable {
    /// A session with this neighbour is open (first one; a replaced duplicate is silent).
    case sessionOpened(PeerID)
    /// The session with this neighbour ended.
    case sessionClosed(PeerID, reason: String)
    /// A message from this neighbour.
    case message(PeerID, [UInt8])
    /// A connection was refused or dropped before it authenticated. `peer` is the id it claimed, if any.
    case refused(peer: String?, reason: String)
}

/// Counters since the mesh started.
public struct MeshCounters: Sendable, Equatable {
    /// Failed handshakes by reason (`unknown-peer`, `bad-signature`, `plan-mismatch`,
    /// `handshake-timeout`, `frame-too-large`, `too-many-pending`, …).
    public var handshakeFailures: [String: Int] = [:]
    /// Frames rejected on established sessions, by reason (`decrypt-failed`, `frame-too-large`, …);
    /// each also closed its session.
    public var framesRejected: [String: Int] = [:]
    public var sessionsOpened = 0
    public var sessionsClosed = 0
    /// Connections closed because a session with the same peer won the simultaneous-dial tie-break.
    public var duplicateSessionsClosed = 0
    public var messagesSent = 0
    public var messagesReceived = 0

    public init() {}

    /// All handshake failures.
    public var totalHandshakeFailures: Int { handshakeFailures.values.reduce(0, +) }
    /// All rejected frames.
    public var totalFramesRejected: Int { framesRejected.values.reduce(0, +) }
}

/// A mesh error: a bind failure names host and port.
public struct MeshError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable { case bindFailed, alreadyRunning }
        private let wrapped: Wrapped
        /// The listening socket could not be bound (port in use, bad address, permissions).
        public static let bindFailed = Code(wrapped: .bindFailed)
        /// ``PeerMesh/run()`` was called twice.
        public static let alreadyRunning = Code(wrapped: .alreadyRunning)
        public var description: String { "\(wrapped)" }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public var description: String {
        if let cause { return "\(message): \(cause)" }
        return message
    }
}

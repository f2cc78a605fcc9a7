public import PlexusCore
public import PlexusCrypto
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

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
    /// Default: 2 s, so a healed partition or a restarted neighbour is noticed within about 2 s
    /// of the next dial. MUST be ≥ `initialDelay`.
    public var maximumDelay: Duration
    /// The fraction of each delay that is randomised away, in [0, 1]. Default: 0.5.
    public var jitter: Double
    /// Seeds the jitter (SplitMix64) for reproducible runs; `nil` (the default) seeds from the CSPRNG.
    public var seed: UInt64?

    public init(
        initialDelay: Duration = .milliseconds(100),
        maximumDelay: Duration = .seconds(2),
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
    /// A fingerprint of this node's whole topology file (32 bytes), announced to every neighbour
    /// as the first record of each session and again after ``PeerMesh/updateTopologyFingerprint(_:)``;
    /// neighbours report theirs as ``MeshEvent/topologyAnnounced(_:fingerprint:)``. Informational:
    /// a different file is never a reason to refuse (the plan hash is). `nil` announces nothing.
    public var topologyFingerprint: [UInt8]?
    /// Where to listen. Port 0 picks an ephemeral port (see ``PeerMesh/boundPort``).
    public var listen: (host: String, port: Int)
    /// The allowed neighbours: only these may complete a handshake, and each is dialled.
    public var peers: [PeerID: MeshPeer]
    /// The largest frame body accepted or sent, in bytes; a message may be up to
    /// `maximumFrameSize − 17` bytes. Derive it from the model size plus slack. MUST be ≥ 1024.
    public var maximumFrameSize: Int
    /// A handshake not finished within this is dropped. Default: 10 s.
    public var handshakeTimeout: Duration
    /// The other side's first handshake message (the hello for an inbound connection, the reply
    /// for one we dialled) must arrive within this, or the connection is dropped as
    /// ``PlexusCore/Reason/handshakeTimeout``: an idle TCP connection holds a pending slot for at
    /// most this long. Default: 1 s. MUST be > 0 and ≤ `handshakeTimeout`.
    public var helloTimeout: Duration
    /// Inbound connections still in their handshake beyond this are refused. Default: 32.
    /// When it is reached, a new connection evicts the oldest pending one of the source address
    /// with the most pending connections, unless that is its own address (then it is refused).
    public var maximumPendingConnections: Int
    /// Inbound connections still in their handshake from one source address beyond this are
    /// refused (``PlexusCore/Reason/tooManyPending``). Default: 4. MUST be ≥ 1.
    public var maximumPendingPerAddress: Int
    /// Refused and failed unauthenticated connections are counted by reason and logged as one
    /// summary line (and one ``MeshEvent/refused(peer:reason:detail:)``) per interval, never one
    /// per connection. Default: 10 s.
    public var refusalSummaryInterval: Duration
    /// A sealed keepalive record is sent on a session when nothing else was sent for this long.
    /// Default: 1 s. MUST be > 0.
    public var keepaliveInterval: Duration
    /// A session (or an authenticated connection) that received nothing, not even a keepalive,
    /// for this long is closed with ``PlexusCore/Reason/idleTimeout`` and redialled by the
    /// backoff. Checked every half keepalive interval; suspended while inbound reading is paused
    /// for a slow consumer. Default: 3 s. MUST be ≥ 2 × `keepaliveInterval`.
    public var idleTimeout: Duration
    /// Bytes sealed onto a session but not yet written to its socket above which
    /// ``PeerMesh/send(_:to:)`` reports ``SendResult/peerNotReading``. Default: 8 MiB or two
    /// maximum frames, whichever is larger.
    public var outboundHighWatermark: Int
    /// Queued outbound bytes past which the session is closed with
    /// ``PlexusCore/Reason/outboundOverflow``. Default: 4 × `outboundHighWatermark`. MUST be ≥
    /// `outboundHighWatermark`.
    public var outboundHardLimit: Int
    /// Undelivered events in ``PeerMesh/events`` above which the mesh stops reading from every
    /// session (NIO `autoRead` off) until the consumer has taken them down to half. Default: 256.
    /// MUST be ≥ 2.
    public var inboundEventWatermark: Int
    /// Reconnection backoff. Default: 100 ms doubling to 2 s, half jitter.
    public var reconnect: ReconnectPolicy
    /// How long a dial waits for TCP to connect. Default: 3 s.
    public var connectTimeout: Duration

    public init(
        me: PeerID,
        key: Ed25519.PrivateKey,
        planHash: [UInt8],
        topologyFingerprint: [UInt8]? = nil,
        listen: (host: String, port: Int),
        peers: [PeerID: MeshPeer],
        maximumFrameSize: Int,
        handshakeTimeout: Duration = .seconds(10),
        helloTimeout: Duration = .seconds(1),
        maximumPendingConnections: Int = 32,
        maximumPendingPerAddress: Int = 4,
        refusalSummaryInterval: Duration = .seconds(10),
        keepaliveInterval: Duration = .seconds(1),
        idleTimeout: Duration = .seconds(3),
        outboundHighWatermark: Int? = nil,
        outboundHardLimit: Int? = nil,
        inboundEventWatermark: Int = 256,
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        connectTimeout: Duration = .seconds(3)
    ) {
        precondition(planHash.count == 32, "the plan hash is 32 bytes")
        precondition(topologyFingerprint.map { $0.count == 32 } ?? true, "the topology fingerprint is 32 bytes")
        precondition(maximumFrameSize >= Framing.handshakeFrameLimit, "maximumFrameSize must be at least 1024 bytes")
        precondition(maximumPendingConnections >= 1, "maximumPendingConnections must be at least 1")
        self.me = me
        self.key = key
        self.planHash = planHash
        self.topologyFingerprint = topologyFingerprint
        self.listen = listen
        self.peers = peers
        self.maximumFrameSize = maximumFrameSize
        precondition(maximumPendingPerAddress >= 1, "maximumPendingPerAddress must be at least 1")
        precondition(keepaliveInterval > .zero && idleTimeout >= keepaliveInterval * 2, "idleTimeout must be at least twice keepaliveInterval")
        precondition(helloTimeout > .zero, "helloTimeout must be positive")
        precondition(inboundEventWatermark >= 2, "inboundEventWatermark must be at least 2")
        self.handshakeTimeout = handshakeTimeout
        self.helloTimeout = helloTimeout
        self.maximumPendingConnections = maximumPendingConnections
        self.maximumPendingPerAddress = maximumPendingPerAddress
        self.refusalSummaryInterval = refusalSummaryInterval
        self.keepaliveInterval = keepaliveInterval
        self.idleTimeout = idleTimeout
        let high = outboundHighWatermark ?? max(8 << 20, 2 * maximumFrameSize)
        self.outboundHighWatermark = high
        self.outboundHardLimit = outboundHardLimit ?? 4 * high
        precondition(self.outboundHardLimit >= high, "outboundHardLimit must be at least outboundHighWatermark")
        self.inboundEventWatermark = inboundEventWatermark
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
    /// The session with this neighbour ended: why, and a sentence (never key material).
    case sessionClosed(PeerID, reason: Reason, detail: String)
    /// A message from this neighbour.
    case message(PeerID, [UInt8])
    /// The neighbour's topology-file fingerprint (32 bytes): sent on every new session (so it may
    /// arrive just before ``sessionOpened(_:)``, and once per connection of a simultaneous dial)
    /// and again whenever its file changes.
    case topologyAnnounced(PeerID, fingerprint: [UInt8])
    /// A connection was refused or dropped before it authenticated. `peer` is the id it claimed
    /// when that id is a neighbour's (reported one by one); refusals of strangers are counted and
    /// reported as one summary per ``MeshConfiguration/refusalSummaryInterval`` with `peer` `nil`,
    /// the most frequent reason and a `detail` listing the counts.
    case refused(peer: String?, reason: Reason, detail: String)
}

/// What ``PeerMesh/send(_:to:)`` did with a message.
public enum SendResult: Sendable, Equatable {
    /// Sealed and queued on the session.
    case sent
    /// Sealed and queued, but the session's outbound queue is above
    /// ``MeshConfiguration/outboundHighWatermark``: the peer is not reading; slow down.
    case peerNotReading
    /// No open session with this peer (nothing was sent).
    case noSession
    /// Larger than ``MeshConfiguration/maximumMessageSize`` (nothing was sent).
    case tooLarge
    /// The queue was past ``MeshConfiguration/outboundHardLimit``: the session was closed with
    /// ``PlexusCore/Reason/outboundOverflow`` (nothing was sent).
    case overflowed

    /// Whether the message was queued for the peer.
    public var isQueued: Bool { self == .sent || self == .peerNotReading }
}

/// Counters since the mesh started.
public struct MeshCounters: Sendable, Equatable {
    /// Failed or refused unauthenticated connections, by reason (``PlexusCore/Reason/unknownPeer``,
    /// ``PlexusCore/Reason/badSignature``, ``PlexusCore/Reason/handshakeTimeout``,
    /// ``PlexusCore/Reason/tooManyPending``, …).
    public var handshakeFailures: [Reason: Int] = [:]
    /// Frames rejected on established sessions, by reason (``PlexusCore/Reason/decryptFailed``,
    /// ``PlexusCore/Reason/frameTooLarge``, …); each also closed its session.
    public var framesRejected: [Reason: Int] = [:]
    /// Sessions closed, by reason.
    public var sessionsClosedBy: [Reason: Int] = [:]
    public var sessionsOpened = 0
    public var sessionsClosed = 0
    /// Connections closed because the pair's authority chose another connection with the same peer.
    public var duplicateSessionsClosed = 0
    public var messagesSent = 0
    public var messagesReceived = 0
    /// The most events ever buffered in ``PeerMesh/events`` for the consumer.
    public var maximumBufferedEvents = 0
    /// Times inbound reading was paused for a slow consumer.
    public var readPauses = 0

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
        if let cause { return "\(message): \(MeshError.plainReason(cause))" }
        return message
    }

    /// Why a socket call failed, without NIO's internals: a failed system call as its errno's text
    /// ("address already in use"), anything else as it describes itself.
    public static func plainReason(_ error: any Error) -> String {
        guard let io = error as? IOError else { return "\(error)" }
        let text = String(cString: strerror(io.errnoCode))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}

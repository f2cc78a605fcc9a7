import Foundation
import Logging
import NIOCore
import NIOPosix
public import PlexusCore
import PlexusLog
import ServiceLifecycle
import Synchronization

/// What `plexus status` shows: the node's round and plan, its statistics round, its topology
/// file, and each neighbour's session — the node's `wg show`.
public struct NodeStatus: Codable, Sendable, Equatable {
    public struct Neighbour: Codable, Sendable, Equatable {
        public var id: String
        /// Whether an authenticated session is open now.
        public var sessionUp: Bool
        /// Unix time the session opened (when up) or closed (when down); nil if there never was one.
        public var since: Double?
        /// Unix time of the last completed handshake.
        public var lastHandshake: Double?
        /// Message bytes sent to and received from this neighbour since the node started.
        public var bytesSent: Int
        public var bytesReceived: Int
        /// Rounds since its last delta (0 = up to date); nil before training.
        public var staleness: Int?
        /// Whether it announced the same topology file (nil: not announced yet).
        public var sameTopology: Bool?
        /// Whether peer scoring took it out of the consensus step.
        public var quarantined: Bool

        public init(
            id: String, sessionUp: Bool, since: Double?, lastHandshake: Double?, bytesSent: Int, bytesReceived: Int,
            staleness: Int?, sameTopology: Bool?, quarantined: Bool
        ) {
            self.id = id
            self.sessionUp = sessionUp
            self.since = since
            self.lastHandshake = lastHandshake
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
            self.staleness = staleness
            self.sameTopology = sameTopology
            self.quarantined = quarantined
        }
    }

    /// The format of this value (a client refuses a format it does not know).
    public var format: Int = 1
    public var peer: String
    public var network: String
    public var version: String
    public var topologyFingerprint: String
    public var planHash: String
    /// `statistics` (the statistics round runs), `training` or `finished`.
    public var phase: String
    public var round: Int
    public var planRounds: Int
    /// Sites whose signed statistics are in, of the topology's sites.
    public var statisticsReceived: Int
    public var statisticsExpected: Int
    public var uptimeSeconds: Double
    public var neighbours: [Neighbour]

    public init(
        peer: String, network: String, version: String, topologyFingerprint: String, planHash: String, phase: String,
        round: Int, planRounds: Int, statisticsReceived: Int, statisticsExpected: Int, uptimeSeconds: Double, neighbours: [Neighbour]
    ) {
        self.peer = peer
        self.network = network
        self.version = version
        self.topologyFingerprint = topologyFingerprint
        self.planHash = planHash
        self.phase = phase
        self.round = round
        self.planRounds = planRounds
        self.statisticsReceived = statisticsReceived
        self.statisticsExpected = statisticsExpected
        self.uptimeSeconds = uptimeSeconds
        self.neighbours = neighbours
    }
}

/// The control socket's framing — our own, fixed and bounded, like every other decoder:
///
///     request   "PXST" ‖ version u8 (1) ‖ command u8 (1 = status)                 6 bytes
///     response  "PXST" ‖ version u8 (1) ‖ result u8 ‖ length u32 big-endian ‖ body
///               result 0: the body is a ``NodeStatus`` as JSON (UTF-8, ≤ 1 MiB);
///               result 1: unsupported version, 2: unknown command (the body says so in text)
///
/// Test vector: the status request is `50 58 53 54 01 01`; a refusal of version 2 is
/// `50 58 53 54 01 01 00 00 00 1c` followed by "unsupported version 2 (1 is)".
public enum ControlProtocol {
    public static let magic: [UInt8] = Array("PXST".utf8)
    public static let version: UInt8 = 1
    public static let statusCommand: UInt8 = 1
    public static let requestLength = 6
    public static let headerLength = 10
    public static let maximumBody = 1 << 20

    public static var statusRequest: [UInt8] { magic + [version, statusCommand] }

    public enum Result: UInt8, Sendable { case ok = 0, unsupportedVersion = 1, unknownCommand = 2 }

    public static func response(_ result: Result, body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return magic + [version, result.rawValue, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + body
    }

    /// The answer to a request: its result and body, or nil to keep reading (fewer than 6 bytes).
    public static func answer(_ request: [UInt8], status: () async -> NodeStatus) async -> [UInt8]? {
        guard request.count >= requestLength else {
            return request.elementsEqual(magic.prefix(request.count)) ? nil : response(.unknownCommand, body: Array("not a status request".utf8))
        }
        guard Array(request.prefix(4)) == magic else { return response(.unknownCommand, body: Array("not a status request".utf8)) }
        guard request[4] == version else { return response(.unsupportedVersion, body: Array("unsupported version \(request[4]) (\(version) is)".utf8)) }
        guard request[5] == statusCommand, request.count == requestLength else {
            return response(.unknownCommand, body: Array("unknown command \(request[5])".utf8))
        }
        let body = (try? PlexusJSON.encode(await status(), pretty: false)) ?? []
        return response(.ok, body: body)
    }

    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Decodes a whole response, refusing anything but a well-formed status of format 1.
    public static func decode(_ bytes: [UInt8]) throws(Error) -> NodeStatus {
        guard bytes.count >= headerLength, Array(bytes.prefix(4)) == magic else { throw Error(description: "not a Plexus control socket (bad magic)") }
        guard bytes[4] == version else { throw Error(description: "the node speaks control version \(bytes[4]); this plexus speaks \(version)") }
        let length = Int(bytes[6]) << 24 | Int(bytes[7]) << 16 | Int(bytes[8]) << 8 | Int(bytes[9])
        guard length <= maximumBody, bytes.count == headerLength + length else { throw Error(description: "a response of \(bytes.count) bytes announcing \(length)") }
        let body = Array(bytes[headerLength...])
        guard let result = Result(rawValue: bytes[5]) else { throw Error(description: "unknown result \(bytes[5])") }
        guard result == .ok else { throw Error(description: "the node refused: \(String(decoding: body, as: UTF8.self))") }
        let status: NodeStatus
        do { status = try PlexusJSON.decode(NodeStatus.self, from: body) } catch { throw Error(description: "malformed status: \(error)") }
        guard status.format == 1 else { throw Error(description: "status format \(status.format) is not known to this plexus") }
        return status
    }

    /// Where a node's control socket is: `<state-dir>/<peer>.sock`, or without a state
    /// directory `$XDG_RUNTIME_DIR/plexus/<peer>.sock` (else `/tmp/plexus-<uid>/<peer>.sock`).
    public static func path(stateDirectory: String?, peer: PeerID) -> String {
        if let stateDirectory { return stateDirectory + "/" + peer.rawValue + ".sock" }
        return runtimeDirectory() + "/" + peer.rawValue + ".sock"
    }

    static func runtimeDirectory() -> String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") { return runtime + "/plexus" }
        return "/tmp/plexus-\(getuid())"
    }

    /// The longest socket path the kernel takes (`sun_path` less its terminating NUL).
    public static let maximumPathLength = 107

    /// Asks the node at `path` for its status (a blocking client for `plexus status`).
    public static func query(path: String, timeout: Int = 5) throws(Error) -> NodeStatus {
        guard path.utf8.count <= maximumPathLength else { throw Error(description: "\(path): longer than a socket path may be (\(maximumPathLength) bytes)") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Error(description: "cannot make a socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard connected else {
            throw Error(description: "\(path): cannot reach the node: \(String(cString: strerror(errno))) (is it running, with this --state-dir and --peer?)")
        }
        let request = statusRequest
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while response.count <= headerLength + maximumBody {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Error(description: "\(path): no answer within \(timeout) s: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            response += buffer[0..<n]
        }
        return try decode(response)
    }
}

/// The node's control socket: a Unix socket (mode 0600, never on the network) answering
/// ``ControlProtocol`` requests with ``NodeStatus``. At most ``maximumConnections`` at once;
/// a connection that has not sent its 6-byte request within 5 s is closed.
final class ControlServer: Service, Sendable {
    let path: String
    let status: @Sendable () async -> NodeStatus
    let logger: Logger
    static let maximumConnections = 8

    init(path: String, logger: Logger, status: @escaping @Sendable () async -> NodeStatus) {
        self.path = path
        self.status = status
        self.logger = logger
    }

    func run() async throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !FileManager.default.fileExists(atPath: directory) { mkdir(directory, 0o700) }
        // A socket left by a node that was killed: nothing answers it any more.
        var info = stat()
        if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK {
            if (try? ControlProtocol.query(path: path, timeout: 1)) != nil {
                logger.warning("Another node answers on the control socket; plexus status will not reach this one", metadata: ["socket": "\(path)"])
                return
            }
            unlink(path)
        }
        let status = self.status
        let open = ConnectionCount()
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { child in
                    child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(5)))
                        try child.pipeline.syncOperations.addHandler(ControlHandler(status: status, open: open))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        } catch {
            logger.warning("Cannot open the control socket; plexus status will not reach this node", metadata: ["socket": "\(path)", "error": "\(error)"])
            return
        }
        chmod(path, 0o600)
        logger.info("Control socket listening", metadata: ["socket": "\(path)"])
        // On a graceful shutdown and on cancellation (the group cancels every service when one
        // fails, e.g. the mesh cannot bind): the channel closes and run() returns.
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
        unlink(path)
    }
}

/// How many control connections are open (shared by the handlers of one server).
final class ConnectionCount: Sendable {
    private let value = Mutex(0)

    /// Counts one more connection if fewer than `limit` are open.
    func enter(limit: Int) -> Bool {
        value.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func leave() { value.withLock { $0 -= 1 } }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let status: @Sendable () async -> NodeStatus
    let open: ConnectionCount
    private var request: [UInt8] = []
    private var admitted = false
    private var answered = false

    init(status: @escaping @Sendable () async -> NodeStatus, open: ConnectionCount) {
        self.status = status
        self.open = open
    }

    func channelActive(context: ChannelHandlerContext) {
        admitted = open.enter(limit: ControlServer.maximumConnections)
        if !admitted { context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted { open.leave() }
        admitted = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        var buffer = unwrapInboundIn(data)
        // Never more than a request's worth (plus one byte, to see a longer one) is kept.
        let take = min(buffer.readableBytes, ControlProtocol.requestLength + 1 - request.count)
        if take > 0, let bytes = buffer.readBytes(length: take) { request += bytes }
        let request = self.request
        let status = self.status
        let channel = context.channel
        let loop = context.eventLoop
        if request.count < ControlProtocol.requestLength && request.elementsEqual(ControlProtocol.magic.prefix(request.count)) { return }
        answered = true
        let promise = loop.makePromise(of: [UInt8].self)
        promise.completeWithTask {
            await ControlProtocol.answer(request, status: status) ?? []
        }
        promise.futureResult.whenSuccess { bytes in
            channel.writeAndFlush(ByteBuffer(bytes: bytes)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Swift.Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ControlHandler: Sendable {}

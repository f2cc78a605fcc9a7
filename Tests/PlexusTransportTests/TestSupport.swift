import Logging
import NIOCore
import NIOPosix
import PlexusCore
import PlexusCrypto
import PlexusTransport
import Synchronization
import Testing

let testPlan = BLAKE2b.hash256(Array("test plan".utf8))
let otherPlan = BLAKE2b.hash256(Array("another plan".utf8))

struct Identity {
    var id: PeerID
    var key: Ed25519.PrivateKey
    init(_ name: String) {
        id = PeerID(name)!
        key = Ed25519.PrivateKey()
    }
}

/// Log lines captured in memory (never `LoggingSystem.bootstrap` in a test).
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in CapturingHandler(capture: self) }
    }

    var all: [String] { lines.withLock { $0 } }

    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var all = metadata
            for (key, value) in event.metadata ?? [:] { all[key] = value }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(rendered)") }
        }
    }
}

/// Collects a mesh's events for bounded waits.
final class EventRecorder: Sendable {
    let events = Mutex<[MeshEvent]>([])

    init(_ stream: MeshEvents) {
        Task {
            for await event in stream { self.events.withLock { $0.append(event) } }
        }
    }

    var all: [MeshEvent] { events.withLock { $0 } }

    func messages(from peer: PeerID) -> [[UInt8]] {
        all.compactMap { if case .message(peer, let bytes) = $0 { return bytes } else { return nil } }
    }

    func opened(_ peer: PeerID) -> Int {
        all.filter { $0 == .sessionOpened(peer) }.count
    }

    /// Whether the session with `peer` was reported closed for `reason`.
    func closed(_ peer: PeerID, because reason: Reason) -> Bool {
        all.contains { if case .sessionClosed(peer, reason, _) = $0 { return true } else { return false } }
    }

    func closed(_ peer: PeerID) -> Int {
        all.filter { if case .sessionClosed(peer, _, _) = $0 { return true } else { return false } }.count
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes. The default is generous on
/// purpose: a wait that succeeds returns at once, and in a full run on 2 cores a test task can
/// wait tens of seconds for a cooperative thread while other suites compute.
func eventually(
    timeout: Duration = .seconds(60),
    _ condition: () async -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

/// A running mesh and everything a test looks at.
final class RunningMesh: Sendable {
    let identity: Identity
    let mesh: PeerMesh
    let recorder: EventRecorder
    let task: Task<Void, any Error>
    let port: Int

    var id: PeerID { identity.id }

    init(identity: Identity, mesh: PeerMesh, recorder: EventRecorder, task: Task<Void, any Error>, port: Int) {
        self.identity = identity
        self.mesh = mesh
        self.recorder = recorder
        self.task = task
        self.port = port
    }

    static func start(
        _ identity: Identity,
        planHash: [UInt8] = testPlan,
        port: Int = 0,
        peers: [PeerID: MeshPeer] = [:],
        logs: LogCapture,
        configure: (inout MeshConfiguration) -> Void = { _ in }
    ) async -> RunningMesh {
        var configuration = MeshConfiguration(
            me: identity.id, key: identity.key, planHash: planHash, listen: ("127.0.0.1", port), peers: peers,
            maximumFrameSize: 64 * 1024,
            reconnect: ReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(400), seed: 7)
        )
        configure(&configuration)
        let mesh = PeerMesh(configuration: configuration, logger: logs.logger(identity.id.rawValue))
        let recorder = EventRecorder(mesh.events)
        let task = Task { try await mesh.run() }
        let bound = await mesh.boundPort
        return RunningMesh(identity: identity, mesh: mesh, recorder: recorder, task: task, port: bound)
    }

    func peerEntry() -> MeshPeer {
        MeshPeer(host: "127.0.0.1", port: port, publicKey: identity.key.publicKey)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Connects every pair of `meshes` by giving each the others as peers.
func connectAll(_ meshes: [RunningMesh]) async {
    for mesh in meshes {
        var peers: [PeerID: MeshPeer] = [:]
        for other in meshes where other.id != mesh.id { peers[other.id] = other.peerEntry() }
        await mesh.mesh.updatePeers(peers)
    }
}

func frame(_ body: [UInt8]) -> [UInt8] {
    var writer = ByteWriter()
    writer.write(littleEndian: UInt32(body.count))
    writer.write(contentsOf: body)
    return writer.bytes
}

/// A hostile client on a raw TCP socket: writes whatever the test says, records what comes back.
final class RawClient: Sendable {
    let channel: any Channel
    let received: Box
    let offset = Mutex(0)

    final class Box: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    private init(channel: any Channel, received: Box) {
        self.channel = channel
        self.received = received
    }

    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let box: Box
        init(box: Box) { self.box = box }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            box.bytes.withLock { $0 += bytes }
        }
    }

    static func connect(port: Int) async throws -> RawClient {
        let box = Box()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(box: box))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, received: box)
    }

    var bytes: [UInt8] { received.bytes.withLock { $0 } }

    func write(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// The next whole frame body received, or `nil` after `timeout`.
    func nextFrame(timeout: Duration = .seconds(5)) async -> [UInt8]? {
        var result: [UInt8]?
        _ = await eventually(timeout: timeout) {
            let all = bytes
            let start = offset.withLock { $0 }
            guard all.count >= start + 4 else { return false }
            let length = Int(all[start]) | Int(all[start + 1]) << 8 | Int(all[start + 2]) << 16 | Int(all[start + 3]) << 24
            guard all.count >= start + 4 + length else { return false }
            result = Array(all[(start + 4)..<(start + 4 + length)])
            offset.withLock { $0 = start + 4 + length }
            return true
        }
        return result
    }

    func waitClosed(timeout: Duration = .seconds(5)) async -> Bool {
        await eventually(timeout: timeout) { !channel.isActive }
    }

    func close() async {
        try? await channel.close()
    }
}

extension PeerMesh {
    /// Whether `send` queued the message (sent, or queued for a slow reader).
    func sendQueued(_ message: [UInt8], to peer: PeerID) async -> Bool {
        await send(message, to: peer).isQueued
    }
}

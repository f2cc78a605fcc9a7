import CZstd
import Foundation
import Logging
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusTestKit
import PlexusTopology
import PlexusTransport

/// One peer of a topology played by the test instead of a `plexus run`: it holds the peer's real
/// key (pinned in the topology), completes the real handshake through the real `PeerMesh`, and
/// then sends whatever the test crafts — validly signed and sealed, but hostile. It answers the
/// statistics round with `statistics` (when set) on every session and every request, and
/// otherwise stays silent: it never sends a delta or keyframe of its own.
final class HostilePeer: @unchecked Sendable {
    /// Where every hostile peer's tasks run (``ThreadExecutor``): its mesh, its event loop, and
    /// the test's attack.
    static let executor = ThreadExecutor(name: "hostile-peer")

    let me: PeerID
    let key: Ed25519.PrivateKey
    let planHash: [UInt8]
    let parameterCount: Int
    /// The sample count its (honest) statistics message declares: what its envelopes advertise
    /// unless an attack lies about it.
    let declaredSamples: UInt64
    let mesh: PeerMesh
    private let lock = NSLock()
    private var open: Set<PeerID> = []
    private var _statistics: [UInt8]?
    private var received: [UInt8: Int] = [:]
    /// Envelope messages (type 1) received, oldest first, at most 256 (the oldest dropped).
    private var _envelopes: [(from: PeerID, bytes: [UInt8])] = []
    private var tasks: [_Concurrency.Task<Void, Never>] = []
    private var _reading = true

    init(topology: Topology, peer: PeerID, keyPath: String, parameterCount: Int, declaredSamples: UInt64, statistics: [UInt8]?) throws {
        me = peer
        self.declaredSamples = declaredSamples
        key = try KeyFile.read(from: keyPath).key
        planHash = topology.planHash
        self.parameterCount = parameterCount
        _statistics = statistics
        let endpoint = topology.peer(peer)!.endpoint
        let peers = Dictionary(uniqueKeysWithValues: topology.neighbours(of: peer).map { id in
            let p = topology.peer(id)!
            return (id, MeshPeer(host: p.endpoint.host, port: p.endpoint.port, publicKey: p.publicKey))
        })
        var logger = Logger(label: "hostile-peer")
        logger.logLevel = .critical
        mesh = PeerMesh(
            configuration: MeshConfiguration(
                me: peer, key: key, planHash: topology.planHash, listen: (endpoint.host, endpoint.port), peers: peers,
                maximumFrameSize: 1 << 20
            ),
            logger: logger
        )
        let mesh = self.mesh
        // On a thread of their own: the suites running beside this one can hold the cooperative
        // pool for a minute (CI saw the sessions open but their events unread for 60 s).
        tasks.append(_Concurrency.Task(executorPreference: Self.executor) { try? await mesh.run() })
        tasks.append(_Concurrency.Task(executorPreference: Self.executor) { [weak self] in
            for await event in mesh.events {
                guard let self else { return }
                // Not reading: events pile up until the mesh stops reading its sockets.
                while !self.reading && !_Concurrency.Task.isCancelled { try? await _Concurrency.Task.sleep(for: .milliseconds(50)) }
                switch event {
                case .sessionOpened(let other):
                    self.lock.withLock { _ = self.open.insert(other) }
                    if let statistics = self.statistics { _ = await mesh.send(statistics, to: other) }
                case .sessionClosed(let other, _, _):
                    self.lock.withLock { _ = self.open.remove(other) }
                case .message(let other, let bytes):
                    let type = bytes.first ?? 0
                    self.lock.withLock {
                        self.received[type, default: 0] += 1
                        if type == 1 {
                            self._envelopes.append((other, bytes))
                            if self._envelopes.count > 256 { self._envelopes.removeFirst() }
                        }
                    }
                    if type == StatisticsRound.requestType, let statistics = self.statistics { _ = await mesh.send(statistics, to: other) }
                case .refused, .topologyAnnounced:
                    break
                }
            }
        })
    }

    /// The signed statistics message it answers the statistics round with (nil: none).
    var statistics: [UInt8]? {
        get { lock.withLock { _statistics } }
        set { lock.withLock { _statistics = newValue } }
    }

    /// false: it stops taking events, so its mesh soon stops reading its sockets (it still sends).
    var reading: Bool {
        get { lock.withLock { _reading } }
        set { lock.withLock { _reading = newValue } }
    }

    var openSessions: Set<PeerID> { lock.withLock { open } }

    /// The envelope messages (type 1) received since the last call, oldest first.
    func takeEnvelopes() -> [(from: PeerID, bytes: [UInt8])] {
        lock.withLock {
            defer { _envelopes.removeAll() }
            return _envelopes
        }
    }

    /// Waits (at most `timeout` seconds) until sessions with all of `peers` are open.
    ///
    /// The sessions are checked once more after the deadline: on a loaded machine this task can
    /// be starved past the deadline while the sessions opened (CI saw it once).
    func waitForSessions(_ peers: [PeerID], timeout: TimeInterval = 60) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && !_Concurrency.Task.isCancelled {
            if Set(peers).isSubset(of: openSessions) { return true }
            try? await _Concurrency.Task.sleep(for: .milliseconds(20))
        }
        return Set(peers).isSubset(of: openSessions)
    }

    @discardableResult
    func send(_ bytes: [UInt8], to peer: PeerID) async -> SendResult { await mesh.send(bytes, to: peer) }

    func stop() {
        for task in tasks { task.cancel() }
    }

    // MARK: Crafted messages

    /// A type-3 statistics message of `summary`, signed by this peer's real key.
    func statisticsMessage(_ payload: [UInt8]) -> [UInt8] {
        StatisticsRound.seal(payload: payload, origin: me, planHash: planHash, key: key)
    }

    /// A type-1 message: the envelope of `delta` with this header, signed by this peer's real key.
    func envelope(
        _ kind: DeltaEnvelope.Kind, sequence: UInt64, round: UInt64, base: UInt64 = 0, samples: UInt64, _ delta: EncodedDelta
    ) -> [UInt8] {
        let header = DeltaEnvelope.Header(
            kind: kind, planHash: planHash, origin: me, sequence: sequence, round: round, baseSequence: base, sampleCount: samples
        )
        return GossipMessage.envelope(DeltaEnvelope(header: header, delta: delta).sealed(by: key)).encoded()
    }

    /// The same envelope with its signature's first byte flipped.
    func badlySigned(_ message: [UInt8]) -> [UInt8] {
        var bytes = message
        bytes[bytes.count - 64] ^= 0x01
        return bytes
    }

    func lossless(_ values: [Float]) -> EncodedDelta {
        try! DeltaEncoder(codec: .lossless).encode(values)
    }

    /// An int8 delta whose every chunk scale is `scale` and every value is `q`: no encoder makes
    /// it (it would compute the scale from the values), so its raw layout is built by hand.
    func int8(scale: Float, q: Int8, chunk: Int = CodecSpec.defaultInt8Chunk) -> EncodedDelta {
        var raw = ByteWriter()
        for _ in 0..<((parameterCount + chunk - 1) / chunk) { raw.write(float32: scale) }
        for _ in 0..<parameterCount { raw.write(UInt8(bitPattern: q)) }
        return EncodedDelta(
            codec: WireCodec(.int8(chunk: chunk), count: parameterCount), parameterCount: parameterCount,
            rawLength: raw.bytes.count, payload: zstd(raw.bytes)
        )
    }

    private func zstd(_ raw: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(raw.count))
        let n = out.withUnsafeMutableBytes { o in raw.withUnsafeBytes { ZSTD_compress(o.baseAddress, o.count, $0.baseAddress, $0.count, 1) } }
        precondition(ZSTD_isError(n) == 0)
        return Array(out.prefix(n))
    }
}

/// A `plexus run` process's exit, waited for without blocking a cooperative thread.
func exitStatus(_ node: Background, within timeout: TimeInterval) async -> Int32? {
    let deadline = Date().addingTimeInterval(timeout)
    while node.process.isRunning && Date() < deadline { try? await _Concurrency.Task.sleep(for: .milliseconds(20)) }
    if node.process.isRunning {
        node.kill9()
        return nil
    }
    return node.process.terminationStatus
}

/// The process's resident set size now and its peak, in kB, from /proc/<pid>/status.
func memory(of pid: Int32) -> (rss: Int, peak: Int)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    func field(_ name: String) -> Int? {
        text.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
    }
    guard let rss = field("VmRSS"), let peak = field("VmHWM") else { return nil }
    return (rss, peak)
}

/// A value shared with a `@Sendable` closure, behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

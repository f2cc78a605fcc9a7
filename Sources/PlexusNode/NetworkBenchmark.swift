import Foundation
public import Logging
public import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusTransport

/// `plexus bench network`: whole rounds of the real protocol over real loopback TCP — N
/// instances, each behind its own ``PeerMesh`` (handshake, sealed records), in this process — with
/// a synthetic learner, so that the time measured is the protocol's and the network's.
public enum NetworkBenchmark {
    public struct Result: Sendable {
        public var nodes: Int
        public var parameters: Int
        public var codec: String
        public var rounds: Int
        public var secondsPerRound: Double
        /// Message bytes sent by all nodes per round (every link, both directions).
        public var bytesPerRound: Double
    }

    /// Changes every parameter a little each round, by a hashed pseudo-random amount: a dense,
    /// incompressible-looking update like a gradient step's, without the cost of one.
    struct SyntheticLearner: LocalLearner {
        let sampleCount: Int
        let seed: UInt64
        mutating func train(_ parameters: inout [Float], round: Int) -> Double {
            let salt = UInt32(truncatingIfNeeded: seed &* 0x9E37_79B9 &+ UInt64(round) &* 0x85EB_CA77)
            parameters.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count {
                    var h = UInt32(truncatingIfNeeded: i) &* 0x9E37_79B1 ^ salt
                    h ^= h >> 15
                    h &*= 0x85EB_CA77
                    h ^= h >> 13
                    p[i] += (Float(h & 0xFFFF) / 65536 - 0.5) * 1e-3
                }
            }
            return 0
        }
    }

    actor Driver {
        var instance: GossipInstance<SyntheticLearner>
        let mesh: PeerMesh
        var queues: [PeerID: AsyncStream<[UInt8]>.Continuation] = [:]
        var bytesSent = 0
        var finished = false
        var opened = 0
        let expected: Int

        init(instance: GossipInstance<SyntheticLearner>, mesh: PeerMesh, neighbours: [PeerID]) {
            self.instance = instance
            self.mesh = mesh
            self.expected = neighbours.count
            for peer in neighbours {
                let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
                queues[peer] = continuation
                _Concurrency.Task { for await bytes in stream { _ = await mesh.send(bytes, to: peer) } }
            }
        }

        func handle(_ event: MeshEvent) {
            switch event {
            case .sessionOpened(let peer):
                opened += 1
                carryOut(instance.sessionOpened(with: peer))
            case .message(let peer, let bytes):
                carryOut(instance.receive(bytes, from: peer))
            default:
                break
            }
        }

        var allOpen: Bool { opened >= expected }

        func start() { carryOut(instance.start()) }

        func carryOut(_ directives: [GossipDirective]) {
            for directive in directives {
                switch directive {
                case .send(let peer, let bytes):
                    bytesSent += bytes.count
                    queues[peer]?.yield(bytes)
                case .scheduleDeadline(let round, let after):
                    _Concurrency.Task { [weak self] in
                        try? await _Concurrency.Task.sleep(for: after)
                        await self?.deadline(round)
                    }
                case .finished:
                    finished = true
                default:
                    break
                }
            }
        }

        func deadline(_ round: Int) { carryOut(instance.deadlinePassed(round: round)) }

        func stop() { for (_, q) in queues { q.finish() } }
    }

    /// Runs `rounds` rounds on a full mesh (3 nodes) or a torus (16 nodes: 4 × 4).
    public static func run(nodes: Int, parameters: Int, codec: CodecSpec, rounds: Int, logger: Logger) async throws -> Result {
        let ids = (0..<nodes).map { PeerID("bench-\($0)")! }
        let keys = ids.map { _ in Ed25519.PrivateKey() }
        let graph: [[Int]] = nodes <= 4
            ? (0..<nodes).map { i in (0..<nodes).filter { $0 != i } }
            : torus(nodes)
        let planHash = BLAKE2b.hash256(Array("plexus bench network".utf8))
        var meshes: [PeerMesh] = []
        var ports: [Int] = []
        let frame = max(64 << 10, 4 * parameters + 4 * parameters / 128 + (64 << 10))
        // Bind every mesh first (port 0), then tell each its neighbours' ports.
        var tasks: [_Concurrency.Task<Void, any Error>] = []
        for i in 0..<nodes {
            let mesh = PeerMesh(
                configuration: MeshConfiguration(me: ids[i], key: keys[i], planHash: planHash, listen: ("127.0.0.1", 0), peers: [:], maximumFrameSize: frame),
                logger: logger
            )
            meshes.append(mesh)
            tasks.append(_Concurrency.Task { try await mesh.run() })
            ports.append(await mesh.boundPort)
        }
        var drivers: [Driver] = []
        for i in 0..<nodes {
            var settings = GossipSettings(
                me: ids[i], planHash: planHash, codec: codec, rounds: rounds,
                neighbours: Dictionary(uniqueKeysWithValues: graph[i].map { j in
                    (ids[j], Neighbour(publicKey: keys[j].publicKey, weight: 1 / Double(1 + max(graph[i].count, graph[j].count))))
                })
            )
            settings.consensusStep = codec.isLossless ? 1 : 0.5
            settings.roundDeadline = .seconds(60)
            let instance = GossipInstance(
                settings: settings, key: keys[i], learner: SyntheticLearner(sampleCount: 100, seed: UInt64(i)),
                initialParameters: [Float](repeating: 0.01, count: parameters), clock: { .zero }
            )
            drivers.append(Driver(instance: instance, mesh: meshes[i], neighbours: graph[i].map { ids[$0] }))
        }
        for (i, driver) in drivers.enumerated() {
            let mesh = meshes[i]
            _Concurrency.Task { for await event in mesh.events { await driver.handle(event) } }
            await mesh.updatePeers(Dictionary(uniqueKeysWithValues: graph[i].map { j in
                (ids[j], MeshPeer(host: "127.0.0.1", port: ports[j], publicKey: keys[j].publicKey))
            }))
        }
        // Sessions and keyframes first; the clock starts with round 1.
        let connectDeadline = ContinuousClock.now + .seconds(60)
        for driver in drivers {
            while !(await driver.allOpen) && ContinuousClock.now < connectDeadline { try await _Concurrency.Task.sleep(for: .milliseconds(5)) }
        }
        let started = ContinuousClock.now
        for driver in drivers { await driver.start() }
        let runDeadline = ContinuousClock.now + .seconds(600)
        for driver in drivers {
            while !(await driver.finished) && ContinuousClock.now < runDeadline { try await _Concurrency.Task.sleep(for: .microseconds(200)) }
        }
        let elapsed = ContinuousClock.now - started
        var bytes = 0
        for driver in drivers {
            bytes += await driver.bytesSent
            await driver.stop()
        }
        for task in tasks { task.cancel() }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return Result(
            nodes: nodes, parameters: parameters, codec: codec.description, rounds: rounds,
            secondsPerRound: seconds / Double(rounds), bytesPerRound: Double(bytes) / Double(rounds)
        )
    }

    static func torus(_ n: Int) -> [[Int]] {
        let side = Int(Double(n).squareRoot())
        precondition(side * side == n, "16 nodes run on a 4 × 4 torus")
        return (0..<n).map { i in
            let r = i / side, c = i % side
            return Array(Set([((r + 1) % side) * side + c, ((r + side - 1) % side) * side + c, r * side + (c + 1) % side, r * side + (c + side - 1) % side]))
        }
    }

    /// Loopback TCP throughput, measured now: bytes per second through one connection.
    public static func loopbackThroughput(megabytes: Int = 512) -> Double {
        // A real TCP connection on 127.0.0.1.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let server = accept(listener, nil, nil)
        let total = megabytes << 20
        let started = ContinuousClock.now
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var received = 0
            while received < total {
                let n = buffer.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += n
            }
            done.signal()
        }
        reader.start()
        let chunk = [UInt8](repeating: 7, count: 1 << 20)
        var sent = 0
        while sent < total {
            let n = chunk.withUnsafeBytes { send(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            sent += n
        }
        done.wait()
        let elapsed = ContinuousClock.now - started
        close(client); close(server); close(listener)
        return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}

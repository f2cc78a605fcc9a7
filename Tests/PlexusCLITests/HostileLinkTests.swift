import Foundation
import PlexusCore
import PlexusLog
import PlexusTestKit
import PlexusTopology
import Testing

/// Two honest `plexus run` nodes (wdbc logistic, full mesh of 2) on a bad link and under a
/// pre-authentication flood; every wait is bounded.
@Suite(.serialized) struct HostileLinkTests {
    let data = repositoryRoot + "/Topologies/data/wdbc.csv"
    let split = repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json"
    static let deadlineMilliseconds = 1000

    struct Pair {
        var directory: String
        var path: String
        var topology: Topology
        var ids: [PeerID]
        var listen: [Int]
    }

    /// A two-peer network whose topology names `endpoint(i, port)` for peer i.
    func pair(_ label: String, endpoint: (Int, Int) async throws -> Int = { $1 }) async throws -> Pair {
        let directory = temporaryDirectory(label)
        let base = freePorts(2)
        let generatedTopology = try generateFullMesh(peers: 2, basePort: base, directory: directory, out: directory + "/generated.toml")
        var plan = generatedTopology.plan
        plan.rounds = 1_000_000  // stopped by SIGTERM
        plan.roundDeadlineMilliseconds = Self.deadlineMilliseconds
        var peers: [Topology.Peer] = []
        for (i, peer) in generatedTopology.peers.enumerated() {
            let port = try await endpoint(i, base + i)
            peers.append(Topology.Peer(id: peer.id, endpoint: Endpoint(host: "127.0.0.1", port: port), publicKey: peer.publicKey))
        }
        let topology = Topology(networkName: "pair", plan: plan, peers: peers, links: generatedTopology.links)
        let path = directory + "/network.toml"
        try TopologyWriter.toml(topology).write(toFile: path, atomically: true, encoding: .utf8)
        return Pair(directory: directory, path: path, topology: topology, ids: peers.map(\.id), listen: [base, base + 1])
    }

    func start(_ pair: Pair, _ i: Int, suffix: String = "") throws -> Background {
        let peer = pair.ids[i]
        return try Background([
            "run", "--topology", pair.path, "--peer", peer.rawValue, "--key", "\(pair.directory)/keys/\(peer).key", "--data", data,
            "--state-dir", "\(pair.directory)/state", "--log-dir", "\(pair.directory)/logs", "--log-level", "warning",
            "--split", split, "--site", String(i), "--listen", "127.0.0.1:\(pair.listen[i])",
        ], output: "\(pair.directory)/\(peer)\(suffix).out")
    }

    func log(_ pair: Pair, _ i: Int) -> PeerLog? {
        (try? ConvergenceLogReader.read(directory: pair.directory + "/logs"))?.first { $0.peer == pair.ids[i].rawValue }
    }


    func stop(_ nodes: [Background]) async {
        for node in nodes where node.process.isRunning { kill(node.process.processIdentifier, SIGTERM) }
        for node in nodes { #expect(await exitStatus(node, within: 5) == 0, "\(String(node.log.suffix(2000)))") }
    }

    /// 6. Both directions of the link pass through TCPProxy. It blackholes for 20 s (rounds go
    /// on at one per deadline, on stale copies), then forwards again: within 5 s of healing the
    /// rounds are back at their normal pace (no round of the next 10 takes half a deadline).
    @Test func roundsReturnToNormalPaceAfterABlackhole() async throws {
        var proxies: [TCPProxy] = []
        let pair = try await pair("blackhole") { _, port in
            let proxy = try await TCPProxy.start(targetPort: port)
            proxies.append(proxy)
            return proxy.port
        }
        let nodes = try (0..<2).map { try start(pair, $0) }
        defer { for node in nodes where node.process.isRunning { node.kill9() } }
        let warmed = await eventually(60) { (log(pair, 0)?.rounds.count ?? 0) > 200 && (log(pair, 1)?.rounds.count ?? 0) > 200 }
        #expect(warmed, "\(nodes.map(\.log))")
        let before = log(pair, 0)!.rounds.suffix(100)
        let normal = zip(before, before.dropFirst()).map { $1.time - $0.time }.sorted()[49]
        for proxy in proxies { proxy.set(.blackhole) }
        let cut = Date().timeIntervalSince1970
        try await _Concurrency.Task.sleep(for: .seconds(20))
        for proxy in proxies { proxy.set(.forward) }
        let healed = Date().timeIntervalSince1970
        let slow = Double(Self.deadlineMilliseconds) / 2000
        /// The time after `healed` from which the next 10 rounds each took less than half a deadline.
        func recovery(_ i: Int) -> Double? {
            guard let rounds = log(pair, i)?.rounds.filter({ $0.time >= healed }) else { return nil }
            let gaps = zip(rounds, rounds.dropFirst()).map { ($0.time, $1.time - $0.time) }
            guard gaps.count >= 10 else { return nil }
            for start in 0...(gaps.count - 10) where gaps[start..<(start + 10)].allSatisfy({ $0.1 < slow }) {
                return gaps[start].0 - healed
            }
            return nil
        }
        _ = await eventually(15) { recovery(0) != nil && recovery(1) != nil }
        let during = log(pair, 0)!.rounds.filter { $0.time > cut + 5 && $0.time < healed }
        await stop(nodes)
        let heal = [recovery(0), recovery(1)]
        print("hostile-link blackhole 20 s: normal round \(normal) s, rounds during the partition \(during.count) (deadline \(Self.deadlineMilliseconds) ms), back to normal pace \(heal) s after healing")
        #expect(during.count >= 5, "rounds went on during the partition")
        for h in heal { #expect(h.map { $0 <= 5 } == true, "healed \(heal)") }
        for proxy in proxies { await proxy.stop() }
    }

    /// 7. 34 idle unauthenticated connections to each node's port, held open from distinct
    /// loopback sources (127.0.0.2…), re-opened as the node closes them, while node 1 is killed
    /// and restarted: it rejoins (a session with node 0) within one maximum backoff (2 s) plus
    /// the hello timeout (1 s) of its start.
    @Test func restartRejoinsUnderPreAuthFlood() async throws {
        let pair = try await pair("preauth")
        var nodes = try (0..<2).map { try start(pair, $0) }
        defer { for node in nodes where node.process.isRunning { node.kill9() } }
        #expect(await eventually(60) { (log(pair, 0)?.rounds.count ?? 0) > 50 }, "\(nodes.map(\.log))")
        let flood = IdleFlood(ports: pair.listen, sources: 34)
        let floodTask = _Concurrency.Task.detached { flood.run() }
        try await _Concurrency.Task.sleep(for: .seconds(2))
        nodes[1].kill9()
        try await _Concurrency.Task.sleep(for: .milliseconds(300))
        let restart = Date().timeIntervalSince1970
        nodes[1] = try start(pair, 1, suffix: ".restarted")
        func rejoined() -> Double? {
            log(pair, 0)?.events.first { $0.event == "session_opened" && $0.other == pair.ids[1].rawValue && $0.time > restart }.map { $0.time - restart }
        }
        func started() -> Double? {
            log(pair, 1)?.events.first { $0.time > restart }.map { $0.time - restart }
        }
        _ = await eventually(30) { rejoined() != nil }
        let held = flood.held
        flood.stop()
        await floodTask.value
        let rejoin = rejoined()
        let startUp = started()
        await stop(nodes)
        let refusals = (0..<2).map { i in log(pair, i)?.events.filter { $0.event == "refused" }.count ?? 0 }
        print("hostile-link pre-auth flood: refusals logged \(refusals) (\(Set((0..<2).flatMap { i in log(pair, i)?.events.filter { $0.event == "refused" }.compactMap(\.reason) ?? [] }).sorted())), 34 sources × 2 ports, \(held) connections held at the restart, process start→first log event \(startUp.map { "\($0)" } ?? "nil") s, restart→rejoined \(rejoin.map { "\($0)" } ?? "nil") s, connections opened in all \(flood.opened)")
        #expect(held >= 34, "the flood held connections open")
        #expect(refusals.reduce(0, +) > 0, "the nodes refused (and logged) flood connections")
        let bound = (startUp ?? 1) + 3
        #expect(rejoin.map { $0 <= bound } == true, "rejoined \(rejoin.map { "\($0)" } ?? "never") s after the restart; bound \(bound) s")
    }
}

/// Holds `sources` idle TCP connections to each of `ports` on 127.0.0.1, each bound to its own
/// loopback source address (127.0.0.2, 127.0.0.3, …), re-opening any the node closes. Sends nothing.
final class IdleFlood: @unchecked Sendable {
    let ports: [Int]
    let sources: Int
    private let lock = NSLock()
    private var running = true
    private var _held = 0
    private var _opened = 0

    init(ports: [Int], sources: Int) {
        self.ports = ports
        self.sources = sources
    }

    var held: Int { lock.withLock { _held } }
    var opened: Int { lock.withLock { _opened } }
    func stop() { lock.withLock { running = false } }

    func run() {
        var fds = [Int32](repeating: -1, count: ports.count * sources)
        defer { for fd in fds where fd >= 0 { close(fd) } }
        while lock.withLock({ running }) {
            for slot in fds.indices {
                if fds[slot] >= 0 {
                    var byte: UInt8 = 0
                    let n = recv(fds[slot], &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK))
                    if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                        close(fds[slot])
                        fds[slot] = -1
                    }
                }
                if fds[slot] < 0 {
                    fds[slot] = connect(from: "127.0.0.\(2 + slot % sources)", port: ports[slot / sources])
                    if fds[slot] >= 0 { lock.withLock { _opened += 1 } }
                }
            }
            let count = fds.filter { $0 >= 0 }.count
            lock.withLock { _held = count }
            usleep(20_000)
        }
    }

    private func connect(from source: String, port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &remote) { r in
            r.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !ok {
            close(fd)
            return -1
        }
        return fd
    }
}

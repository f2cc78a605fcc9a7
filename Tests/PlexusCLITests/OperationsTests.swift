import Foundation
import PlexusCore
import PlexusCrypto
import PlexusLog
import PlexusLearning
import PlexusTopology
import Testing

extension ProcessSuites {
/// What a consortium does to a running network, with real `plexus run` processes on 127.0.0.1:
/// exports that differ in column order or schema, restarts after the end. Every wait is bounded.
@Suite(.serialized) struct OperationsTests {
    let node = NodeTests()
    let data = repositoryRoot + "/Topologies/data/wdbc.csv"
    let split = repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json"

    /// A copy of wdbc.csv with `transform` applied to every line's fields (header included).
    func export(_ name: String, in directory: String, _ transform: ([String], Bool) -> [String]) throws -> String {
        let lines = try String(contentsOfFile: data, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true)
        let out = lines.enumerated().map { index, line in
            transform(line.split(separator: ",", omittingEmptySubsequences: false).map(String.init), index == 0).joined(separator: ",")
        }
        let path = directory + "/" + name
        try (out.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs consortium-3 with site `i` reading `exports[i]` (default: wdbc.csv); returns each
    /// node's exit status and output.
    func runNetwork(_ label: String, exports: [Int: String] = [:], timeout: TimeInterval = 120) throws -> (directory: String, topology: Topology, status: [Int32?], output: [String]) {
        let directory = temporaryDirectory(label)
        let (path, topology) = try node.network("consortium-3.toml", in: directory)
        let nodes = try topology.peers.enumerated().map { index, peer in
            var arguments = node.runArguments(path, peer.id, directory, ["--split", split, "--site", String(index)])
            if let csv = exports[index] {
                arguments[arguments.firstIndex(of: "--data")! + 1] = csv
            }
            return try Background(arguments, output: "\(directory)/\(peer.id).out")
        }
        defer { for n in nodes where n.process.isRunning { n.kill9() } }
        let status = nodes.map { $0.wait(timeout: timeout) }
        return (directory, topology, status, nodes.map(\.log))
    }

    /// A site whose export has the same columns in another order trains the same model: the
    /// final models of every node equal, bit for bit, those of the run with unshuffled columns.
    @Test func shuffledColumnsGiveTheSameModelsBitForBit() throws {
        let plain = try runNetwork("columns-plain")
        let shuffledPath = try export("shuffled.csv", in: temporaryDirectory("columns-csv")) { fields, _ in
            // Reverse the columns, then swap the first two: the label is no longer last either.
            var reversed = Array(fields.reversed())
            reversed.swapAt(0, 1)
            return reversed
        }
        let shuffled = try runNetwork("columns-shuffled", exports: [1: shuffledPath])
        #expect(plain.status == [0, 0, 0], "\(plain.output)")
        #expect(shuffled.status == [0, 0, 0], "\(shuffled.output)")
        let model = makeModel(plan: plain.topology.plan, dimension: 30)
        for (a, b) in zip(plain.topology.peers, shuffled.topology.peers) {
            let x = try node.finalModel(plain.directory, a.id, model: model)
            let y = try node.finalModel(shuffled.directory, b.id, model: model)
            #expect(x.map(\.bitPattern) == y.map(\.bitPattern), "\(a.id)")
        }
    }

    /// A site with an extra column (the plan takes every column) or without one: every node
    /// stops within 30 s with exit 78 and an error naming that site and the column.
    @Test(arguments: ["extra", "missing"])
    func aSchemaMismatchStopsEveryNodeWithOneClearError(_ kind: String) throws {
        let csv = try export("\(kind).csv", in: temporaryDirectory("schema-csv")) { fields, header in
            if kind == "extra" { return fields + [header ? "site code" : "7"] }
            var fields = fields
            fields.remove(at: 3)  // "mean area"
            return fields
        }
        let started = Date()
        let run = try runNetwork("schema-\(kind)", exports: [1: csv], timeout: 30)
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed < 30)
        let odd = run.topology.peers[1].id
        for (index, status) in run.status.enumerated() {
            #expect(status == 78, "node \(index): \(run.output[index])")
            let error = run.output[index].split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(error.count == 1, "one error line: \(run.output[index])")
            let line = String(error.first ?? "")
            #expect(line.contains("schema mismatch"), "\(line)")
            let column = kind == "extra" ? "'site code'" : "'mean area'"
            #expect(line.contains(column), "\(line)")
            if index != 1 { #expect(line.contains("site '\(odd)'"), "\(line)") }
        }
    }

    /// A node restarted after its last round exits 0 at once, saying it already finished and
    /// where the model is (a `Restart=always` unit must not hang on it).
    @Test func aNodeRestartedAfterItsLastRoundExitsZero() throws {
        let run = try runNetwork("restart-finished")
        #expect(run.status == [0, 0, 0], "\(run.output)")
        let path = run.directory + "/network.toml"
        let peer = run.topology.peers[0].id
        let model = run.directory + "/state/\(peer).safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: model))
        let again = try Background(
            node.runArguments(path, peer, run.directory, ["--split", split, "--site", "0", "--log-level", "notice"]),
            output: run.directory + "/again.out"
        )
        let started = Date()
        #expect(again.wait(timeout: 30) == 0, "\(again.log)")
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(again.log.contains("already finished"), "\(again.log)")
        #expect(again.log.contains(model), "\(again.log)")
        // The model is the same one (resumed state, same standardization).
        #expect(try Data(contentsOf: URL(fileURLWithPath: model)) == before)
    }

    /// With neither --state-dir nor --model, the node writes ./<peer>.safetensors.
    @Test func aNodeAlwaysLeavesAModel() throws {
        let directory = temporaryDirectory("default-model")
        let (path, topology) = try node.network("consortium-3.toml", in: directory)
        let nodes = try topology.peers.enumerated().map { index, peer in
            let arguments = ["run", "--topology", path, "--peer", peer.id.rawValue, "--key", "\(directory)/keys/\(peer.id).key",
                             "--data", data, "--split", split, "--site", String(index), "--log-level", "warning"]
            return try Background(arguments, output: "\(directory)/\(peer.id).out", workingDirectory: directory)
        }
        defer { for n in nodes where n.process.isRunning { n.kill9() } }
        for (n, peer) in zip(nodes, topology.peers) {
            #expect(n.wait(timeout: 120) == 0, "\(n.log)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/\(peer.id).safetensors"), "\(peer.id)")
        }
    }

    /// `plexus run --check` under `[plan.privacy.bounds]`: it names a local feature without a
    /// bound and a bound that names no feature, and otherwise counts the local rows the release
    /// will clip; it writes no release (checking releases nothing).
    @Test func runCheckReportsTheDeclaredBounds() throws {
        var bounds = try #require(try PlanFile.load(path: repositoryRoot + "/Topologies/plans/wdbc-logistic-dp.toml").privacy).bounds
        bounds[bounds.firstIndex { $0.name == "mean area" }!].upper = 1000  // some rows lie above it
        let privacy = Plan.Privacy(delta: 1e-5, clip: 1, sampling: 0.1, noise: .epsilon(8), bounds: bounds)
        for broken in [false, true] {
            let directory = temporaryDirectory("check-bounds")
            var declared = privacy
            if broken { declared.bounds.removeAll { $0.name == "worst area" }; declared.bounds.append(Plan.FeatureBound(name: "worst aera", lower: 0, upper: 1)) }
            let (path, topology) = try node.network("consortium-3.toml", in: directory, privacy: declared)
            let peer = topology.peers[0]
            let checked = try plexus(["run", "--check", "--topology", path, "--peer", peer.id.rawValue, "--key", "\(directory)/keys/\(peer.id).key",
                                      "--data", data, "--state-dir", "\(directory)/state"])
            if broken {
                #expect(checked.status == 1)
                #expect(checked.stderr.contains("[plan.privacy.bounds]: no bound for 'worst area'; a bound for 'worst aera', which is not among the plan's features"), "\(checked.stderr)")
            } else {
                #expect(checked.status == 0, "\(checked.stderr)")
                let outside = try CSV.read(path: data).rows.filter { Double($0[3])! > 1000 }.count
                #expect(outside > 0 && checked.stdout.contains("privacy: every feature has a declared bound; \(outside) of 569 rows have a value outside one"), "\(checked.stdout)")
                // The ε this site will spend, as topology check states it.
                #expect(checked.stdout.contains("ok: privacy: (ε = 8, δ = 1e-05) per site for"), "\(checked.stdout)")
            }
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/state/\(peer.id).release"))
        }
    }

    /// `plexus run --check`: exit 0 and `ready` when everything is in place; otherwise exit 1
    /// with one line per problem — a key that is not the pinned one, a port in use, a torn state
    /// file, a CSV without the plan's label — each naming the file or address.
    @Test func runCheckGivesOneLinePerProblem() throws {
        let directory = temporaryDirectory("check")
        let (path, topology) = try node.network("consortium-3.toml", in: directory)
        let peer = topology.peers[0]
        func check(key: String? = nil, data: String? = nil) throws -> CommandResult {
            try plexus(["run", "--check", "--topology", path, "--peer", peer.id.rawValue,
                        "--key", key ?? "\(directory)/keys/\(peer.id).key", "--data", data ?? self.data, "--state-dir", "\(directory)/state"])
        }
        let good = try check()
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("ready: '\(peer.id)' can start"))
        #expect(good.stdout.contains("569 rows × 30 features by name"))
        let wrongKey = try check(key: "\(directory)/keys/\(topology.peers[1].id).key")
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stderr.contains("is not the one pinned for '\(peer.id)'"), "\(wrongKey.stderr)")
        // A port in use.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(peer.endpoint.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(bound)
        listen(listener, 1)
        let busy = try check()
        close(listener)
        #expect(busy.status == 1)
        #expect(busy.stderr.contains("cannot listen on 127.0.0.1:\(peer.endpoint.port): address already in use"), "\(busy.stderr)")
        // A torn state file, and data without the label: two problems, two lines.
        try FileManager.default.createDirectory(atPath: "\(directory)/state", withIntermediateDirectories: true)
        try "torn".write(toFile: "\(directory)/state/\(peer.id).state", atomically: true, encoding: .utf8)
        let noLabel = try export("nolabel.csv", in: directory) { fields, _ in Array(fields.dropLast()) }
        let both = try check(data: noLabel)
        #expect(both.status == 1)
        let lines = both.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") || $0.contains(": error: ") }
        #expect(lines.count == 1, "the data problem hides the state check (it needs the model size): \(both.stderr)")
        #expect(both.stderr.contains("diagnosis"), "\(both.stderr)")
        let torn = try check()
        #expect(torn.status == 1)
        #expect(torn.stderr.contains("\(peer.id).state: state file is truncated"), "\(torn.stderr)")
    }

    /// Key rotation as an admin does it, with no restart: a new key written to one peer's key
    /// file, then the topology file edited (every node reloads it; the rotated one re-reads its
    /// key); later another peer is killed (-9) and restarted. Every node finishes within 0.005
    /// test accuracy of a clean run, and no round took more than two deadlines.
    @Test func keyRotationThenARestartKeepsEveryModel() throws {
        func network(_ label: String) throws -> (directory: String, path: String, topology: Topology) {
            let directory = temporaryDirectory(label)
            let generated = try plexus([
                "topology", "generate", "--shape", "full", "--peers", "4", "--keys-dir", directory + "/keys", "--host", "127.0.0.1",
                "--base-port", String(freePorts(4)), "--plan", repositoryRoot + "/Topologies/plans/wdbc-logistic.toml", "--out", directory + "/generated.toml",
            ])
            #expect(generated.status == 0, "\(generated.stderr)")
            var topology = try Topology.load(path: directory + "/generated.toml", spectralAnalysis: false)
            var plan = topology.plan
            plan.rounds = 1500
            plan.roundDeadlineMilliseconds = 2000
            topology = Topology(networkName: "rotation", plan: plan, peers: topology.peers, links: topology.links)
            let path = directory + "/network.toml"
            try TopologyWriter.toml(topology).write(toFile: path, atomically: true, encoding: .utf8)
            return (directory, path, try Topology.load(path: path, spectralAnalysis: false))
        }
        func start(_ net: (directory: String, path: String, topology: Topology), _ index: Int, key: String? = nil) throws -> Background {
            var arguments = node.runArguments(net.path, net.topology.peers[index].id, net.directory, ["--split", split, "--shard", "\(index)/4", "--log-level", "notice"])
            if let key { arguments[arguments.firstIndex(of: "--key")! + 1] = key }
            return try Background(arguments, output: "\(net.directory)/\(index)-\(Date().timeIntervalSince1970).out")
        }
        func rounds(_ net: (directory: String, path: String, topology: Topology), _ index: Int) -> Int {
            let text = (try? String(contentsOfFile: "\(net.directory)/logs/\(net.topology.peers[index].id).jsonl", encoding: .utf8)) ?? ""
            return text.components(separatedBy: "\"type\":\"round\"").count - 1
        }
        func waitFor(_ count: Int, _ net: (directory: String, path: String, topology: Topology)) {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, rounds(net, 0) < count { usleep(20_000) }
        }

        let clean = try network("rotation-clean")
        let cleanNodes = try (0..<4).map { try start(clean, $0) }
        for n in cleanNodes { #expect(n.wait(timeout: 240) == 0, "\(n.log)") }
        let cleanLogs = try ConvergenceLogReader.read(directory: clean.directory + "/logs")
        let reference = Dictionary(uniqueKeysWithValues: cleanLogs.map { ($0.peer, $0.rounds.last?.test["accuracy"] ?? -1) })

        let net = try network("rotation")
        var nodes = try (0..<4).map { try start(net, $0) }
        defer { for n in nodes where n.process.isRunning { n.kill9() } }
        waitFor(200, net)
        // 1. A new key in peer 1's key file, then the topology edited everywhere (one file here).
        let newKey = net.directory + "/keys/\(net.topology.peers[1].id).key"
        let keygen = try plexus(["keygen", "--out", newKey, "--force"])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        let publicKey = try Ed25519.PublicKey(base64: keygen.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        var peers = net.topology.peers
        peers[1] = Topology.Peer(id: peers[1].id, endpoint: peers[1].endpoint, publicKey: publicKey)
        let rotated = Topology(networkName: "rotation", plan: net.topology.plan, peers: peers, links: net.topology.links)
        try TopologyWriter.toml(rotated).write(toFile: net.path, atomically: true, encoding: .utf8)
        usleep(1_500_000)  // every node picks the edit up (they poll the file every second)
        // 2. Later, another peer is killed and restarted.
        waitFor(rounds(net, 0) + 200, net)
        nodes[2].kill9()
        nodes[2] = try start(net, 2)
        for (index, n) in nodes.enumerated() { #expect(n.wait(timeout: 240) == 0, "node \(index): \(n.log)") }

        let logs = try ConvergenceLogReader.read(directory: net.directory + "/logs")
        #expect(logs.count == 4)
        #expect(nodes[1].log.contains("key was rotated"), "\(nodes[1].log)")
        for log in logs { #expect(log.events.contains { $0.event == "reloaded" }, "\(log.peer) reloaded") }
        let deadline = Double(net.topology.plan.roundDeadlineMilliseconds) / 1000
        for log in logs {
            let last = try #require(log.rounds.last, "\(log.peer)")
            #expect(last.round == net.topology.plan.rounds, "\(log.peer)")
            let accuracy = try #require(last.test["accuracy"])
            let clean = try #require(reference[log.peer])
            #expect(abs(accuracy - clean) <= 0.005, "\(log.peer): \(accuracy) after the rotation and restart, \(clean) clean")
            let times = log.rounds.map(\.time)
            let longest = zip(times.dropFirst(), times).map { $0 - $1 }.max() ?? 0
            #expect(longest <= 2 * deadline, "\(log.peer): a round took \(longest) s (deadline \(deadline) s)")
            print("rotation: \(log.peer) accuracy \(accuracy) (clean \(clean)), longest round \(longest) s")
        }
    }

    /// Two sites whose topology files differ (here only by a comment: the plan, and so the
    /// handshake, still agree): after the 10 s grace each warns naming both fingerprints, the link
    /// keeps training, and once the odd copy is edited back to the common file both log that the
    /// files agree again. A routine edit that reaches every site together logs nothing.
    @Test func differentTopologyFilesAreAWarningNamingBothFingerprints() throws {
        let directory = temporaryDirectory("fingerprints")
        let (path, _) = try node.network("consortium-3.toml", in: directory, rounds: 1_000_000)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let oddPath = directory + "/network-site1.toml"
        try (text + "\n# site 1's copy, annotated\n").write(toFile: oddPath, atomically: true, encoding: .utf8)
        let common = try Topology.load(path: path, spectralAnalysis: false)
        let odd = try Topology.load(path: oddPath, spectralAnalysis: false)
        #expect(common.planHash == odd.planHash && common.fingerprintHex != odd.fingerprintHex)
        let nodes = try common.peers.enumerated().map { index, peer in
            var arguments = node.runArguments(index == 1 ? oddPath : path, peer.id, directory, ["--split", split, "--site", String(index), "--log-level", "notice"])
            arguments[arguments.firstIndex(of: "--state-dir")! + 1] = directory + "/state-\(index)"
            return try Background(arguments, output: "\(directory)/\(peer.id).out")
        }
        defer { for n in nodes where n.process.isRunning { n.kill9() } }
        func waitUntil(_ seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline { if condition() { return true }; usleep(50_000) }
            return condition()
        }
        let oddID = common.peers[1].id
        let mismatch = "Neighbour \(oddID) runs a different topology file (fingerprint \(odd.fingerprintHex), this node \(common.fingerprintHex))"
        #expect(waitUntil(30) { nodes[0].log.contains(mismatch) && nodes[2].log.contains(mismatch) }, "\(nodes[0].log)")
        #expect(waitUntil(10) { nodes[1].log.contains("runs a different topology file (fingerprint \(common.fingerprintHex), this node \(odd.fingerprintHex))") }, "\(nodes[1].log)")
        // Not a refusal: rounds go on.
        func rounds(_ i: Int) -> Int {
            ((try? String(contentsOfFile: "\(directory)/logs/\(common.peers[i].id).jsonl", encoding: .utf8)) ?? "").components(separatedBy: "\"type\":\"round\"").count - 1
        }
        #expect(waitUntil(30) { rounds(0) >= 20 && rounds(1) >= 20 })
        // The odd site gets the common file: it reloads and re-announces on the open sessions.
        try text.write(toFile: oddPath, atomically: true, encoding: .utf8)
        #expect(waitUntil(15) { nodes[0].log.contains("Neighbour \(oddID) now runs the same topology file") && nodes[2].log.contains("Neighbour \(oddID) now runs the same topology file") }, "\(nodes[0].log)")
        #expect(waitUntil(10) { nodes[1].log.components(separatedBy: "now runs the same topology file").count - 1 == 2 }, "\(nodes[1].log)")
        // Once per change, not once per round or per session.
        #expect(nodes[0].log.components(separatedBy: mismatch).count - 1 == 1, "\(nodes[0].log)")
        // A routine edit, distributed to every site at once: quiet past the grace period.
        let warningsBefore = nodes.map { $0.log.components(separatedBy: "runs a different topology file").count }
        let reloadsBefore = nodes.map { $0.log.components(separatedBy: "Topology reloaded").count }
        let edited = text + "\n# reviewed by the consortium\n"
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        try edited.write(toFile: oddPath, atomically: true, encoding: .utf8)
        #expect(waitUntil(10) { zip(nodes, reloadsBefore).allSatisfy { $0.log.components(separatedBy: "Topology reloaded").count > $1 } })
        usleep(12_000_000)
        #expect(nodes.map { $0.log.components(separatedBy: "runs a different topology file").count } == warningsBefore, "\(nodes.map(\.log))")
        for n in nodes { kill(n.process.processIdentifier, SIGTERM) }
        for n in nodes { #expect(n.wait(timeout: 10) != nil) }
    }
}
}

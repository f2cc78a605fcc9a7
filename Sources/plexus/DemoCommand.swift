import ArgumentParser
import Foundation
import PlexusCore
import PlexusEngine
import PlexusLearning
import PlexusLog
import PlexusNode
import PlexusTopology
import PlexusViews

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a real six-hospital network on this machine and show the papers' table.",
        discussion: """
            Generates fresh keys and a loopback copy of Topologies/tcga-brca.toml in a temporary \
            directory, starts one `plexus run` process per TCGA-BRCA region (each sees only its own \
            region's rows), shows their progress, and ends with the comparison the clinical papers \
            make — each region alone, decentralized (these six processes), and all rows pooled — plus \
            an HTML report and where the logs are. Run it from the repository's root.
            """
    )

    @Option(help: "The topology to run (its endpoints are moved to 127.0.0.1).", completion: .file(extensions: ["toml"]))
    var topology = "Topologies/tcga-brca.toml"

    @Option(help: "The bundled dataset.", completion: .file(extensions: ["csv"]))
    var data = "Topologies/data/tcga_brca.csv"

    @Option(help: "Where to put keys, logs, state and the report (default: a new temporary directory).", completion: .directory)
    var directory: String?

    @Option(help: "First port of the six consecutive ports used (default: a free range).")
    var basePort: Int?

    func run() throws {
        guard FileManager.default.fileExists(atPath: topology), FileManager.default.fileExists(atPath: data) else {
            throw CLIError("\(topology) or \(data) not found: run `plexus demo` from the repository's root (or pass --topology and --data)")
        }
        let dir = directory ?? (NSTemporaryDirectory() + "plexus-demo-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source: Topology
        do { source = try Topology.load(path: topology, spectralAnalysis: false) } catch { throw CLIError(error.description) }
        guard let port = basePort ?? LocalPorts.freeRange(count: source.peers.count) else {
            throw CLIError("no \(source.peers.count) consecutive free ports found on 127.0.0.1; pass --base-port")
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

        // 1. Fresh keys and a loopback topology.
        let local = dir + "/topology.toml"
        let generate = try runProcess(executable, [
            "topology", "generate", "--from", topology, "--keys-dir", dir + "/keys", "--host", "127.0.0.1",
            "--base-port", String(port), "--out", local, "--force",
        ])
        guard generate.status == 0 else { throw CLIError("generating the demo network failed:\n\(generate.output)") }
        let network: Topology
        do { network = try Topology.load(path: local, spectralAnalysis: false) } catch { throw CLIError(error.description) }
        print("Plexus demo: \(network.peers.count) hospitals (\(network.peers.map(\.id.rawValue).joined(separator: ", "))), \(network.links.count) links, Cox model, \(network.plan.rounds) rounds")
        print("  network, keys and logs in \(dir)")

        // 2. One node per region: each reads only its own region's training rows.
        var processes: [(PeerID, Process)] = []
        for peer in network.peers {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "run", "--topology", local, "--peer", peer.id.rawValue, "--key", "\(dir)/keys/\(peer.id).key",
                "--data", data, "--where", "split=train", "--where", "center=\(peer.id)", "--test-where", "split=test",
                "--state-dir", "\(dir)/state", "--log-dir", "\(dir)/logs", "--log-level", "warning",
            ]
            let output = FileHandle(forWritingAtPath: "\(dir)/\(peer.id).out") ?? {
                _ = FileManager.default.createFile(atPath: "\(dir)/\(peer.id).out", contents: nil)
                return FileHandle(forWritingAtPath: "\(dir)/\(peer.id).out")!
            }()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            processes.append((peer.id, process))
        }
        print("  started \(processes.count) `plexus run` processes on 127.0.0.1:\(port)…\(port + processes.count - 1)")

        // 3. Progress, from the convergence logs, until every node exits (at most 5 minutes).
        let started = Date()
        var lastLine = ""
        while processes.contains(where: { $0.1.isRunning }) {
            if Date().timeIntervalSince(started) > 300 {
                for (_, p) in processes where p.isRunning { p.terminate() }
                throw CLIError("the demo network did not finish within 5 minutes; see \(dir)/*.out")
            }
            usleep(500_000)
            if let logs = try? ConvergenceLogReader.read(directory: dir + "/logs") {
                let rounds = logs.compactMap { $0.rounds.last?.round }
                let cindex = logs.compactMap { $0.rounds.last?.test["c_index"] }
                let line = "  round \(rounds.min() ?? 0)/\(network.plan.rounds)  mean test C-index \(cindex.isEmpty ? "–" : fixed(cindex.reduce(0, +) / Double(cindex.count), 3))"
                if line != lastLine {
                    print(line)
                    lastLine = line
                }
            }
        }
        let seconds = Date().timeIntervalSince(started)
        for (peer, process) in processes where process.terminationStatus != 0 {
            throw CLIError("node \(peer) exited with status \(process.terminationStatus); see \(dir)/\(peer).out")
        }
        let logs: [PeerLog]
        do { logs = try ConvergenceLogReader.read(directory: dir + "/logs") } catch { throw CLIError(error.description) }
        let bytes = logs.flatMap(\.rounds).map(\.bytesSent).reduce(0, +)
        print("  all \(processes.count) nodes finished in \(fixed(seconds, 1)) s; \(bytes) bytes of signed, compressed deltas on the wire")

        // 4. The papers' table: each region alone and all rows pooled, beside these six nodes.
        let table: CSVTable
        let split: [PeerID: Dataset]
        let test: Dataset
        do {
            table = try CSV.read(path: data)
            split = try Dictionary(uniqueKeysWithValues: network.peers.map { peer throws(DataError) in
                (peer.id, try DatasetLoader.load(table, plan: network.plan, filters: [RowFilter(column: "split", value: "train"), RowFilter(column: "center", value: peer.id.rawValue)]).dataset)
            })
            test = try DatasetLoader.load(table, plan: network.plan, filters: [RowFilter(column: "split", value: "test")]).dataset
        } catch { throw CLIError("\(error)") }
        var pooled = split[network.peers[0].id]!
        for peer in network.peers.dropFirst() { pooled.append(contentsOf: split[peer.id]!) }
        let central = Trainer.fit(pooled, plan: network.plan).trained.evaluate(on: test).survival!.concordance
        print("")
        func row(_ label: String, _ value: String) { print("  " + label.padding(toLength: 44, withPad: " ", startingAt: 0) + value) }
        print("C-index on the \(test.count) test patients (TCGA-BRCA, Cox proportional hazards):")
        row("setting", "C-index")
        var isolated: [(String, Double)] = []
        for peer in network.peers {
            let c = Trainer.fit(split[peer.id]!, plan: network.plan).trained.evaluate(on: test).survival!.concordance
            isolated.append((peer.id.rawValue, c))
            row("isolated \(peer.id.rawValue) (\(split[peer.id]!.count) patients)", fixed(c, 3))
        }
        let decentralized = logs.compactMap { $0.rounds.last?.test["c_index"] }
        let mean = decentralized.reduce(0, +) / Double(max(decentralized.count, 1))
        row("decentralized: Plexus, 6 nodes (mean)", fixed(mean, 3) + "  (nodes \(fixed(decentralized.min() ?? 0, 3))–\(fixed(decentralized.max() ?? 0, 3)))")
        row("centralized: all \(pooled.count) rows pooled", fixed(central, 3))
        print("")
        print("No patient row left its node: only signed model deltas and feature statistics did.")

        // 5. The report, and where everything is.
        let reference = EvaluationReference(metric: "c_index", centralized: central, decentralized: mean, isolated: isolated)
        let html = HTMLReport.render(logs: logs, evaluation: reference, title: "Plexus demo: TCGA-BRCA, six regions")
        try? html.write(toFile: dir + "/report.html", atomically: true, encoding: .utf8)
        print("Convergence logs: \(dir)/logs/<peer>.jsonl   (watch: plexus watch \(dir)/logs)")
        print("Report:           \(dir)/report.html")
        print("Final models:     \(dir)/state/<peer>.safetensors")
    }

    func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

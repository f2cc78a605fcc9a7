import ArgumentParser
import Foundation
import Logging
import PlexusCore
import PlexusLearning
import PlexusNode
import PlexusTopology

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run this institution's peer node: train on local rows, gossip with the neighbours in the topology.",
        discussion: """
            The node listens on its endpoint from the topology (or --listen), dials its \
            neighbours over authenticated, encrypted sessions, exchanges signed feature statistics \
            once (for the pooled standardization), then trains the plan's rounds, writing one JSON \
            line per round to --log-dir and its state to --state-dir after every round. Patient rows \
            never leave this machine. It exits 0 after the last round (and writes the final model as \
            safetensors), or keeps serving with --forever. SIGINT/SIGTERM stop it cleanly; after \
            a crash, the same command resumes from the last completed round. The topology file is \
            re-read on SIGHUP and when it changes on disk.

            With --metrics, the same address serves /healthz (200 while the process runs) and \
            /readyz (200 when the node trains with at least one neighbour session up and its \
            last round completed within two round deadlines, or when it finished its plan; 503 \
            otherwise, with the reason on one line).

            Exit codes: 0 finished (also when restarted after its last round); 78 a configuration \
            or data error (topology, key, CSV, a schema mismatch between sites: restarting will \
            not help); 75 a transient failure (a port in use, the statistics round timed out: \
            restart later); 64 bad command-line arguments.

            Example:
              plexus run --topology net.toml --peer hospital-a --key hospital-a.key \\
                  --data cohort.csv --state-dir state --log-dir logs
            """
    )

    @Option(help: "The topology file.", completion: .file(extensions: ["toml"]))
    var topology: String

    @Option(help: "This node's peer id in the topology.")
    var peer: String

    @Option(help: "This node's private key file (from `plexus keygen`).", completion: .file())
    var key: String

    @Option(help: "This site's CSV export.", completion: .file(extensions: ["csv"]))
    var data: String

    @Option(name: .customLong("where"), help: "Use only rows where column=value (repeatable).")
    var filters: [String] = []

    @Option(name: .customLong("test-where"), help: "A common test set for the logs' test metrics: rows where column=value.")
    var testFilters: [String] = []

    @Option(help: "A protocol split file: this site is its hospitals[--site], the test set its test rows.", completion: .file(extensions: ["json"]))
    var split: String?

    @Option(help: "With --split: this site's index (0-based).")
    var site: Int?

    @Option(help: "Use every N-th training row starting at I (I/N), e.g. 3/8: IID shards of one file for test networks.")
    var shard: String?

    @Option(help: "Directory for the state file (resume after a crash) and the final model.", completion: .directory)
    var stateDir: String?

    @Option(help: "Directory for the convergence log <peer>.jsonl.", completion: .directory)
    var logDir: String?

    @Option(help: "Listen on HOST:PORT instead of this peer's endpoint in the topology.")
    var listen: String?

    @Option(help: "Write the final model here (safetensors). Default: <state-dir>/<peer>.safetensors.", completion: .file())
    var model: String?

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; a bare port serves on 127.0.0.1 only).")
    var metrics: String?

    @Flag(help: ArgumentHelp(
        "TEST ONLY: derive [plan.privacy]'s noise from the plan's seed, as the simulator does, so a run can be compared bit for bit. Every peer knows the seed: such a run is not private.",
        visibility: .hidden))
    var deterministicNoise = false

    @Flag(help: "Keep serving the latest model to neighbours after the last round.")
    var forever = false

    @Flag(help: "Check everything the node needs (topology, key, data, state files, ports), print one line per problem, and exit 0 or 1 without starting.")
    var check = false

    @Option(help: "Give up (exit 75) when the statistics round has not completed after this many seconds.")
    var statisticsTimeout: Double = 120

    @Option(help: "Operator log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "Operator log format on standard error: text, or json (one object per line: time, level, message, node, metadata).")
    var logFormat: LogFormat = .text

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard let id = PeerID(peer) else { throw ValidationError("--peer: \(PeerID.problem(with: peer) ?? "invalid")") }
        var configuration = NodeConfiguration(topologyPath: topology, peer: id, keyPath: key, dataPath: data)
        do {
            configuration.filters = try filters.map { try RowFilter(parsing: $0) }
            configuration.testFilters = try testFilters.map { try RowFilter(parsing: $0) }
        } catch { throw CLIError("\(error)") }
        if let shard {
            let parts = shard.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
                throw ValidationError("--shard: expected I/N with 0 ≤ I < N, got '\(shard)'")
            }
            configuration.shard = (parts[0], parts[1])
        }
        if let split {
            guard site != nil || shard != nil else { throw ValidationError("--split needs --site N (or --shard I/N)") }
            configuration.split = (split, site ?? 0)
        }
        configuration.stateDirectory = stateDir
        configuration.logDirectory = logDir
        configuration.modelPath = model
        configuration.forever = forever
        configuration.deterministicNoise = deterministicNoise
        guard statisticsTimeout.isFinite, statisticsTimeout >= 1, statisticsTimeout <= 86_400 else {
            throw ValidationError("--statistics-timeout must be between 1 and 86400 seconds")
        }
        configuration.statisticsTimeout = .milliseconds(Int(statisticsTimeout * 1000))
        func endpoint(_ text: String, _ option: String) throws -> (host: String, port: Int) {
            switch Endpoint.parse(text) {
            case .success(let endpoint): return (endpoint.host, endpoint.port)
            case .failure(let error): throw ValidationError("\(option) '\(text)': \(error)")
            }
        }
        if let listen { configuration.listen = try endpoint(listen, "--listen") }
        if let metrics {
            // A bare port (`--metrics 9464`) is the loopback address: nothing is exposed beyond
            // this machine unless HOST:PORT says so.
            if let port = Int(metrics), (1...65535).contains(port), metrics.allSatisfy(\.isASCII) {
                configuration.metrics = ("127.0.0.1", port)
            } else {
                configuration.metrics = try endpoint(metrics, "--metrics")
            }
        }
        if check {
            let (problems, facts) = PeerNode.check(configuration: configuration)
            for fact in facts { StandardStream.output.write("ok: \(fact)\n") }
            for problem in problems { StandardStream.error.write(errorLine(problem) + "\n") }
            if problems.isEmpty {
                StandardStream.output.write("ready: '\(id)' can start\n")
                return
            }
            throw ExitCode(1)
        }
        let format = logFormat
        var logger = Logger(label: "plexus.node") { label -> any LogHandler in
            format == .json ? JSONLogHandler.standardError(label: label) : StreamLogHandler.standardError(label: label)
        }
        logger.logLevel = level
        logger[metadataKey: "node"] = "\(id)"
        do {
            let node = try PeerNode(configuration: configuration, logger: logger)
            try await node.run()
        } catch let error as NodeError {
            StandardStream.error.write(errorLine(error.description) + "\n")
            throw ExitCode(error.exitCode)
        } catch {
            // Anything else (a port in use, the network) may pass: an init system should retry.
            StandardStream.error.write(errorLine("\(error)") + "\n")
            throw ExitCode(NodeError("", kind: .transient).exitCode)
        }
    }
}

import ArgumentParser
import Foundation
import PlexusCodec
import PlexusCore
import PlexusEngine
import PlexusLearning
import PlexusLog
import PlexusPrivacy
import PlexusSimulator
import PlexusTopology

/// Options shared by `simulate` and `evaluate`: the network, the data and how it is cut.
struct ExperimentOptions: ParsableArguments {
    @Option(help: "The topology file (its [plan] is what every peer trains).", completion: .file(extensions: ["toml"]))
    var topology: String

    @Option(help: "The CSV file with every site's rows.", completion: .file(extensions: ["csv"]))
    var data: String

    @Option(
        help: """
            How the rows are cut into sites: column:NAME (peer ids name the values), split:FILE \
            (a protocol split file; {seed} is replaced), sizes:60/30/10, iid, dirichlet:ALPHA. \
            Default: column:center when peer ids name its values.
            """
    )
    var partition: String?

    @Option(name: .customLong("where"), help: "Keep only training rows where column=value (repeatable).")
    var filters: [String] = []

    @Option(name: .customLong("test-where"), help: "The common test set: rows where column=value (repeatable).")
    var testFilters: [String] = []

    @Option(help: "A protocol split file: train on its train rows (cut by --partition), test on its test rows; {seed} is replaced.", completion: .file(extensions: ["json"]))
    var split: String?

    @Option(help: "Run this plan instead of the topology's (a TOML file with a [plan] table).", completion: .file(extensions: ["toml"]))
    var plan: String?

    @Option(help: "Override the plan's rounds.")
    var rounds: Int?

    @Option(help: "Override the plan's consensus_rounds (the last rounds, which only gossip: no local step).")
    var consensusRounds: Int?

    @Option(help: "Override the plan's clip_anchor (under clipped: τ ≤ this × the peer's own last local step; 0 = none).")
    var clipAnchor: Double?

    @Option(help: "Override the plan's codec (lossless, f16, bf16, int8, topk:F[+f16|int8]).")
    var codec: String?

    @Option(help: "Override the plan's aggregation (mean, clipped, trimmed-mean:B, median).")
    var aggregation: String?

    @Option(help: "Simulated one-way latency per message, in milliseconds.")
    var latency: Double = 5

    @Option(help: "Simulated jitter per message, in milliseconds (messages may overtake each other).")
    var jitter: Double = 0

    @Option(help: "Simulated link bandwidth in MB/s (default: unlimited).")
    var bandwidth: Double?

    @Option(help: "Probability that a message is lost, in [0, 1).")
    var loss: Double = 0

    @Option(
        name: .customLong("byzantine"),
        help: ArgumentHelp(
            """
            Make PEER an attacker: it runs the real protocol with its real key but rewrites what it \
            sends (repeatable). ATTACK: \(Attack.spellings.joined(separator: ", ")) (README, "Attacks"). \
            Honest peers' metrics are reported apart from the attackers'.
            """,
            valueName: "PEER:ATTACK"
        )
    )
    var byzantine: [String] = []

    func validate() throws {
        guard (0..<1).contains(loss) else { throw ValidationError("--loss must be in [0, 1)") }
        guard latency >= 0, jitter >= 0 else { throw ValidationError("--latency and --jitter must be ≥ 0") }
        if let rounds, rounds < 1 { throw ValidationError("--rounds must be ≥ 1") }
        if let consensusRounds, consensusRounds < 0 { throw ValidationError("--consensus-rounds must be ≥ 0") }
        if let clipAnchor, !(clipAnchor.isFinite && clipAnchor >= 0) { throw ValidationError("--clip-anchor must be a finite number ≥ 0") }
        if let codec { do { _ = try CodecSpec(parsing: codec) } catch { throw ValidationError("--codec: \(error)") } }
        for text in byzantine {
            do { _ = try ByzantinePeer(parsing: text) } catch { throw ValidationError("--byzantine: \(error)") }
        }
    }

    /// The `--byzantine` attackers, checked against the topology's peers.
    func attackers(of topology: Topology) throws -> [ByzantinePeer] {
        do {
            let parsed = try byzantine.map { text throws(ExperimentError) in try ByzantinePeer(parsing: text) }
            try ByzantinePeer.validate(parsed, peers: topology.peers.map(\.id))
            return parsed
        } catch { throw CLIError("--byzantine: \(error)") }
    }

    func load() throws -> (topology: Topology, plan: Plan, spec: PartitionSpec, filters: [RowFilter], testFilters: [RowFilter]) {
        let topology: Topology
        do { topology = try Topology.load(path: self.topology, spectralAnalysis: false) } catch { throw CLIError(error.description) }
        var plan = topology.plan
        if let path = self.plan {
            do { plan = try PlanFile.load(path: path) } catch { throw CLIError(error.description) }
        }
        if let rounds { plan.rounds = rounds }
        if let consensusRounds { plan.consensusRounds = consensusRounds }
        if let clipAnchor { plan.clipAnchor = clipAnchor }
        guard plan.consensusRounds < plan.rounds else {
            let source = consensusRounds != nil ? "--consensus-rounds" : "the plan's consensus_rounds"
            throw CLIError("\(source) (\(plan.consensusRounds)) must be below the rounds (\(plan.rounds)): at least one round trains")
        }
        if let codec { plan.codec = codec }
        if let aggregation {
            switch PlanKeys.aggregation(aggregation) {
            case .success(let rule): plan.aggregation = rule
            case .failure(let error): throw CLIError(error.description)
            }
            if let problem = topology.aggregationProblem(plan.aggregation) { throw CLIError("--aggregation: \(problem)") }
        }
        let spec: PartitionSpec
        do {
            spec = try PartitionSpec(parsing: partition ?? "column:center")
        } catch { throw CLIError(error.description) }
        do {
            return (topology, plan, spec, try filters.map { try RowFilter(parsing: $0) }, try testFilters.map { try RowFilter(parsing: $0) })
        } catch { throw CLIError("\(error)") }
    }

    var links: LinkConditions {
        var links = LinkConditions()
        links.latency = .microseconds(Int64(latency * 1000))
        links.jitter = .microseconds(Int64(jitter * 1000))
        links.bandwidth = bandwidth.map { $0 * 1e6 }
        links.loss = loss
        return links
    }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every peer of a topology in one process, over the real wire bytes, on a virtual clock.",
        discussion: """
            Each peer trains the topology's plan on its own site's rows and gossips signed, \
            compressed deltas to its neighbours through an in-memory network (latency, jitter, \
            bandwidth and loss as given). The same seed gives the same result, bit for bit. \
            Convergence logs go to --log-dir as <peer>.jsonl (see README, "Convergence logs").

            Example (the six TCGA-BRCA regions):
              plexus simulate --topology Topologies/tcga-brca.toml --data Topologies/data/tcga_brca.csv \\
                  --where split=train --test-where split=test --log-dir logs

            With --byzantine PEER:ATTACK (repeatable), PEER attacks over the real protocol and \
            the honest peers' metrics are printed apart from the attackers' (README, "Attacks"):
              plexus simulate --topology Topologies/torus-16.toml --data Topologies/data/wdbc.csv \\
                  --partition iid --split Topologies/data/splits/wdbc_seed0.json \\
                  --byzantine peer-03:sign-flip --byzantine peer-10:sign-flip
            """
    )

    @OptionGroup var experiment: ExperimentOptions

    @Option(help: "Seed for the network and the peers' mini-batches (default: the plan's seed).")
    var seed: UInt64?

    @Option(help: "Write convergence logs here.", completion: .directory)
    var logDir: String?

    @Option(help: "Fraction of each site's rows held out for its own validation metrics.")
    var holdout: Double = 0

    @Option(help: "Evaluate on the test set every N rounds (and at the last).")
    var evaluateEvery: Int = 1

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(
        help: """
            Cox and logistic: hazard or odds ratios of the first honest peer's final model, from \
            the sites' information summaries summed (in this process; a real network does not \
            exchange them yet), then refined by Newton steps on that sum.
            """)
    var inference = false

    func validate() throws {
        guard (0..<1).contains(holdout) else { throw ValidationError("--holdout must be in [0, 1)") }
        guard evaluateEvery >= 1 else { throw ValidationError("--evaluate-every must be ≥ 1") }
    }

    func run() throws {
        let (topology, plan, spec, filters, testFilters) = try experiment.load()
        let seed = self.seed ?? plan.seed
        let table: CSVTable
        let data: PartitionedData
        do {
            table = try CSV.read(path: experiment.data)
            data = try Partitioner.partition(
                table: table, plan: plan, spec: spec, count: topology.peers.count, filters: filters, testFilters: testFilters,
                split: experiment.split, seed: seed
            )
        } catch { throw CLIError("\(error)") }
        var options = SimulationOptions(topology: topology, data: data)
        options.plan = plan
        options.seed = seed
        options.links = experiment.links
        options.logDirectory = logDir
        options.holdout = holdout
        options.evaluateEvery = evaluateEvery
        options.byzantine = try experiment.attackers(of: topology)
        let summary: SimulationSummary
        do { summary = try Experiment.simulate(options) } catch { throw CLIError("\(error)") }
        let peakMB = Double(peakResidentBytes()) / 1e6
        if json {
            struct Summary: Encodable {
                var peers, rounds: Int
                var seconds, secondsPerRound, virtualSeconds: Double
                var bytesSent: Int
                var peakMemoryMB: Double
                /// Peer → metric → value (`null` when not a number).
                var test: [String: [String: Double]]
                /// Attacker → attack (absent in an honest run).
                var byzantine: [String: String]?
                /// Metric → mean/min/max over the honest peers, and over the attackers.
                var honest: [String: MetricSpread]?
                var attackers: [String: MetricSpread]?
                enum CodingKeys: String, CodingKey {
                    case peers, rounds, seconds, secondsPerRound = "seconds_per_round", virtualSeconds = "virtual_seconds"
                    case bytesSent = "bytes_sent", peakMemoryMB = "peak_memory_mb", test, byzantine, honest, attackers
                }
            }
            var test: [String: [String: Double]] = [:]
            for p in summary.peers {
                if let evaluation = summary.test[p] {
                    test[p.rawValue] = Dictionary(metricPairs(evaluation), uniquingKeysWith: { first, _ in first })
                }
            }
            var record = Summary(
                peers: summary.peers.count, rounds: plan.rounds, seconds: summary.seconds, secondsPerRound: summary.secondsPerRound,
                virtualSeconds: Double(summary.outcome.virtualTime.components.seconds), bytesSent: summary.bytesSent,
                peakMemoryMB: peakMB, test: test)
            if !summary.attackers.isEmpty {
                record.byzantine = Dictionary(uniqueKeysWithValues: summary.attackers.map { ($0.key.rawValue, $0.value.description) })
                record.honest = MetricSpread.of(summary.honestPeers, summary)
                record.attackers = MetricSpread.of(summary.peers.filter { summary.attackers[$0] != nil }, summary)
            }
            print(try PlexusJSON.string(record))
            return
        }
        print("\(topology.networkName): \(summary.peers.count) peers, \(plan.model.rawValue), \(plan.rounds) rounds, codec \(plan.codec), seed \(seed)")
        if let line = privacyLine(plan) { print(line + "; noise from the seed's ChaCha20 streams (reproducible)") }
        print("wall \(fixed(summary.seconds, 2)) s (\(fixed(summary.secondsPerRound * 1000, 2)) ms per round), virtual \(summary.outcome.virtualTime), \(summary.bytesSent) envelope bytes sent, peak memory \(Int(peakMB)) MB")
        if summary.outcome.messagesLost + summary.outcome.messagesCutByPartition > 0 {
            print("messages: \(summary.outcome.messagesSent) sent, \(summary.outcome.messagesLost) lost, \(summary.outcome.messagesCutByPartition) cut")
        }
        if !summary.test.isEmpty {
            print("final models on the test set:")
            for peer in summary.peers {
                let metrics = metricPairs(summary.test[peer]!).map { "\($0.0) \(fixed($0.1, 4))" }.joined(separator: "  ")
                let attack = summary.attackers[peer].map { "  (attacker: \($0))" } ?? ""
                print("  \(peer.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(metrics)\(attack)")
            }
            if !summary.attackers.isEmpty {
                let attackers = summary.peers.filter { summary.attackers[$0] != nil }
                for (label, group) in [("honest", summary.honestPeers), ("attackers", attackers)] {
                    print("\(label) (\(group.count) peers), mean [min, max]:")
                    for (metric, spread) in (MetricSpread.of(group, summary) ?? [:]).sorted(by: { $0.key < $1.key }) {
                        print("  \(metric.padding(toLength: 12, withPad: " ", startingAt: 0)) \(fixed(spread.mean, 4)) [\(fixed(spread.min, 4)), \(fixed(spread.max, 4))]")
                    }
                }
            }
        }
        let quarantines = summary.outcome.quarantines
        if quarantines.isEmpty {
            print("peer scoring: no neighbour quarantined")
        } else {
            print("peer scoring: \(quarantines.count) quarantines, \(summary.outcome.releases.count) releases")
            for q in quarantines.prefix(20) { print("  \(q)") }
            if quarantines.count > 20 { print("  … \(quarantines.count - 20) more") }
        }
        if let logDir { print("convergence logs: \(logDir)/<peer>.jsonl") }
        if inference { print(inferenceText(summary: summary, data: data, plan: plan), terminator: "") }
    }

    /// The clinical table of the decentralized model: the likelihood stratified by site, each
    /// site's summary at the peer's final model summed, as-is (with its distance from the
    /// optimum) and after Newton steps on the sum.
    func inferenceText(summary: SimulationSummary, data: PartitionedData, plan: Plan) -> String {
        guard let peer = summary.honestPeers.first, let parameters = summary.finalParameters[peer], !data.sites.isEmpty else { return "" }
        let model = makeModel(plan: plan, dimension: data.sites[0].dimension)
        let trained = TrainedModel(model: model, parameters: parameters, standardization: summary.standardization)
        let sites = data.sites.map { summary.standardization.applied(to: $0) }
        guard let asIs = Inference.stratified(for: trained, standardizedSites: sites, plan: plan, refine: false)?.report,
            let refined = Inference.stratified(for: trained, standardizedSites: sites, plan: plan, refine: true)?.report
        else { return "\ninference: only for cox and logistic with a positive-definite information\n" }
        var largest = 0.0
        for (a, b) in zip(asIs.coefficients, refined.coefficients) { largest = max(largest, abs(a.ratio - b.ratio) / b.ratio) }
        var out = "\n\(peer.rawValue)'s final model, likelihood stratified by the \(data.sites.count) sites: gradient norm "
        out += "\(TrainReportText.scientific(asIs.gradientNorm))\(asIs.converged ? " (converged)" : " (not converged)"); "
        out += "its \(asIs.ratioName)s are within \(TrainReportText.significant(100 * largest))% of the stratified optimum below.\n"
        out += TrainReportText.inferenceTable(refined)
        return out
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The papers' table: each site alone, decentralized (Plexus), and all rows pooled.",
        discussion: """
            For every seed: centralized and isolated models fitted as `plexus train` fits them, \
            and the decentralized model of every peer after the plan's rounds in the simulator \
            (the row shows the mean over peers) — same model and test set.

            Examples:
              plexus evaluate --topology Topologies/tcga-brca.toml --data Topologies/data/tcga_brca.csv \\
                  --where split=train --test-where split=test
              plexus evaluate --topology Topologies/consortium-3.toml --data Topologies/data/wdbc.csv \\
                  --partition 'split:Topologies/data/splits/wdbc_seed{seed}.json' --seeds 0-4
            """
    )

    @OptionGroup var experiment: ExperimentOptions

    @Option(help: "Seeds: a list (0,1,2) or a range (0-4). Default: the plan's seed.")
    var seeds: String?

    @Flag(help: "Print the table as Markdown.")
    var markdown = false

    @Flag(help: "Print the table as JSON (input for `plexus report --evaluation`).")
    var json = false

    @Flag(help: ArgumentHelp(
        "Leave one centre out: hold each centre out in turn, train pooled and decentralized on the others, and report the held-out centre's Harrell's C with a bootstrap 95% interval (survival plans; peer ids must name the centres).",
        discussion: "Uses the first seed; --test-where is not used (the held-out centre is the test set)."))
    var loco = false

    @Option(help: "--loco: bootstrap resamples per interval.")
    var bootstrap = 1000

    func run() throws {
        let (topology, plan, spec, filters, testFilters) = try experiment.load()
        let seedList = try seeds.map(parseSeeds) ?? [plan.seed]
        var options = EvaluationOptions(topology: topology, dataPath: experiment.data, partition: spec)
        options.plan = plan
        options.filters = filters
        options.testFilters = testFilters
        options.split = experiment.split
        options.seeds = seedList
        options.links = experiment.links
        options.byzantine = try experiment.attackers(of: topology)
        if loco {
            guard options.byzantine.isEmpty, experiment.split == nil else {
                throw CLIError("--loco holds out whole centres: it takes neither --byzantine nor --split")
            }
            let table: LeaveOneCentreOut.Table
            do {
                table = try LeaveOneCentreOut.run(options, resamples: bootstrap) { message in
                    if !json { StandardStream.error.write(message + "\n") }
                }
            } catch { throw CLIError("\(error)") }
            if json {
                print(try PlexusJSON.string(table))
            } else if markdown {
                print(table.markdown(), terminator: "")
            } else {
                print(table.text(), terminator: "")
            }
            return
        }
        let table: EvaluationTable
        do {
            table = try EvaluationTable.run(options) { message in
                if !json { StandardStream.error.write(message + "\n") }
            }
        } catch { throw CLIError("\(error)") }
        if json {
            print(try PlexusJSON.string(table.record()))
        } else if markdown {
            print(table.markdown(), terminator: "")
        } else {
            print("\(table.model) on \(table.dataset), topology \(table.topology), seeds \(seedList.map(String.init).joined(separator: ","))")
            if let line = table.attackersLine { print(line) }
            if plan.privacy != nil, let line = privacyLine(plan) {
                print(line + "; the centralized and isolated rows are private too: the same mechanism and ε on the pooled rows, and on each site alone")
            }
            print(table.text())
        }
    }
}

/// What `[plan.privacy]` spends, for the simulate and evaluate headers (nil without one).
func privacyLine(_ plan: Plan) -> String? {
    guard plan.privacy != nil, let resolved = try? PlanPrivacy(plan: plan) else { return nil }
    return resolved.summary
}

/// Mean, minimum and maximum of one metric over a group of peers.
struct MetricSpread: Encodable {
    var mean, min, max: Double

    /// Metric → spread over `peers`' final test metrics; `nil` for an empty group or no test set.
    static func of(_ peers: [PeerID], _ summary: SimulationSummary) -> [String: MetricSpread]? {
        let evaluations = peers.compactMap { summary.test[$0] }
        guard !evaluations.isEmpty else { return nil }
        var values: [String: [Double]] = [:]
        for e in evaluations { for (k, v) in metricPairs(e) { values[k, default: []].append(v) } }
        return values.mapValues { v in
            MetricSpread(mean: v.reduce(0, +) / Double(v.count), min: v.min()!, max: v.max()!)
        }
    }
}

func parseSeeds(_ text: String) throws -> [UInt64] {
    if let dash = text.firstIndex(of: "-"), let lo = UInt64(text[..<dash]), let hi = UInt64(text[text.index(after: dash)...]), lo <= hi, hi - lo < 1000 {
        return Array(lo...hi)
    }
    let list = text.split(separator: ",").map { UInt64($0) }
    guard !list.isEmpty, list.allSatisfy({ $0 != nil }) else {
        throw ValidationError("--seeds: expected a list like 0,1,2 or a range like 0-4, got '\(text)'")
    }
    return list.map { $0! }
}


/// Peak resident set size of this process (getrusage), in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

public import PlexusCore
public import PlexusLearning
public import PlexusLog
import PlexusPrivacy
public import PlexusSimulator
public import PlexusTopology

/// The comparison the clinical papers make: each site alone, the sites together without sharing
/// rows (Plexus, in the simulator), and all rows pooled — same model, same test set.
public struct EvaluationTable: Sendable {
    public struct Row: Sendable {
        /// `centralized`, `isolated`, `decentralized` or (with Byzantine peers)
        /// `decentralized-worst`, the worst honest peer; `decentralized-drop`, the largest
        /// loss of one honest peer against the same peer in the same run without attackers.
        public var setting: String
        public var site: String?
        /// Per seed: metric name → value (on the common test set).
        public var values: [[String: Double]]
        /// Under `[plan.privacy]` only: the ε per site the row's models spent at the plan's δ
        /// (``PlexusPrivacy/PlanPrivacy``, by the plan's last round; every row of a private plan
        /// spends the same); `nil` without privacy.
        public var epsilon: Double?

        public init(setting: String, site: String?, values: [[String: Double]], epsilon: Double? = nil) {
            self.setting = setting
            self.site = site
            self.values = values
            self.epsilon = epsilon
        }
    }

    public var dataset: String
    public var topology: String
    public var model: String
    public var codec: String
    /// The headline metric: `c_index` for survival, `accuracy` for classification.
    public var metric: String
    /// All metrics shown, in order.
    public var metrics: [String]
    public var seeds: [UInt64]
    public var rows: [Row]
    /// Decentralized envelope bytes per seed, summed over peers.
    public var bytes: [Int]
    /// The attack simulator's Byzantine peers (`PEER:ATTACK`); the decentralized rows are over
    /// the other, honest peers. Empty in an honest run.
    public var byzantine: [String] = []
    /// δ of the plan's `[plan.privacy]`; `nil` without one (then no row has an ε).
    public var delta: Double?
}

public struct EvaluationOptions {
    public var topology: Topology
    public var plan: Plan
    public var dataPath: String
    public var partition: PartitionSpec
    public var filters: [RowFilter] = []
    public var testFilters: [RowFilter] = []
    /// A protocol split file (`{seed}` replaced): train on its `train` rows, test on its `test` rows.
    public var split: String?
    public var seeds: [UInt64] = [0]
    public var links = LinkConditions()
    /// Byzantine peers of the decentralized runs (``Attack``). Default: none.
    public var byzantine: [ByzantinePeer] = []

    public init(topology: Topology, dataPath: String, partition: PartitionSpec) {
        self.topology = topology
        self.plan = topology.plan
        self.dataPath = dataPath
        self.partition = partition
    }
}

extension EvaluationTable {
    /// Runs centralized, isolated and decentralized training for every seed.
    ///
    /// Centralized and isolated models are fitted as `plexus train` fits them (L-BFGS to
    /// convergence for the convex models, the plan's optimizer for the rest); the decentralized
    /// model is each peer's after the plan's rounds in the simulator, the row reporting the mean
    /// over peers — over the honest peers only when there are Byzantine ones, with a second row,
    /// `decentralized-worst`, for the worst honest peer of each metric. Centralized and isolated
    /// rows use every site's true rows (attacks act on the protocol only). Standardization follows the protocol: pooled training statistics for
    /// centralized and decentralized, the site's own for isolated.
    public static func run(_ options: EvaluationOptions, progress: (String) -> Void = { _ in }) throws -> EvaluationTable {
        let table = try CSV.read(path: options.dataPath)
        let plan = options.plan
        let names = plan.model.isSurvival ? ["c_index"] : ["accuracy", "f1", "auc"]
        var centralized: [[String: Double]] = []
        var isolated: [String: [[String: Double]]] = [:]
        var siteOrder: [String] = []
        var decentralized: [[String: Double]] = []
        var worst: [[String: Double]] = []
        var drop: [[String: Double]] = []
        var bytes: [Int] = []
        for seed in options.seeds {
            var seeded = plan
            seeded.seed = seed
            let data = try Partitioner.partition(
                table: table, plan: seeded, spec: options.partition, count: options.topology.peers.count,
                filters: options.filters, testFilters: options.testFilters, split: options.split, seed: seed
            )
            guard let test = data.test else {
                throw ExperimentError("no test set: give --test-where column=value, or a split: partition")
            }
            let siteOf = try Experiment.assignSites(data, to: options.topology)
            let peerIDs = options.topology.peers.map(\.id)
            // Centralized: all sites' rows pooled.
            var pooled = data.sites[siteOf[peerIDs[0]]!]
            for peer in peerIDs.dropFirst() { pooled.append(contentsOf: data.sites[siteOf[peer]!]) }
            progress("seed \(seed): centralized on \(pooled.count) rows")
            // Under [plan.privacy] the centralized and isolated models are private too, under
            // the same mechanism and ε as a peer (``Experiment/fitPrivately(_:plan:label:)``).
            let central = seeded.privacy == nil
                ? Trainer.fit(pooled, plan: seeded, seed: seed).trained : try Experiment.fitPrivately(pooled, plan: seeded, label: "centralized")
            centralized.append(pick(central.evaluate(on: test), names))
            // Isolated: each site alone.
            for peer in peerIDs {
                let site = data.sites[siteOf[peer]!]
                let fitted = seeded.privacy == nil
                    ? Trainer.fit(site, plan: seeded, seed: seed).trained : try Experiment.fitPrivately(site, plan: seeded, label: "isolated|\(peer.rawValue)")
                if isolated[peer.rawValue] == nil { siteOrder.append(peer.rawValue) }
                isolated[peer.rawValue, default: []].append(pick(fitted.evaluate(on: test), names))
            }
            // Decentralized: the simulator.
            progress("seed \(seed): decentralized, \(plan.rounds) rounds on \(peerIDs.count) peers")
            var simulation = SimulationOptions(topology: options.topology, data: data)
            simulation.plan = seeded
            simulation.seed = seed
            simulation.links = options.links
            simulation.byzantine = options.byzantine
            let summary = try Experiment.simulate(simulation)
            let honest = summary.honestPeers
            var mean: [String: Double] = [:]
            var lowest: [String: Double] = [:]
            for peer in honest {
                for (k, v) in pick(summary.test[peer]!, names) {
                    mean[k, default: 0] += v / Double(honest.count)
                    lowest[k] = min(lowest[k] ?? .infinity, v)
                }
            }
            decentralized.append(mean)
            worst.append(lowest)
            bytes.append(summary.bytesSent)
            if !options.byzantine.isEmpty {
                // The same run without attackers: how much each honest peer lost to them.
                progress("seed \(seed): the clean run, for each honest peer's drop")
                var clean = simulation
                clean.byzantine = []
                let baseline = try Experiment.simulate(clean)
                var largest: [String: Double] = [:]
                for peer in honest {
                    let before = pick(baseline.test[peer]!, names)
                    for (k, v) in pick(summary.test[peer]!, names) {
                        if let b = before[k] { largest[k] = max(largest[k] ?? -.infinity, b - v) }
                    }
                }
                drop.append(largest)
            }
        }
        // What every row spent: every DP-SGD step of the plan (and the statistics release, with
        // bounds) — the decentralized peers and the private centralized and isolated fits alike.
        let resolved = plan.privacy == nil ? nil : try PlanPrivacy(plan: plan)
        let spent = resolved?.epsilon(afterRound: plan.rounds)
        let nonPrivate = spent
        var rows = [Row(setting: "centralized", site: nil, values: centralized, epsilon: nonPrivate)]
        rows += siteOrder.map { Row(setting: "isolated", site: $0, values: isolated[$0]!, epsilon: nonPrivate) }
        rows.append(Row(setting: "decentralized", site: nil, values: decentralized, epsilon: spent))
        if !options.byzantine.isEmpty {
            rows.append(Row(setting: "decentralized-worst", site: nil, values: worst, epsilon: spent))
            rows.append(Row(setting: "decentralized-drop", site: nil, values: drop, epsilon: spent))
        }
        var result = EvaluationTable(
            dataset: options.dataPath, topology: options.topology.networkName, model: plan.model.rawValue, codec: plan.codec,
            metric: names[0], metrics: names, seeds: options.seeds, rows: rows, bytes: bytes
        )
        result.byzantine = options.byzantine.map(\.description)
        result.delta = resolved?.privacy.delta
        return result
    }

    static func pick(_ evaluation: Evaluation, _ names: [String]) -> [String: Double] {
        let all = Dictionary(metricPairs(evaluation), uniquingKeysWith: { a, _ in a })
        return all.filter { names.contains($0.key) }
    }

    static func meanAndSD(_ values: [Double]) -> (mean: Double, sd: Double) {
        let mean = values.reduce(0, +) / Double(max(values.count, 1))
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    func label(_ row: Row) -> String {
        switch row.setting {
        case "isolated": "isolated \(row.site ?? "")"
        case "decentralized" where !byzantine.isEmpty: "decentralized (Plexus, \(codec)), honest peers' mean"
        case "decentralized": "decentralized (Plexus, \(codec))"
        case "decentralized-worst": "decentralized, worst honest peer"
        case "decentralized-drop": "largest drop at one honest peer vs the clean run"
        default: "centralized (pooled rows)"
        }
    }

    func cell(_ row: Row, _ metric: String) -> String {
        let values = row.values.compactMap { $0[metric] }
        let (mean, sd) = Self.meanAndSD(values)
        return seeds.count > 1 ? "\(Format.fixed(mean, decimals: 3)) ± \(Format.fixed(sd, decimals: 3))" : Format.fixed(mean, decimals: 3)
    }

    /// The ε column's cell: 3 decimals, `∞` for a non-private fit.
    static func epsilonCell(_ epsilon: Double?) -> String {
        guard let epsilon else { return "" }
        return epsilon.isFinite ? Format.fixed(epsilon, decimals: 3) : "∞"
    }

    /// The column headers: the setting, the metrics, and under `[plan.privacy]` ε.
    var header: [String] { ["setting"] + metrics.map(Self.displayName) + (delta == nil ? [] : ["epsilon"]) }

    func cells(_ row: Row) -> [String] {
        [label(row)] + metrics.map { cell(row, $0) } + (delta == nil ? [] : [Self.epsilonCell(row.epsilon)])
    }

    /// The table as aligned text.
    public func text() -> String {
        let header = self.header
        let body = rows.map(cells)
        let widths = header.indices.map { i in ([header[i]] + body.map { $0[i] }).map(\.count).max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == 0 ? c.padding(widths[i]) : c.leftPadding(widths[i]) }.joined(separator: "  ")
        }
        var out = [line(header), widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")]
        out += body.map(line)
        return out.joined(separator: "\n")
    }

    /// The line naming the Byzantine peers, when there are any: "attackers: peer-03:sign-flip, …".
    public var attackersLine: String? {
        byzantine.isEmpty ? nil : "attackers: \(byzantine.joined(separator: ", ")) (decentralized rows: honest peers only)"
    }

    /// The table as Markdown (preceded by the ``attackersLine``, if any).
    public func markdown() -> String {
        var out = attackersLine.map { $0 + "\n\n" } ?? ""
        out += "| " + header.joined(separator: " | ") + " |\n"
        out += "| --- |" + String(repeating: " --- |", count: header.count - 1) + "\n"
        for row in rows { out += "| " + cells(row).joined(separator: " | ") + " |\n" }
        return out
    }

    /// The table as JSON (read by `plexus report --evaluation`).
    public func record() -> EvaluationRecord {
        var record = EvaluationRecord(
            dataset: dataset, topology: topology, model: model, codec: codec, metric: metric, seeds: seeds,
            decentralizedBytes: bytes,
            rows: rows.map { row in
                let (mean, sd) = Self.meanAndSD(row.values.compactMap { $0[metric] })
                return EvaluationRecord.Row(
                    setting: row.setting, site: row.site, mean: mean, sd: sd,
                    perSeed: row.values.map { v in Dictionary(uniqueKeysWithValues: metrics.map { ($0, v[$0]) }) },
                    epsilon: row.epsilon
                )
            }
        )
        record.byzantine = byzantine.isEmpty ? nil : byzantine
        return record
    }

    static func displayName(_ metric: String) -> String {
        switch metric {
        case "c_index": "C-index"
        case "auc": "ROC AUC"
        case "f1": "F1"
        default: metric
        }
    }
}


extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    func leftPadding(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

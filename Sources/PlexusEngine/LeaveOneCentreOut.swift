import PlexusCore
public import PlexusLearning
import PlexusTopology

/// `plexus evaluate --loco`: each centre in turn is held out entirely; the others train — pooled
/// (as `plexus train` fits them) and decentralized (the simulator on the topology minus that peer,
/// its Metropolis–Hastings weights recomputed for the smaller graph) — and both models are scored
/// on every row of the held-out centre: its rows, its events, and Harrell's C with a percentile
/// bootstrap 95% interval (``BootstrapInterval``: a resample without a comparable pair has no
/// C-index; it is left out and counted). A centre with fewer than ``minimumEvents`` events gets
/// the point estimate only, with a note: an interval from so few events would mislead.
///
/// The decentralized model of a held-out run is the network's consensus: the mean of the
/// remaining peers' final parameters (after the plan's consensus rounds they agree closely).
public enum LeaveOneCentreOut {
    public static let minimumEvents = 10

    public struct Row: Sendable, Hashable, Codable {
        public var centre: String
        public var rows: Int
        public var events: Int
        public var pooled: Score
        public var decentralized: Score
        public var note: String?
    }

    /// A C-index, and its interval when the centre has enough events.
    public struct Score: Sendable, Hashable, Codable {
        public var concordance: Double?
        public var interval: BootstrapInterval?
    }

    public struct Table: Sendable, Hashable, Codable {
        public var dataset: String
        public var topology: String
        public var model: String
        public var seed: UInt64
        public var resamples: Int
        public var rows: [Row]

        public func text() -> String {
            var lines = [
                "leave-one-centre-out: \(model) on \(dataset), topology \(topology), seed \(seed); Harrell's C with a \(resamples)-resample bootstrap 95% interval",
                "held out          rows  events  pooled (others' rows)      decentralized (others, gossip)",
            ]
            func cell(_ s: Score) -> String {
                guard let c = s.concordance else { return "—".padding(26) }
                guard let i = s.interval else { return Format.fixed(c, decimals: 3).padding(26) }
                return "\(Format.fixed(c, decimals: 3)) [\(Format.fixed(i.lower, decimals: 3)), \(Format.fixed(i.upper, decimals: 3))]".padding(26)
            }
            for row in rows {
                let line = row.centre.padding(16) + String(row.rows).leftPadding(6) + String(row.events).leftPadding(8) + "  " + cell(row.pooled) + " " + cell(row.decentralized)
                lines.append(String(line.reversed().drop { $0 == " " }.reversed()))
            }
            for row in rows where row.note != nil { lines.append("\(row.centre): \(row.note!)") }
            let skipped = rows.flatMap { [$0.pooled.interval, $0.decentralized.interval] }.compactMap { $0 }.reduce(0) { $0 + $1.skipped }
            if skipped > 0 { lines.append("\(skipped) bootstrap resamples had no comparable pair and were left out") }
            return lines.joined(separator: "\n") + "\n"
        }

        public func markdown() -> String {
            var out = "| held out | rows | events | pooled C (95% CI) | decentralized C (95% CI) |\n| --- | --- | --- | --- | --- |\n"
            func cell(_ s: Score) -> String {
                guard let c = s.concordance else { return "—" }
                guard let i = s.interval else { return Format.fixed(c, decimals: 3) + " (fewer than \(LeaveOneCentreOut.minimumEvents) events)" }
                return "\(Format.fixed(c, decimals: 3)) (\(Format.fixed(i.lower, decimals: 3))–\(Format.fixed(i.upper, decimals: 3)))"
            }
            for row in rows { out += "| \(row.centre) | \(row.rows) | \(row.events) | \(cell(row.pooled)) | \(cell(row.decentralized)) |\n" }
            return out
        }
    }

    /// Runs the held-out fits for every peer of `options.topology` (peer ids must name the
    /// centres: a `column:` partition), on `options.seeds.first`. The test filters are not used:
    /// the held-out centre is the test set.
    public static func run(_ options: EvaluationOptions, resamples: Int = 1000, progress: (String) -> Void = { _ in }) throws -> Table {
        var plan = options.plan
        guard plan.model.isSurvival else {
            throw ExperimentError("--loco reports Harrell's C at each held-out centre: it needs a survival plan (cox or deepsurv), not '\(plan.model.rawValue)'")
        }
        guard plan.privacy == nil else { throw ExperimentError("--loco fits non-private models; drop [plan.privacy] for it") }
        guard resamples >= 1 else { throw ExperimentError("--bootstrap must be at least 1") }
        let seed = options.seeds.first ?? plan.seed
        plan.seed = seed
        let table = try CSV.read(path: options.dataPath)
        let topology = options.topology
        guard topology.peers.count >= 3 else { throw ExperimentError("--loco needs at least 3 centres (2 train while one is held out)") }
        let data = try Partitioner.partition(
            table: table, plan: plan, spec: options.partition, count: topology.peers.count, filters: options.filters, seed: seed)
        guard topology.peers.allSatisfy({ data.siteNames.contains($0.id.rawValue) }) else {
            throw ExperimentError("--loco holds out centres by name: every peer id must name a centre (a column: partition); the sites are \(data.siteNames.joined(separator: ", "))")
        }
        let site = { (peer: PeerID) in data.sites[data.siteNames.firstIndex(of: peer.rawValue)!] }
        var rows: [Row] = []
        for held in topology.peers.map(\.id) {
            let others = topology.peers.filter { $0.id != held }
            let links = topology.links.filter { $0.a != held && $0.b != held }
            let remaining = Topology(networkName: "\(topology.networkName) without \(held)", plan: plan, peers: others, links: links)
            let lonely = others.map(\.id).filter { id in !links.contains { $0.a == id || $0.b == id } }
            guard lonely.isEmpty, isConnected(others.map(\.id), links) else {
                throw ExperimentError("without '\(held)' the topology is not connected (\(lonely.isEmpty ? "it splits in parts" : "\(lonely.map(\.rawValue).joined(separator: ", ")) would have no neighbour")): a held-out run needs the others to reach each other")
            }
            let test = site(held)
            progress("holding out \(held): \(test.count) rows; pooled and decentralized fits on \(others.count) centres")
            var pooledRows = site(others[0].id)
            for peer in others.dropFirst() { pooledRows.append(contentsOf: site(peer.id)) }
            let pooled = Trainer.fit(pooledRows, plan: plan, seed: seed).trained
            var simulation = SimulationOptions(
                topology: remaining, data: PartitionedData(sites: others.map { site($0.id) }, siteNames: others.map(\.id.rawValue), test: test))
            simulation.plan = plan
            simulation.seed = seed
            simulation.links = options.links
            let summary = try Experiment.simulate(simulation)
            var consensus = [Float](repeating: 0, count: pooled.parameters.count)
            for peer in summary.peers {
                for (i, v) in summary.finalParameters[peer]!.enumerated() { consensus[i] += v / Float(summary.peers.count) }
            }
            let decentralized = TrainedModel(model: pooled.model, parameters: consensus, standardization: summary.standardization)
            let events = test.events.filter { $0 != 0 }.count
            let few = events < minimumEvents
            func score(_ model: TrainedModel) -> Score {
                let risks = model.model.predict(parameters: model.parameters, batch: model.standardization.applied(to: test)).map(Double.init)
                let point = SurvivalMetrics.concordance(times: test.times, scores: risks.map { -$0 }, events: test.events)
                guard point.pairs > 0 else { return Score(concordance: nil, interval: nil) }
                let interval = few ? nil : BootstrapInterval.concordance(times: test.times, events: test.events, risks: risks, resamples: resamples, seed: seed)
                return Score(concordance: point.index, interval: interval)
            }
            rows.append(Row(
                centre: held.rawValue, rows: test.count, events: events, pooled: score(pooled), decentralized: score(decentralized),
                note: few ? "\(events) event\(events == 1 ? "" : "s"): the point estimate only (fewer than \(minimumEvents) events give no useful interval)" : nil))
        }
        return Table(dataset: options.dataPath, topology: topology.networkName, model: plan.model.rawValue, seed: seed, resamples: resamples, rows: rows)
    }

    static func isConnected(_ peers: [PeerID], _ links: [Topology.Link]) -> Bool {
        guard let first = peers.first else { return true }
        var seen: Set<PeerID> = [first]
        var frontier = [first]
        while let p = frontier.popLast() {
            for link in links where link.a == p || link.b == p {
                let other = link.a == p ? link.b : link.a
                if seen.insert(other).inserted { frontier.append(other) }
            }
        }
        return seen.count == peers.count
    }
}

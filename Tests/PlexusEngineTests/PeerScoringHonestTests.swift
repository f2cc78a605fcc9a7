import Foundation
import PlexusCore
import PlexusEngine
import PlexusGossip
import PlexusLearning
import PlexusSimulator
import PlexusTopology
import Testing

/// Peer scoring must never fire without an attacker: every topology of the repository, on its
/// real data, in the simulator (the same instances as `plexus run`), with non-IID cuts and the
/// early rounds where models differ most. Each case prints the largest distance ratio it saw —
/// the measurement behind ``PeerScoring/Settings/distanceRatio``'s default.
@Suite struct PeerScoringHonestTests {
    struct Case: CustomStringConvertible, Sendable {
        var topology: String
        var data: String
        var partition: PartitionSpec
        var plan: String? = nil
        var codec: String? = nil
        var aggregation: Plan.Aggregation = .mean
        /// A measured exception to "no honest copy is ever charged for distance" (README, "Peer
        /// scoring and quarantine"): the largest ratio the case may reach, still without a quarantine.
        var distanceBound = PeerScoring.Settings().distanceRatio
        var description: String { "\(topology) \(data) \(partition)\(plan.map { " " + $0 } ?? "")\(codec.map { " " + $0 } ?? "") \(aggregation)" }
    }

    static let cases: [Case] = [
        Case(topology: "consortium-3.toml", data: "wdbc.csv", partition: .split(dataDirectory + "/splits/wdbc_seed0.json")),
        Case(topology: "consortium-3.toml", data: "wdbc.csv", partition: .split(dataDirectory + "/splits/wdbc_seed3.json")),
        Case(topology: "consortium-3.toml", data: "gbsg2.csv", partition: .split(dataDirectory + "/splits/gbsg2_seed0.json"), plan: "gbsg2-cox.toml"),
        Case(topology: "consortium-3.toml", data: "gbsg2.csv", partition: .split(dataDirectory + "/splits/gbsg2_seed1.json"), plan: "gbsg2-deepsurv.toml"),
        Case(topology: "tcga-brca.toml", data: "tcga_brca.csv", partition: .column("center")),
        Case(topology: "ring-8.toml", data: "wdbc.csv", partition: .iid),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .iid),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .dirichlet(0.3)),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .iid, codec: "topk:0.1+f16"),
        Case(topology: "exponential-32.toml", data: "wdbc.csv", partition: .iid),
        Case(topology: "small-world-64.toml", data: "wdbc.csv", partition: .dirichlet(0.5)),
        Case(topology: "small-world-64.toml", data: "wdbc.csv", partition: .dirichlet(0.1)),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .dirichlet(0.1)),
        // The plan's 10 consensus-only rounds expose what local steps hid: on this ring the sample
        // weights of a tiny site nearly cut the graph, and once training stops the two halves
        // agree within themselves but not across — peer-07 is 25.5 × peer-06's neighbourhood's
        // spread away in round 51 (charged once, penalty 1; no quarantine; with 20 consensus rounds
        // it is quarantined in round 70).
        Case(topology: "ring-8.toml", data: "gbsg2.csv", partition: .dirichlet(0.3), plan: "gbsg2-cox.toml", distanceBound: 26),
        // Under the robust rules, whose cuts also cost (a penalty of 1 per cut once quarantined
        // 16 honest neighbours here; 0.25 never does).
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .iid, aggregation: .clipped),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .dirichlet(0.3), aggregation: .clipped),
        Case(topology: "exponential-32.toml", data: "wdbc.csv", partition: .iid, aggregation: .clipped),
        Case(topology: "torus-16.toml", data: "gbsg2.csv", partition: .iid, plan: "gbsg2-cox.toml", aggregation: .clipped),
        // The attack tables' clean runs (README "Attacks"): both datasets on both graphs, both rules.
        Case(topology: "torus-16.toml", data: "gbsg2.csv", partition: .iid, plan: "gbsg2-cox.toml"),
        Case(topology: "exponential-32.toml", data: "gbsg2.csv", partition: .iid, plan: "gbsg2-cox.toml"),
        Case(topology: "exponential-32.toml", data: "gbsg2.csv", partition: .iid, plan: "gbsg2-cox.toml", aggregation: .clipped),
        Case(topology: "consortium-3.toml", data: "wdbc.csv", partition: .split(dataDirectory + "/splits/wdbc_seed0.json"), aggregation: .median),
        Case(topology: "torus-16.toml", data: "wdbc.csv", partition: .iid, aggregation: .trimmedMean(1)),
    ]

    @Test(arguments: cases)
    func noQuarantineWithoutAnAttacker(_ c: Case) throws {
        let network = try topology(c.topology)
        var plan = try c.plan.map(planFile) ?? network.plan
        if let codec = c.codec {
            plan.codec = codec
            plan.consensusStep = 0.2
        }
        plan.aggregation = c.aggregation
        let table = try CSV.read(path: dataDirectory + "/" + c.data)
        var filters: [RowFilter] = []
        var testFilters: [RowFilter] = []
        var split: String?
        if c.data == "tcga_brca.csv" {
            filters = [RowFilter(column: "split", value: "train")]
            testFilters = [RowFilter(column: "split", value: "test")]
        } else if case .split = c.partition {
        } else {
            split = dataDirectory + "/splits/" + c.data.replacingOccurrences(of: ".csv", with: "_seed0.json")
        }
        let data = try Partitioner.partition(
            table: table, plan: plan, spec: c.partition, count: network.peers.count, filters: filters, testFilters: testFilters,
            split: split, seed: plan.seed
        )
        var options = SimulationOptions(topology: network, data: data)
        options.plan = plan
        options.evaluateEvery = plan.rounds
        let summary = try Experiment.simulate(options)
        #expect(summary.outcome.quarantines.isEmpty, "\(c): \(summary.outcome.quarantines)")
        #expect(summary.outcome.evidence.isEmpty, "\(c)")
        let ratios = summary.outcome.largestDistanceRatio
        let worst = ratios.max { $0.value < $1.value }
        let late = ratios.filter { $0.key > 5 }.values.max() ?? 0
        // No honest copy is ever charged for its distance, not even once.
        #expect((worst?.value ?? 0) < c.distanceBound, "\(c): largest honest distance ratio \(worst?.value ?? 0) in round \(worst?.key ?? 0)")
        // No honest neighbour ever has a still round (its copy moving < 1/100 of this peer's).
        let still = summary.outcome.smallestMovementRatio
        #expect(still != nil, "\(c): no movement ratio measured")
        #expect((still?.ratio ?? 0) >= PeerScoring.Settings().stillRatio, "\(c): smallest honest movement ratio \(still?.ratio ?? 0) in round \(still?.round ?? 0)")
        print("peer scoring, honest \(c): smallest movement ratio \(still?.ratio ?? 0) (round \(still?.round ?? 0))")
        print("peer scoring, honest \(c): \(plan.rounds) rounds, largest distance ratio \(worst?.value ?? 0) (round \(worst?.key ?? 0)), after round 5 \(late); largest relative distance by spread \(summary.outcome.distanceProfile.sorted { $0.key < $1.key }.map { "≥\(Int($0.key)): \($0.value)" })")
    }
}

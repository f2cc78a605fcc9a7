import PlexusCore
import PlexusEngine
import PlexusLearning
import PlexusSimulator
import PlexusTopology
import Testing

/// Issue 12's floor without attackers: `aggregation = "clipped"` costs at most 0.005 of the
/// metric against `"mean"`, on the real data, through the whole engine (plan → settings → rule).
@Suite struct RobustAggregationTests {
    /// tcga_brca, Cox, the six centres: every peer's C-index, and its model, where the mean's is.
    @Test func tcgaClippedMatchesMean() throws {
        let network = try topology("tcga-brca.toml")
        let data = try tcgaByCentre(plan: network.plan, seed: network.plan.seed)
        func run(_ aggregation: Plan.Aggregation) throws -> SimulationSummary {
            var options = SimulationOptions(topology: network, data: data)
            var plan = network.plan
            plan.aggregation = aggregation
            options.plan = plan
            return try Experiment.simulate(options)
        }
        let mean = try run(.mean)
        let clipped = try run(.clipped)
        for peer in mean.peers {
            let a = mean.test[peer]!.survival!.concordance
            let b = clipped.test[peer]!.survival!.concordance
            #expect(abs(a - b) <= 0.005, "\(peer): C-index \(b) clipped vs \(a) mean")
        }
        // The median of three gives up sample weighting: a different model, not a copy of the mean's.
        let median = try run(.median)
        #expect(mean.finalParameters[mean.peers[0]]! != median.finalParameters[mean.peers[0]]!)
    }

    /// wdbc, logistic, IID shards on the 16-peer torus (where clipping does bind in some rounds):
    /// the mean accuracy over peers within 0.005.
    @Test func wdbcTorusClippedMatchesMean() throws {
        let torus = try topology("torus-16.toml")
        let table = try CSV.read(path: dataDirectory + "/wdbc.csv")
        let data = try Partitioner.partition(
            table: table, plan: torus.plan, spec: .iid, count: 16, split: dataDirectory + "/splits/wdbc_seed0.json", seed: 0
        )
        func accuracy(_ aggregation: Plan.Aggregation) throws -> Double {
            var options = SimulationOptions(topology: torus, data: data)
            var plan = torus.plan
            plan.aggregation = aggregation
            options.plan = plan
            options.evaluateEvery = plan.rounds
            let summary = try Experiment.simulate(options)
            return summary.peers.map { summary.test[$0]!.classification!.accuracy }.reduce(0, +) / Double(summary.peers.count)
        }
        let mean = try accuracy(.mean)
        let clipped = try accuracy(.clipped)
        #expect(abs(mean - clipped) <= 0.005, "accuracy: clipped \(clipped), mean \(mean)")
    }
}

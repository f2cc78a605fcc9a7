import PlexusCore
import PlexusEngine
import PlexusLearning
import PlexusTopology
import Testing

/// `plexus evaluate --loco` on tcga_brca's six centres: each centre held out in turn, its rows
/// and events counted from the CSV, a C-index with a bootstrap interval where it has at least 10
/// events, the point estimate and a note where it has fewer (canada 3, europe 9).
@Suite struct LeaveOneCentreOutTests {
    @Test func tcgaHoldsOutEachCentre() throws {
        let network = try topology("tcga-brca.toml")
        var options = EvaluationOptions(topology: network, dataPath: dataDirectory + "/tcga_brca.csv", partition: .column("center"))
        options.plan = network.plan
        let table = try LeaveOneCentreOut.run(options, resamples: 200)
        #expect(table.rows.map(\.centre) == network.peers.map(\.id.rawValue))
        // Rows and events per centre, counted from the CSV itself.
        let csv = try CSV.read(path: dataDirectory + "/tcga_brca.csv")
        let centre = csv.header.firstIndex(of: "center")!, event = csv.header.firstIndex(of: "event")!
        for row in table.rows {
            let mine = csv.rows.filter { $0[centre] == row.centre }
            #expect(row.rows == mine.count && row.events == mine.filter { Double($0[event]) == 1 }.count, "\(row.centre)")
            let few = row.events < LeaveOneCentreOut.minimumEvents
            #expect((row.note != nil) == few, "\(row.centre): \(row.events) events")
            for score in [row.pooled, row.decentralized] {
                let c = try #require(score.concordance, "\(row.centre)")
                if few {
                    #expect(score.interval == nil)
                } else {
                    let interval = try #require(score.interval)
                    #expect(interval.lower <= c && c <= interval.upper && interval.upper - interval.lower > 0.02, "\(row.centre): \(interval)")
                    #expect(interval.estimate == c)
                    // The large centres are predicted well out of sample (the study's 0.68–0.79 range).
                    if row.events >= 30 { #expect(c > 0.65, "\(row.centre): \(c)") }
                }
            }
        }
        #expect(table.rows.filter { $0.note != nil }.map(\.centre).sorted() == ["canada", "europe"])
        #expect(table.text().contains("canada: 3 events: the point estimate only"))
        #expect(table.markdown().hasPrefix("| held out | rows | events | pooled C (95% CI) | decentralized C (95% CI) |"))
    }

    /// What it refuses: a classifier plan, and a held-out centre that would disconnect the rest.
    @Test func itRefusesWhatItCannotReport() throws {
        let network = try topology("tcga-brca.toml")
        var options = EvaluationOptions(topology: network, dataPath: dataDirectory + "/tcga_brca.csv", partition: .column("center"))
        var logistic = network.plan
        logistic.model = .logistic
        logistic.label = "event"
        options.plan = logistic
        #expect(throws: ExperimentError.self) { try LeaveOneCentreOut.run(options, resamples: 10) }
        // A line: holding out its middle splits the rest.
        let ids = ["northeast", "south", "west"].map { PeerID($0)! }
        let line = Topology(
            networkName: "line", plan: network.plan, peers: ids.map { id in network.peers.first { $0.id == id }! },
            links: [Topology.Link(ids[0], ids[1]), Topology.Link(ids[1], ids[2])])
        options = EvaluationOptions(topology: line, dataPath: dataDirectory + "/tcga_brca.csv", partition: .column("center"))
        options.plan = network.plan
        #expect(throws: ExperimentError.self) { try LeaveOneCentreOut.run(options, resamples: 10) }
    }
}

import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// Every file in the repository's `Topologies/` folder validates, with no warnings.
@Suite struct ExampleTopologiesTests {
    static let folder: String = {
        // #filePath = <repo>/Tests/PlexusTopologyTests/ExampleTopologiesTests.swift
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Topologies").path
    }()

    static let files: [String] = {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
    }()

    @Test func theExamplesArePresent() {
        for name in ["consortium-3.toml", "tcga-brca.toml", "ring-8.toml", "torus-16.toml", "exponential-32.toml", "small-world-64.toml"] {
            #expect(Self.files.contains(name), "Topologies/\(name) is missing")
        }
    }

    @Test(arguments: ExampleTopologiesTests.files)
    func validates(_ name: String) throws {
        let topology: Topology
        do {
            topology = try Topology.load(path: Self.folder + "/" + name)
        } catch {
            Issue.record("Topologies/\(name):\n\(error)")
            return
        }
        #expect(topology.warnings.isEmpty, "\(topology.warnings)")
        let facts = GraphFacts(topology)
        #expect(facts.components.count == 1)
        let rounds = try #require(facts.roundsToShrink1000x)
        #expect(rounds <= Double(topology.plan.rounds))
        // The mixing matrix is symmetric and doubly stochastic with non-negative entries.
        let w = topology.mixingMatrix()
        for i in w.indices {
            #expect(abs(w[i].reduce(0, +) - 1) < 1e-12)
            for j in w.indices {
                #expect(w[i][j] == w[j][i])
                #expect(w[i][j] >= 0)
            }
        }
    }

    @Test func tcgaBRCA() throws {
        let topology = try Topology.load(path: Self.folder + "/tcga-brca.toml")
        #expect(topology.networkName == "tcga-brca")
        #expect(topology.peers.map(\.id.rawValue) == ["northeast", "south", "west", "midwest", "europe", "canada"])
        #expect(topology.plan.model == .cox && topology.plan.l2 == 0.01)
        #expect(topology.plan.exclude == ["pid", "center", "split"])
        #expect(topology.plan.time == "time" && topology.plan.event == "event")
        let south = try #require(PeerID("south"))
        #expect(Set(topology.neighbours(of: south).map(\.rawValue)) == ["northeast", "west", "midwest"])
        let weights = topology.mixingWeights(for: south)
        #expect(weights.selfWeight == 0.25 && weights.neighbours.values.allSatisfy { $0 == 0.25 })
        // The plan of the topology file equals the plan-only fixture: same hash.
        let plan = try PlanFile.read(path: Fixtures.path("plans/cox.toml"))
        #expect(topology.planHash == plan.planHash)
        #expect(try PlanFile.load(path: Self.folder + "/tcga-brca.toml") == topology.plan)
    }

    @Test func consortium() throws {
        let topology = try Topology.load(path: Self.folder + "/consortium-3.toml")
        #expect(topology.plan.model == .logistic && topology.plan.label == "diagnosis")
        #expect(topology.links.count == 3 && topology.peers.count == 3)
        #expect(GraphFacts(topology).diameter == 1)
    }
}

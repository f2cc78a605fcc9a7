import Foundation
import PlexusCore
import PlexusEngine
import PlexusLearning
import PlexusLog
import PlexusSimulator
import PlexusTopology
import Testing

/// The repository's root, from this file's path.
let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let dataDirectory = repository + "/Topologies/data"

func topology(_ name: String) throws -> Topology { try Topology.load(path: repository + "/Topologies/\(name)", spectralAnalysis: false) }

/// tcga_brca's training rows cut by centre into the six sites, its test rows the common test set.
func tcgaByCentre(plan: Plan, seed: UInt64) throws -> PartitionedData {
    try Partitioner.partition(
        table: try CSV.read(path: dataDirectory + "/tcga_brca.csv"), plan: plan, spec: .column("center"), count: 6,
        filters: [RowFilter(column: "split", value: "train")], testFilters: [RowFilter(column: "split", value: "test")], seed: seed
    )
}

/// A topology of `shape` over `n` peers with `plan`, built in memory.
func generated(_ shape: String, peers n: Int, plan: Plan) throws -> Topology {
    let base = try topology("consortium-3.toml")
    let ids = (0..<n).map { PeerID("site-\($0)")! }
    let keys = base.peers.map(\.publicKey)
    let peers = ids.enumerated().map { i, id in
        Topology.Peer(id: id, endpoint: Endpoint(host: "127.0.0.1", port: 7400 + i), publicKey: keys[i % keys.count])
    }
    var links: [Topology.Link] = []
    for i in 0..<n {
        for j in (i + 1)..<n where shape == "full" || j == i + 1 || (i == 0 && j == n - 1) {
            links.append(Topology.Link(ids[i], ids[j], weight: nil))
        }
    }
    return Topology(networkName: "\(shape)-\(n)", plan: plan, peers: peers, links: links)
}

func planFile(_ name: String) throws -> Plan { try PlanFile.load(path: repository + "/Topologies/plans/\(name)") }

@Suite struct AcceptanceTests {
    /// wdbc, three sites 60/30/10: decentralized accuracy within 0.01 of centralized for every
    /// seed, and above site C's isolated accuracy on average — on a full mesh and on a ring.
    @Test(arguments: ["full", "ring"])
    func wdbcDecentralizedMatchesCentralized(shape: String) throws {
        let plan = try topology("consortium-3.toml").plan
        var options = EvaluationOptions(
            topology: try generated(shape, peers: 3, plan: plan), dataPath: dataDirectory + "/wdbc.csv",
            partition: .split(dataDirectory + "/splits/wdbc_seed{seed}.json")
        )
        options.seeds = [0, 1, 2, 3, 4]
        let table = try EvaluationTable.run(options)
        let central = table.rows.first { $0.setting == "centralized" }!.values.map { $0["accuracy"]! }
        let decentral = table.rows.first { $0.setting == "decentralized" }!.values.map { $0["accuracy"]! }
        let siteC = table.rows.filter { $0.setting == "isolated" }[2].values.map { $0["accuracy"]! }
        for seed in 0..<5 {
            #expect(abs(decentral[seed] - central[seed]) <= 0.01 + 1e-9, "seed \(seed): decentralized \(decentral[seed]) vs centralized \(central[seed])")
        }
        let decentralMean: Double = decentral.reduce(0, +) / 5
        let siteCMean: Double = siteC.reduce(0, +) / 5
        #expect(decentralMean > siteCMean)
    }

    /// tcga_brca, six centres on the TCGA topology from Topologies/: every peer's C-index ≥ 0.835.
    @Test func tcgaDecentralizedReachesPooledQuality() throws {
        let network = try topology("tcga-brca.toml")
        let data = try tcgaByCentre(plan: network.plan, seed: network.plan.seed)
        let summary = try Experiment.simulate(SimulationOptions(topology: network, data: data))
        #expect(summary.peers.count == 6)
        for peer in summary.peers {
            let c = summary.test[peer]!.survival!.concordance
            #expect(c >= 0.835, "\(peer): C-index \(c)")
        }
    }

    /// gbsg2, Cox and DeepSurv on three sites: decentralized within 0.01 of centralized, per seed.
    @Test(arguments: ["gbsg2-cox.toml", "gbsg2-deepsurv.toml"])
    func gbsg2DecentralizedMatchesCentralized(planName: String) throws {
        var options = EvaluationOptions(
            topology: try topology("consortium-3.toml"), dataPath: dataDirectory + "/gbsg2.csv",
            partition: .split(dataDirectory + "/splits/gbsg2_seed{seed}.json")
        )
        options.plan = try planFile(planName)
        options.seeds = [0, 1, 2, 3, 4]
        let table = try EvaluationTable.run(options)
        let central = table.rows.first { $0.setting == "centralized" }!.values.map { $0["c_index"]! }
        let decentral = table.rows.first { $0.setting == "decentralized" }!.values.map { $0["c_index"]! }
        for seed in 0..<5 {
            #expect(abs(decentral[seed] - central[seed]) <= 0.01, "\(planName) seed \(seed): \(decentral[seed]) vs \(central[seed])")
        }
    }

    /// Compression where bytes matter: an MLP of over 50k parameters on wdbc over a 16-peer
    /// torus. Top-k 1% with f16 values reaches the lossless accuracy within 0.01 with at least
    /// 50× fewer envelope bytes on the wire (keyframes included).
    @Test func topKReachesLosslessAccuracyWithFiftyTimesFewerBytes() throws {
        let torus = try topology("torus-16.toml")
        var plan = try planFile("wdbc-mlp-wide.toml")
        let table = try CSV.read(path: dataDirectory + "/wdbc.csv")
        let data = try Partitioner.partition(
            table: table, plan: plan, spec: .iid, count: 16, split: dataDirectory + "/splits/wdbc_seed0.json", seed: 0
        )
        func run(_ codec: String, gamma: Double) throws -> (accuracy: Double, bytes: Int, parameters: Int) {
            plan.codec = codec
            plan.consensusStep = gamma
            var options = SimulationOptions(topology: torus, data: data)
            options.plan = plan
            options.evaluateEvery = plan.rounds
            let summary = try Experiment.simulate(options)
            let accuracy = summary.peers.map { summary.test[$0]!.classification!.accuracy }.reduce(0, +) / 16
            return (accuracy, summary.bytesSent, summary.finalParameters.first!.value.count)
        }
        let lossless = try run("lossless", gamma: 1)
        let topk = try run("topk:0.01+f16", gamma: 0.1)
        #expect(lossless.parameters >= 50_000)
        #expect(abs(topk.accuracy - lossless.accuracy) <= 0.01, "top-k \(topk.accuracy) vs lossless \(lossless.accuracy)")
        #expect(Double(lossless.bytes) / Double(topk.bytes) >= 50, "bytes: lossless \(lossless.bytes), top-k \(topk.bytes)")
    }

    /// Two runs with one seed give byte-identical logs apart from wall-clock fields.
    @Test func sameSeedGivesIdenticalLogs() throws {
        let network = try topology("tcga-brca.toml")
        var plan = network.plan
        plan.rounds = 30
        plan.codec = "topk:0.3+int8"
        plan.consensusStep = 0.5
        let data = try tcgaByCentre(plan: plan, seed: 1)
        func run() throws -> [String: [String]] {
            let directory = NSTemporaryDirectory() + "plexus-determinism-\(UUID().uuidString)"
            var options = SimulationOptions(topology: network, data: data)
            options.plan = plan
            options.logDirectory = directory
            options.links.loss = 0.1
            options.links.jitter = .milliseconds(3)
            _ = try Experiment.simulate(options)
            var files: [String: [String]] = [:]
            for path in try ConvergenceLogReader.logFiles(in: directory) {
                files[(path as NSString).lastPathComponent] = try String(contentsOfFile: path, encoding: .utf8)
                    .split(separator: "\n").map { line in
                        // Drop the wall-clock fields: "time" and the "seconds" object.
                        switch try ConvergenceLog.decodeLine(Array(line.utf8)) {
                        case .header: return String(line)
                        case .round(var r):
                            r.time = 0
                            r.seconds = nil
                            return String(decoding: try ConvergenceLog.encodeLine(.round(r)), as: UTF8.self)
                        case .event(var e):
                            e.time = 0
                            return String(decoding: try ConvergenceLog.encodeLine(.event(e)), as: UTF8.self)
                        }
                    }
            }
            return files
        }
        let first = try run()
        let second = try run()
        #expect(first.count == 6)
        #expect(first.values.allSatisfy { $0.count > 30 })
        #expect(first == second)
    }
}

import PlexusCore
import PlexusCrypto
import PlexusEngine
import PlexusGossip
import PlexusLearning
import PlexusLog
import PlexusSimulator
import PlexusTopology
import Testing

/// The attack simulator (`--byzantine PEER:ATTACK`): parsing, what each attack publishes, and
/// honest-only reporting.
@Suite struct ByzantineTests {
    // MARK: Parsing

    @Test(arguments: [
        ("peer-03", "expected PEER:ATTACK (e.g. peer-03:sign-flip), got 'peer-03'"),
        (":stale", "expected PEER:ATTACK (e.g. peer-03:sign-flip), got ':stale'"),
        ("peer-03:", "expected PEER:ATTACK (e.g. peer-03:sign-flip), got 'peer-03:'"),
        (
            "peer-03:flip",
            "unknown attack 'flip'; expected one of: sign-flip, scale:K, noise:S, alie, ipm[:EPS], dissensus[:EPS], sample-lie:N, stale, label-flip, absent"
        ),
        ("peer-03:scale", "attack 'scale': scale:K needs a finite number K ≠ 0, got ''"),
        ("peer-03:scale:abc", "attack 'scale:abc': scale:K needs a finite number K ≠ 0, got 'abc'"),
        ("peer-03:scale:0", "attack 'scale:0': scale:K needs a finite number K ≠ 0, got '0'"),
        ("peer-03:scale:inf", "attack 'scale:inf': scale:K needs a finite number K ≠ 0, got 'inf'"),
        ("peer-03:noise:-1", "attack 'noise:-1': noise:S needs a finite number S > 0, got '-1'"),
        ("peer-03:ipm:x", "attack 'ipm:x': ipm:EPS needs a finite number EPS > 0, got 'x'"),
        ("peer-03:sample-lie:0", "attack 'sample-lie:0': sample-lie:N needs a whole number N from 1 to 1099511627776, got '0'"),
        ("peer-03:sample-lie:1e6", "attack 'sample-lie:1e6': sample-lie:N needs a whole number N from 1 to 1099511627776, got '1e6'"),
        ("peer-03:stale:3", "attack 'stale:3': stale takes no argument"),
    ])
    func badSpecificationsSayWhatWasExpected(text: String, message: String) {
        #expect(throws: ExperimentError.self) { try ByzantinePeer(parsing: text) }
        do {
            _ = try ByzantinePeer(parsing: text)
        } catch {
            #expect(error.description == message, "'\(text)': got \(error.description)")
        }
    }

    @Test(arguments: [
        ("peer-03:sign-flip", "peer-03:sign-flip"), ("peer-10:scale:1e6", "peer-10:scale:1000000"),
        ("peer-10:scale:-2.5", "peer-10:scale:-2.5"), ("p:noise:0.5", "p:noise:0.5"), ("p:alie", "p:alie"),
        ("p:ipm", "p:ipm:0.1"), ("p:ipm:2", "p:ipm:2"), ("p:dissensus", "p:dissensus:1"), ("p:sample-lie:100000", "p:sample-lie:100000"),
        ("p:stale", "p:stale"), ("p:label-flip", "p:label-flip"), ("p:absent", "p:absent"),
    ])
    func goodSpecificationsParse(text: String, canonical: String) throws {
        #expect(try ByzantinePeer(parsing: text).description == canonical)
    }

    @Test func peersAreCheckedAgainstTheTopology() throws {
        let peers = ["a", "b", "c"].map { PeerID($0)! }
        func message(_ specs: [String]) throws -> String? {
            do {
                try ByzantinePeer.validate(try specs.map { text throws(ExperimentError) in try ByzantinePeer(parsing: text) }, peers: peers)
                return nil
            } catch { return error.description }
        }
        #expect(try message(["z:stale"]) == "unknown peer 'z' in 'z:stale'; the topology's peers are a, b, c")
        #expect(try message(["a:stale", "a:sign-flip"]) == "peer 'a' is given more than one attack")
        #expect(try message(["a:stale", "b:stale", "c:stale"]) == "every peer is an attacker; at least one must be honest")
        #expect(try message(["a:stale", "b:sign-flip"]) == nil)
    }

    // MARK: What each attack publishes

    static let me = PeerID("me")!
    static let honest1 = PeerID("h1")!
    static let honest2 = PeerID("h2")!
    static let colluder = PeerID("z9")!

    /// A context with a model, a public copy and three neighbours (one a fellow attacker).
    static func context(round: Int = 2) -> PublishContext {
        PublishContext(
            round: round, model: [1.5, -2, 0.25, 3], publicCopy: [1, -1, 0, 2.5],
            neighbours: [
                PublishNeighbour(peer: honest1, weight: 0.25, copy: [2, 0, 1, -1]),
                PublishNeighbour(peer: honest2, weight: 0.25, copy: [4, 2, -1, 1]),
                PublishNeighbour(peer: colluder, weight: 0.25, copy: [100, 100, 100, 100]),
            ]
        )
    }

    /// u′ for `attack` given u = x − x̂ of ``context(round:)``.
    static func published(_ attack: String, round: Int = 2, transform existing: (any PublishTransform)? = nil) throws -> (update: [Float], transform: any PublishTransform) {
        var transform = try existing ?? Attack(parsing: attack).transform(seed: 1, colluders: [me, colluder], peers: 16)!
        let c = context(round: round)
        var update = zip(c.model, c.publicCopy).map { $0 - $1 }
        update.withUnsafeMutableBufferPointer { transform.transform(update: $0, context: c) }
        return (update, transform)
    }

    static var honestUpdate: [Float] { zip(context().model, context().publicCopy).map { $0 - $1 } }

    @Test func signFlipNegatesTheUpdateToTheBit() throws {
        #expect(try Self.published("sign-flip").update.map(\.bitPattern) == Self.honestUpdate.map { (-$0).bitPattern })
    }

    @Test func scaleMultipliesTheUpdate() throws {
        #expect(try Self.published("scale:1e6").update == Self.honestUpdate.map { 1e6 * $0 })
        #expect(try Self.published("scale:-3").update == Self.honestUpdate.map { -3 * $0 })
    }

    @Test func noiseAddsSeededGaussianNoise() throws {
        let attack = try Attack(parsing: "noise:0.5")
        var a = attack.transform(seed: 1, colluders: [], peers: 16)!
        var b = attack.transform(seed: 1, colluders: [], peers: 16)!
        var c = attack.transform(seed: 2, colluders: [], peers: 16)!
        let n = 20_000
        let context = PublishContext(round: 1, model: [Float](repeating: 0, count: n), publicCopy: [Float](repeating: 0, count: n), neighbours: [])
        func draw(_ t: inout any PublishTransform) -> [Float] {
            var u = [Float](repeating: 1, count: n)
            u.withUnsafeMutableBufferPointer { t.transform(update: $0, context: context) }
            return u
        }
        let first = draw(&a)
        #expect(first == draw(&b), "same seed, same noise")
        #expect(first != draw(&c), "another seed, other noise")
        #expect(first != draw(&a), "fresh noise every round")
        let noise = first.map { Double($0) - 1 }
        let mean = noise.reduce(0, +) / Double(n)
        let sd = (noise.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)).squareRoot()
        #expect(abs(mean) < 0.02 && abs(sd - 0.5) < 0.02, "noise mean \(mean), sd \(sd)")
    }

    @Test func alieIsMeanMinusZStdOfTheHonestCopies() throws {
        // n = 16 peers, f = 2 attackers: s = ⌊16/2 + 1⌋ − 2 = 7, z = Φ⁻¹(9/16).
        let z = try #require(Attack.alieZ(peers: 16, attackers: 2))
        #expect(abs(z - 0.1573106846) < 1e-9, "z = \(z)")
        #expect(abs(try #require(Attack.alieZ(peers: 100, attackers: 10)) - 0.2275449766) < 1e-9)  // Φ⁻¹((100 − 41)/100)
        #expect(Attack.alieZ(peers: 4, attackers: 3) == nil)
        let c = Self.context()
        let out = try Self.published("alie").update
        let expected = (0..<4).map { i -> Float in
            let values = [Double(c.neighbours[0].copy[i]), Double(c.neighbours[1].copy[i])]  // not the colluder's
            let m = values.reduce(0, +) / 2
            let s = (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 2).squareRoot()
            return Float(m - Double(Float(z)) * s) - c.publicCopy[i]
        }
        #expect(out == expected)
    }

    @Test func ipmIsMinusEpsilonTimesTheHonestMean() throws {
        let c = Self.context()
        let out = try Self.published("ipm:0.5").update
        var expected: [Float] = []
        for i in 0..<4 {
            let mean: Double = (Double(c.neighbours[0].copy[i]) + Double(c.neighbours[1].copy[i])) / 2
            let target: Float = -0.5 * Float(mean)
            expected.append(target - c.publicCopy[i])
        }
        #expect(out == expected)
    }

    @Test func dissensusPushesAwayFromTheNeighbours() throws {
        let c = Self.context()
        let out = try Self.published("dissensus:2").update
        let published = zip(out, c.publicCopy).map { $0 + $1 }
        for i in 0..<4 {
            let x = Double(c.model[i])
            let pull = 0.25 * (Double(c.neighbours[0].copy[i]) - x) + 0.25 * (Double(c.neighbours[1].copy[i]) - x)
            #expect(out[i] == Float(x - 2 * pull) - c.publicCopy[i])
            // On the far side of x from where consensus pulls it.
            #expect(pull == 0 || (Double(published[i]) - x) * pull < 0, "coordinate \(i)")
        }
    }

    @Test func staleKeepsPublishingTheFirstModel() throws {
        let (first, transform) = try Self.published("stale", round: 1)
        #expect(first == Self.honestUpdate, "round 1 is honest")
        // Later rounds: whatever the model has become, the published model is round 1's.
        var later = transform
        let c = PublishContext(round: 5, model: [9, 9, 9, 9], publicCopy: [0.5, 0.5, 0.5, 0.5], neighbours: [])
        var u = zip(c.model, c.publicCopy).map { $0 - $1 }
        u.withUnsafeMutableBufferPointer { later.transform(update: $0, context: c) }
        #expect(zip(u, c.publicCopy).map { $0 + $1 } == Self.context().model)
    }

    @Test func sampleLieAndLabelFlipAreNotTransforms() throws {
        #expect(try Attack(parsing: "sample-lie:5").transform(seed: 0, colluders: [], peers: 3) == nil)
        #expect(try Attack(parsing: "label-flip").transform(seed: 0, colluders: [], peers: 3) == nil)
    }

    // MARK: Over the real protocol

    /// x ← x + 1 per round: with small whole numbers every step of the protocol is exact.
    struct Step: LocalLearner {
        var sampleCount = 10
        mutating func train(_ parameters: inout [Float], round: Int) -> Double {
            for i in parameters.indices { parameters[i] += 1 }
            return 0
        }
    }

    /// Two real instances on a full mesh, peer 1 with `attack`; the simulator after the run.
    static func pair(_ attack: Attack?, rounds: Int = 6) throws -> (Simulator<Step>, [PeerID]) {
        var plan = try topology("torus-16.toml").plan
        plan.rounds = rounds
        plan.consensusRounds = 0  // the torus plan's final 20 consensus-only rounds do not fit a short run
        let network = try generated("full", peers: 2, plan: plan)
        let ids = network.peers.map(\.id)
        let keys = ids.map { Experiment.simulationKey(seed: 1, peer: $0) }
        var peers: [SimulatedPeer<Step>] = []
        for (i, id) in ids.enumerated() {
            let settings = try Experiment.gossipSettings(
                topology: network, plan: plan, planHash: PlanHash.hash(plan), peer: id, keys: { p in keys[ids.firstIndex(of: p)!].publicKey }
            )
            let transform = i == 1 ? attack?.transform(seed: 1, colluders: [id], peers: 2) : nil
            peers.append(SimulatedPeer(settings: settings, key: keys[i], learner: Step(), initialParameters: [0, 2, 4, 8], publishTransform: transform))
        }
        let simulator = Simulator(peers: peers, seed: 1)
        #expect(simulator.run().finished)
        return (simulator, ids)
    }

    /// Over the real protocol: `stale` keeps publishing its round-1 model (x₀ + 1) through six
    /// rounds, and its honest neighbour accepted every envelope — it holds exactly that copy.
    @Test func staleKeepsPublishingItsFirstModelOverTheProtocol() throws {
        let (stale, ids) = try Self.pair(try Attack(parsing: "stale"))
        #expect(stale.instance(ids[1])!.publicCopy == [1, 3, 5, 9])
        #expect(stale.instance(ids[0])!.neighbourStates[ids[1]]!.copy == [1, 3, 5, 9])
        #expect(stale.instance(ids[1])!.parameters != [1, 3, 5, 9], "its own model moved on")
        let (honest, _) = try Self.pair(nil)
        #expect(honest.instance(ids[1])!.publicCopy != [1, 3, 5, 9])
    }

    /// Over the real protocol: `sign-flip`'s first envelope moves its copy by −u (x₀ − 1), and
    /// `scale:3`'s by 3u; the honest neighbour holds what was published.
    @Test func signFlipAndScaleOverTheProtocol() throws {
        // One round: the published copy after round 1 is x₀ + K·(x₁ − x₀), x₁ − x₀ = 1.
        for (text, expected) in [("sign-flip", [Float](arrayLiteral: -1, 1, 3, 7)), ("scale:3", [3, 5, 7, 11])] {
            let (simulator, ids) = try Self.pair(try Attack(parsing: text), rounds: 1)
            #expect(simulator.instance(ids[1])!.publicCopy == expected, "\(text)")
            #expect(simulator.instance(ids[0])!.neighbourStates[ids[1]]!.copy == expected, "\(text)")
        }
    }

    static func torusOptions(rounds: Int, byzantine: [String]) throws -> SimulationOptions {
        let network = try topology("torus-16.toml")
        var plan = network.plan
        plan.rounds = rounds
        plan.consensusRounds = 0  // the torus plan's final 20 consensus-only rounds do not fit a short run
        let table = try CSV.read(path: dataDirectory + "/wdbc.csv")
        let data = try Partitioner.partition(
            table: table, plan: plan, spec: .iid, count: 16, filters: [], testFilters: [],
            split: dataDirectory + "/splits/wdbc_seed{seed}.json", seed: plan.seed
        )
        var options = SimulationOptions(topology: network, data: data)
        options.plan = plan
        options.byzantine = try byzantine.map { text throws(ExperimentError) in try ByzantinePeer(parsing: text) }
        return options
    }

    /// `absent`, the reference for the attacks: its neighbours never hear from it (no count, no
    /// copy), it still hears them, and the run finishes.
    @Test func anAbsentPeerIsNeverHeard() throws {
        let summary = try Experiment.simulate(Self.torusOptions(rounds: 3, byzantine: ["peer-03:absent"]))
        let absent = PeerID("peer-03")!
        let neighbours = try topology("torus-16.toml").neighbours(of: absent)
        for n in neighbours { #expect(summary.advertisedSamples[n]?[absent] == nil, "\(n) heard the absent peer") }
        #expect(summary.advertisedSamples[absent]?.count == neighbours.count)
        #expect(summary.outcome.finished)
        #expect(summary.honestPeers.count == 15)
    }

    /// sample-lie's envelopes carry N (and are accepted: its neighbours' pins say N too); every
    /// other peer's count is still its rows'.
    @Test func sampleLieAdvertisesNInEveryEnvelope() throws {
        let summary = try Experiment.simulate(Self.torusOptions(rounds: 3, byzantine: ["peer-03:sample-lie:100000"]))
        let liar = PeerID("peer-03")!
        let network = try topology("torus-16.toml")
        let neighbours = network.neighbours(of: liar)
        #expect(neighbours.count == 4)
        for n in neighbours { #expect(summary.advertisedSamples[n]?[liar] == 100_000, "\(n) heard \(String(describing: summary.advertisedSamples[n]?[liar]))") }
        let honest = try Experiment.simulate(Self.torusOptions(rounds: 3, byzantine: []))
        let other = PeerID("peer-05")!  // not a neighbour of peer-03
        #expect(summary.advertisedSamples[other] == honest.advertisedSamples[other])
        #expect(summary.advertisedSamples[neighbours[0]]?[liar] != honest.advertisedSamples[neighbours[0]]?[liar])
        #expect(summary.outcome.finished && summary.outcome.disconnects.isEmpty, "the consistent lie is accepted: \(summary.outcome.disconnects)")
        // Its statistics declare N rows too: the pooled standardization leans to its means.
        #expect(summary.standardization != honest.standardization)
    }

    /// Attackers are reported apart: honestPeers leaves them out, and the papers' table's
    /// decentralized rows are the honest peers' mean and worst.
    @Test func evaluationRowsAreOverHonestPeersOnly() throws {
        let attacks = ["peer-03:sign-flip", "peer-10:sign-flip"]
        let options = try Self.torusOptions(rounds: 30, byzantine: attacks)
        let summary = try Experiment.simulate(options)
        let attackers = [PeerID("peer-03")!, PeerID("peer-10")!]
        #expect(summary.honestPeers.count == 14 && Set(summary.honestPeers).isDisjoint(with: attackers))
        let honestAccuracy = summary.honestPeers.map { summary.test[$0]!.classification!.accuracy }
        let allAccuracy = summary.peers.map { summary.test[$0]!.classification!.accuracy }
        let honestMean = honestAccuracy.reduce(0, +) / 14
        #expect(honestMean != allAccuracy.reduce(0, +) / 16, "the attackers' models differ from the honest ones")

        let network = try topology("torus-16.toml")
        var evaluation = EvaluationOptions(
            topology: network, dataPath: dataDirectory + "/wdbc.csv", partition: .iid
        )
        evaluation.plan = options.plan
        evaluation.split = dataDirectory + "/splits/wdbc_seed{seed}.json"
        evaluation.seeds = [options.plan.seed]
        evaluation.byzantine = options.byzantine
        let table = try EvaluationTable.run(evaluation)
        #expect(table.byzantine == attacks && table.record().byzantine == attacks)
        let decentralized = try #require(table.rows.first { $0.setting == "decentralized" })
        let worst = try #require(table.rows.first { $0.setting == "decentralized-worst" })
        #expect(abs(decentralized.values[0]["accuracy"]! - honestMean) < 1e-12)
        #expect(worst.values[0]["accuracy"]! == honestAccuracy.min()!)
        #expect(table.text().contains("honest peers' mean") && table.attackersLine!.contains("peer-03:sign-flip, peer-10:sign-flip"))
    }

    /// A Byzantine majority, the anchor SCClip is measured against (11 of 16, peer-00 … peer-10
    /// on the torus, `sign-flip`; README "Attacks"): under `clipped` alone the attackers set the
    /// radius of peer-11, three of whose four neighbours they are, and its accuracy collapses;
    /// with `clip_anchor = 2` the radius is bounded by its own local step and every honest peer
    /// keeps at least 0.85.
    @Test func anchoredClippingHoldsAByzantineMajority() throws {
        let plan = try topology("torus-16.toml").plan
        func worstHonest(anchor: Double) throws -> Double {
            var options = try Self.torusOptions(rounds: plan.rounds, byzantine: (0...10).map { "peer-\($0 < 10 ? "0" : "")\($0):sign-flip" })
            options.plan.consensusRounds = plan.consensusRounds
            options.plan.aggregation = .clipped
            options.plan.clipAnchor = anchor
            let summary = try Experiment.simulate(options)
            #expect(summary.honestPeers.count == 5)
            return summary.honestPeers.map { summary.test[$0]!.classification!.accuracy }.min()!
        }
        let median = try worstHonest(anchor: 0)
        let anchored = try worstHonest(anchor: 2)
        #expect(median < 0.5, "\(median)")
        #expect(anchored >= 0.85, "\(anchored)")
    }

    @Test func attacksThatDoNotApplyAreRefused() throws {
        // ALIE's formula needs s = ⌊n/2 + 1⌋ − f ≥ 1: 9 attackers of 16 are too many.
        let many: [String] = (0..<9).map { (i: Int) -> String in "peer-0" + String(i) + ":alie" }
        #expect(throws: ExperimentError.self) { try Experiment.simulate(Self.torusOptions(rounds: 1, byzantine: many)) }
        do {
            _ = try Experiment.simulate(Self.torusOptions(rounds: 1, byzantine: many))
        } catch {
            #expect("\(error)".contains("needs s ≥ 1: at most half the 16 peers attacking, not 9"), "\(error)")
        }
    }

    @Test func labelFlipInvertsTheTargets() throws {
        let rows = Dataset(featureNames: ["a", "b"], features: [1, 2, 3, 4, 5, 6], labels: [0, 1, 1])
        let flipped = rows.withTargetsInverted()
        #expect(flipped.labels == [1, 0, 0] && flipped.features == rows.features && flipped.sourceRows == rows.sourceRows)
        let survival = Dataset(featureNames: ["a"], features: [1, 2, 3], times: [5, 9, 1], events: [1, 0, 1])
        let inverted = survival.withTargetsInverted()
        #expect(inverted.events == survival.events.map { 1 - $0 } && inverted.times == survival.times && inverted.features == survival.features)
        // Over the protocol: the attacker's model differs from the clean run's, and repeats bit for bit.
        let attacked = try Experiment.simulate(Self.torusOptions(rounds: 5, byzantine: ["peer-05:label-flip"]))
        let again = try Experiment.simulate(Self.torusOptions(rounds: 5, byzantine: ["peer-05:label-flip"]))
        let clean = try Experiment.simulate(Self.torusOptions(rounds: 5, byzantine: []))
        let p = PeerID("peer-05")!
        #expect(attacked.finalParameters[p]!.map(\.bitPattern) == again.finalParameters[p]!.map(\.bitPattern))
        #expect(attacked.finalParameters[p]! != clean.finalParameters[p]!)
    }
}

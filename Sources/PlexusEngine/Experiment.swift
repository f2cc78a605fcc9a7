import Foundation
import PlexusCodec
public import PlexusCore
public import PlexusCrypto
public import PlexusGossip
public import PlexusLearning
import PlexusPrivacy
import PlexusLog
public import PlexusSimulator
public import PlexusTopology

/// One decentralized run in the simulator: a topology, its plan, and a dataset cut into sites.
public struct SimulationOptions {
    public var topology: Topology
    /// The plan to run; defaults to the topology's (a different plan gets a different hash).
    public var plan: Plan
    public var data: PartitionedData
    public var links = LinkConditions()
    public var partitions: [Partition] = []
    /// Seeds the network (loss, jitter) and the peers' mini-batch streams. Default: the plan's seed.
    public var seed: UInt64
    /// Where to write `<peer>.jsonl` convergence logs; `nil` writes none.
    public var logDirectory: String?
    /// Evaluate every this many rounds (and always the last). Default: 1.
    public var evaluateEvery = 1
    /// Fraction of each site's rows held out for its own validation metrics. Default: 0 (none).
    public var holdout = 0.0
    /// Add a rounds' wall-clock `time` to log lines (off for byte-identical logs in tests). Default: true.
    public var wallClockInLogs = true
    /// The attack simulator's Byzantine peers (``Attack``); the rest are honest. Default: none.
    public var byzantine: [ByzantinePeer] = []

    public init(topology: Topology, data: PartitionedData) {
        self.topology = topology
        self.plan = topology.plan
        self.data = data
        self.seed = topology.plan.seed
    }
}

/// What a simulation run produced.
public struct SimulationSummary: Sendable {
    public var peers: [PeerID]
    /// Each peer's final model, evaluated on the common test set (if any).
    public var test: [PeerID: Evaluation]
    public var finalParameters: [PeerID: [Float]]
    public var standardization: Standardization
    public var outcome: SimulationOutcome
    /// Wall-clock seconds for the whole run, and per round.
    public var seconds: Double
    public var secondsPerRound: Double
    /// Envelope bytes sent by all peers over the whole run.
    public var bytesSent: Int
    /// The Byzantine peers and their attacks (empty in an honest run).
    public var attackers: [PeerID: Attack] = [:]
    /// At the end of the run, the sample count each peer last heard each neighbour advertise
    /// (peer → neighbour → count).
    public var advertisedSamples: [PeerID: [PeerID: Int]] = [:]

    /// The peers that ran the protocol honestly, in id order.
    public var honestPeers: [PeerID] { peers.filter { attackers[$0] == nil } }
}

public struct ExperimentError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum Experiment {
    /// Assigns sites to the topology's peers: by name when every peer id names a site (a
    /// `column:` partition), otherwise in order.
    public static func assignSites(_ data: PartitionedData, to topology: Topology) throws(ExperimentError) -> [PeerID: Int] {
        let ids = topology.peers.map(\.id)
        if ids.allSatisfy({ data.siteNames.contains($0.rawValue) }) {
            return Dictionary(uniqueKeysWithValues: ids.map { ($0, data.siteNames.firstIndex(of: $0.rawValue)!) })
        }
        guard data.sites.count == ids.count else {
            throw ExperimentError(
                "the partition has \(data.sites.count) sites (\(data.siteNames.joined(separator: ", "))) but the topology has \(ids.count) peers (\(ids.map(\.rawValue).joined(separator: ", "))); peer ids must name the sites, or the counts must match"
            )
        }
        return Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
    }

    /// The pooled standardization of the peers' training rows: in a federation, one round of
    /// summed statistics (count, mean, sum of squared deviations per covariate), merged in
    /// peer-id order — exactly what real nodes compute from each other's signed statistics.
    public static func pooledStandardization(_ sites: [PeerID: Dataset]) -> Standardization {
        guard let first = sites.values.first else { return Standardization.identity(dimension: 0) }
        return Standardization(FeatureStatistics.pooled(sites.mapValues(FeatureStatistics.init), dimension: first.dimension))
    }

    /// What a site sends in the statistics round under `plan`: its exact statistics, or — when
    /// `[plan.privacy.bounds]` is declared — their Gaussian release (``ReleasedStatistics``),
    /// with noise from `noise` (the system CSPRNG on a node; ``statisticsNoiseLabel(plan:peer:)``
    /// in the simulator and under the test flag).
    public static func siteSummary(_ site: Dataset, plan: Plan, noise: PlanLearner.Noise) throws(ExperimentError) -> SiteSummary {
        guard let privacy = plan.privacy, privacy.releasesStatistics else { return SiteSummary(site, plan: plan) }
        let bounds: [Plan.FeatureBound]
        switch privacy.bounds(for: site.featureNames) {
        case .success(let b): bounds = b
        case .failure(let problem): throw ExperimentError(problem.description)
        }
        let release: ReleasedStatistics
        switch noise {
        case .system:
            var generator = SystemNoiseGenerator()
            release = ReleasedStatistics(releasing: site, bounds: bounds, noiseMultiplier: privacy.statisticsNoiseMultiplier, generator: &generator)
        case .deterministic(let label):
            var generator = DeterministicNoiseGenerator(label: label)
            release = ReleasedStatistics(releasing: site, bounds: bounds, noiseMultiplier: privacy.statisticsNoiseMultiplier, generator: &generator)
        }
        return SiteSummary(features: site.featureNames, targets: plan.targetColumns, release: release)
    }

    /// The label of a peer's deterministic statistics-release noise (the simulator's, and a real
    /// node's under `--deterministic-noise`); another stream than its training noise.
    public static func statisticsNoiseLabel(plan: Plan, peer: PeerID) -> String {
        "plexus.dp.statistics.v1|\(plan.seed)|\(peer.rawValue)"
    }

    /// The one standardization every site trains with, from every site's summary: each site
    /// pooled with the count the sample basis uses (its means as signed, its sums rescaled), the
    /// sites merged in peer-id order — the same bits on every node and in the simulator. Under
    /// `[plan.privacy.bounds]` every site must send a release, and the pooled release is
    /// post-processed with the bounds; otherwise every site must send exact statistics.
    public static func pooledStandardization(_ summaries: [PeerID: SiteSummary], counts: SampleBasis, plan: Plan) throws(ExperimentError) -> Standardization {
        guard let first = summaries.keys.sorted().first.map({ summaries[$0]! }) else { throw ExperimentError("no site sent statistics") }
        let dimension = first.features.count
        if let privacy = plan.privacy, privacy.releasesStatistics {
            let bounds: [Plan.FeatureBound]
            switch privacy.bounds(for: first.features) {
            case .success(let b): bounds = b
            case .failure(let problem): throw ExperimentError(problem.description)
            }
            var sites: [PeerID: ReleasedStatistics] = [:]
            for (origin, summary) in summaries {
                guard var release = summary.release else {
                    throw ExperimentError("site '\(origin)' sent exact statistics; the plan releases them privately ([plan.privacy.bounds])")
                }
                if let used = counts.counts[origin], Double(used) != release.count { release = release.declaring(count: used) }
                sites[origin] = release
            }
            return ReleasedStatistics.pooled(sites, dimension: dimension).standardization(bounds: bounds)
        }
        var sites: [PeerID: FeatureStatistics] = [:]
        for (origin, summary) in summaries {
            guard summary.release == nil else {
                throw ExperimentError("site '\(origin)' sent privately released statistics; the plan declares no [plan.privacy.bounds]")
            }
            var statistics = summary.statistics
            if let used = counts.counts[origin], Double(used) != statistics.count { statistics = statistics.declaring(count: used) }
            sites[origin] = statistics
        }
        let merged = FeatureStatistics.pooled(sites, dimension: dimension)
        guard merged.mean.allSatisfy(\.isFinite), merged.sumOfSquaredDeviations.allSatisfy(\.isFinite) else {
            throw ExperimentError("the pooled statistics are not finite; a site sent implausible statistics")
        }
        return Standardization(merged)
    }

    /// A private plan's model of one site's rows alone (`evaluate`'s isolated rows) or of every
    /// site's rows pooled (its centralized row), under the same mechanism and the same ε as a
    /// peer of the network: the statistics release of `raw` (when the plan declares bounds), then
    /// the plan's DP-SGD steps round by round ((rounds − consensus_rounds) × local_steps, the
    /// same q, C and σ) — what the peer would do with no neighbours. Noise from ChaCha20 streams
    /// keyed by the plan's seed and `label`, as in the simulator.
    public static func fitPrivately(_ raw: Dataset, plan: Plan, label: String) throws(ExperimentError) -> TrainedModel {
        guard plan.privacy != nil else { throw ExperimentError("fitPrivately needs a plan with [plan.privacy]") }
        let site = PeerID("site")!
        let summary = try siteSummary(raw, plan: plan, noise: .deterministic(label: "plexus.dp.statistics.v1|\(plan.seed)|fit|\(label)"))
        let basis = SampleBasis(declared: [site: raw.count], pins: [:], ratio: plan.maxSampleRatio, graph: [site: []])
        let standardization = try pooledStandardization([site: summary], counts: basis, plan: plan)
        let data = standardization.applied(to: raw)
        let model = makeModel(plan: plan, dimension: data.dimension)
        var learner = try learner(model: model, plan: plan, data: data, peerIndex: 0, noise: .deterministic(label: "plexus.dp.noise.v1|\(plan.seed)|fit|\(label)"))
        var parameters = initialParameters(model: model, plan: plan)
        for round in 1...max(1, plan.rounds) { _ = learner.train(&parameters, round: round) }
        return TrainedModel(model: model, parameters: parameters, standardization: standardization)
    }

    /// The shared starting point x₀ of every peer: the plan's seeded initialisation.
    /// The learner a peer runs, the same in both shells: its mini-batch stream is the plan's
    /// seed offset by the peer's index in the topology.
    public static func learner(
        model: any Model, plan: Plan, data: Dataset, peerIndex index: Int, advertisedSampleCount: Int? = nil, noise: PlanLearner.Noise
    ) throws(ExperimentError) -> PlanLearner {
        do {
            return try PlanLearner(
                model: model, plan: plan, data: data, seed: plan.seed &+ UInt64(index) &* 0x9E37_79B9,
                advertisedSampleCount: advertisedSampleCount, noise: noise)
        } catch {
            throw ExperimentError("[plan.privacy]: \(error)")
        }
    }

    /// The label of a peer's deterministic privacy noise stream (the simulator's, and a real
    /// node's under `--deterministic-noise`): the plan's seed and the peer, so no two peers or
    /// seeds share a stream.
    public static func noiseLabel(plan: Plan, peer: PeerID) -> String {
        "plexus.dp.noise.v1|\(plan.seed)|\(peer.rawValue)"
    }

    public static func initialParameters(model: any Model, plan: Plan) -> [Float] {
        var generator = Xoshiro256(seed: plan.seed, stream: "init")
        return model.initialParameters(using: &generator)
    }

    /// A throwaway signing key for a simulated peer, derived from the seed and its id.
    public static func simulationKey(seed: UInt64, peer: PeerID) -> Ed25519.PrivateKey {
        var hasher = BLAKE2b()
        hasher.update("plexus-simulation-key")
        hasher.update(withUnsafeBytes(of: seed.littleEndian) { Array($0) })
        hasher.update(peer.rawValue)
        let digest = hasher.finalize()
        return try! Ed25519.PrivateKey(rawRepresentation: digest.withUnsafeBytes { SecureBytes(copying: $0) })
    }

    /// The gossip settings of `peer` in `topology`.
    public static func gossipSettings(topology: Topology, plan: Plan, planHash: [UInt8], peer: PeerID, keys: (PeerID) -> Ed25519.PublicKey) throws(ExperimentError) -> GossipSettings {
        let codec: CodecSpec
        do { codec = try CodecSpec(parsing: plan.codec) } catch { throw ExperimentError("plan codec: \(error)") }
        guard plan.consensusRounds >= 0, plan.consensusRounds < plan.rounds else {
            throw ExperimentError("plan consensus_rounds (\(plan.consensusRounds)) must be from 0 to rounds − 1 (\(plan.rounds - 1)): at least one round trains")
        }
        let weights = topology.mixingWeights(for: peer)
        var settings = GossipSettings(
            me: peer, planHash: planHash, codec: codec, rounds: plan.rounds,
            neighbours: Dictionary(uniqueKeysWithValues: weights.neighbours.map { ($0.key, Neighbour(publicKey: keys($0.key), weight: $0.value)) })
        )
        settings.consensusStep = plan.consensusStep
        settings.consensusRounds = plan.consensusRounds
        settings.clipAnchor = plan.clipAnchor
        settings.aggregation = plan.aggregation
        settings.synchrony = plan.synchrony
        settings.roundDeadline = .milliseconds(plan.roundDeadlineMilliseconds)
        settings.maxStaleness = plan.maxStaleness
        settings.mixing = plan.mixing
        return settings
    }

    /// The bounded sample counts of `topology` (its pins and graph) and `plan` (its
    /// `max_sample_ratio`) for the sites' signed counts `declared`: nodes and the simulator
    /// compute it the same way, so both ends of every link weigh it alike.
    public static func sampleBasis(topology: Topology, plan: Plan, declared: [PeerID: Int]) -> SampleBasis {
        var pins: [PeerID: SamplePin] = [:]
        var graph: [PeerID: Set<PeerID>] = [:]
        for peer in topology.peers {
            if let pin = peer.samples { pins[peer.id] = pin }
            graph[peer.id] = Set(topology.neighbours(of: peer.id))
        }
        return SampleBasis(declared: declared, pins: pins, ratio: plan.maxSampleRatio, graph: graph)
    }

    /// Runs the decentralized protocol in the simulator and evaluates every peer's model.
    public static func simulate(_ options: SimulationOptions) throws(ExperimentError) -> SimulationSummary {
        let plan = options.plan
        let topology = options.topology
        let siteOf = try assignSites(options.data, to: topology)
        let peerIDs = topology.peers.map(\.id)
        guard let dimension = options.data.sites.first?.dimension else { throw ExperimentError("the partition has no sites") }
        // What each site sends in the statistics round (a release under [plan.privacy.bounds]).
        var summaries: [PeerID: SiteSummary] = [:]
        for peer in peerIDs {
            summaries[peer] = try siteSummary(options.data.sites[siteOf[peer]!], plan: plan, noise: .deterministic(label: statisticsNoiseLabel(plan: plan, peer: peer)))
        }
        for case let (peer, .sampleLie(n)) in options.byzantine.map({ ($0.peer, $0.attack) }) {
            var summary = summaries[peer]!
            if let release = summary.release {
                summary = SiteSummary(features: summary.features, targets: summary.targets, release: release.declaring(count: n))
            } else {
                summary.statistics = summary.statistics.declaring(count: n)
            }
            summaries[peer] = summary
        }
        // Pooled with the bounded counts, as nodes pool their statistics round.
        let bounded = sampleBasis(topology: topology, plan: plan, declared: summaries.mapValues { Int($0.statistics.count) })
        let standardization = try pooledStandardization(summaries, counts: bounded, plan: plan)
        let model = makeModel(plan: plan, dimension: dimension)
        let x0 = initialParameters(model: model, plan: plan)
        let planHash = PlanHash.hash(plan)
        let keys = Dictionary(uniqueKeysWithValues: peerIDs.map { ($0, simulationKey(seed: options.seed, peer: $0)) })
        try ByzantinePeer.validate(options.byzantine, peers: peerIDs)
        let attackers = Dictionary(uniqueKeysWithValues: options.byzantine.map { ($0.peer, $0.attack) })
        try checkAttacks(attackers, topology: topology, plan: plan)

        // Each site's rows, standardized; an optional holdout for its own validation metrics.
        var training: [PeerID: Dataset] = [:]
        var validation: [PeerID: Dataset] = [:]
        for (index, peer) in peerIDs.enumerated() {
            let site = standardization.applied(to: options.data.sites[siteOf[peer]!])
            if options.holdout > 0 && site.count >= 10 {
                var rng = Xoshiro256(seed: options.seed &+ UInt64(index), stream: "holdout")
                var order = Array(0..<site.count)
                rng.shuffle(&order)
                let cut = Int((Double(site.count) * options.holdout).rounded())
                validation[peer] = site.subset(order[0..<cut].sorted())
                training[peer] = site.subset(order[cut...].sorted())
            } else {
                training[peer] = site
            }
        }
        for case let (peer, .labelFlip) in options.byzantine.map({ ($0.peer, $0.attack) }) {
            training[peer] = training[peer]!.withTargetsInverted()
        }
        let test = options.data.test.map { standardization.applied(to: $0) }

        // Every site's count as its statistics would sign it (the simulator has no statistics
        // round; the counts are the same), a sample liar's as it would sign it.
        var declared = training.mapValues(\.count)
        for case let (peer, .sampleLie(n)) in attackers.map({ ($0.key, $0.value) }) { declared[peer] = n }
        let basis = sampleBasis(topology: topology, plan: plan, declared: declared)
        var peers: [SimulatedPeer<PlanLearner>] = []
        let colluders = Set(attackers.keys)
        for (index, peer) in peerIDs.enumerated() {
            var settings = try gossipSettings(topology: topology, plan: plan, planHash: planHash, peer: peer, keys: { keys[$0]!.publicKey })
            settings.sampleBasis = basis
            var advertised: Int?
            if case .sampleLie(let n) = attackers[peer] { advertised = n }
            // A liar's neighbours pin the count its signed statistics declare: N, consistently.
            for (neighbour, attack) in attackers where settings.neighbours[neighbour] != nil {
                if case .sampleLie(let n) = attack { settings.neighbours[neighbour]!.declaredSamples = n }
            }
            let learner = try Self.learner(
                model: model, plan: plan, data: training[peer]!, peerIndex: index, advertisedSampleCount: advertised,
                noise: .deterministic(label: Self.noiseLabel(plan: plan, peer: peer))
            )
            let transform = attackers[peer]?.transform(
                seed: options.seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15), colluders: colluders, peers: peerIDs.count
            )
            peers.append(SimulatedPeer(
                settings: settings, key: keys[peer]!, learner: learner, initialParameters: x0, publishTransform: transform,
                silent: attackers[peer] == .absent
            ))
        }
        let simulator = Simulator(peers: peers, links: options.links, partitions: options.partitions, seed: options.seed)

        var writers: [PeerID: ConvergenceLogWriter] = [:]
        // The learners were built, so a target ε was reachable.
        let privacy = plan.privacy == nil ? nil : try? PlanPrivacy(plan: plan)
        if let directory = options.logDirectory {
            for peer in peerIDs {
                let header = ConvergenceLog.header(
                    peer: peer, network: topology.networkName, planHash: PlanHash.hex(planHash), model: plan.model.rawValue,
                    codec: plan.codec, parameters: x0.count, samples: training[peer]!.count, rounds: plan.rounds
                )
                do {
                    writers[peer] = try ConvergenceLogWriter(directory: directory, peer: peer, header: header)
                } catch {
                    throw ExperimentError(error.description)
                }
            }
        }
        let wallClock = options.wallClockInLogs
        func now() -> Double { wallClock ? Date().timeIntervalSince1970 : 0 }
        var bytesSent = 0
        var rounds: [PeerID: Int] = [:]
        let started = ContinuousClock.now
        let outcome = simulator.run(
            report: { report, virtualTime in
                bytesSent += report.bytesSent
                rounds[report.peer] = report.round
                guard let writer = writers[report.peer] else { return }
                var testMetrics: [(String, Double)] = []
                var validationMetrics: [(String, Double)] = []
                if report.round % options.evaluateEvery == 0 || report.round == plan.rounds {
                    if let test { testMetrics = metricPairs(Evaluation(model: model, parameters: report.parameters, data: test)) }
                    if let v = validation[report.peer] { validationMetrics = metricPairs(Evaluation(model: model, parameters: report.parameters, data: v)) }
                }
                var shown = report
                if !wallClock { shown.trainSeconds = 0; shown.encodeSeconds = 0; shown.applySeconds = 0 }
                writer.write(ConvergenceLog.round(
                    shown, time: now(), virtualTime: seconds(virtualTime), validation: validationMetrics, test: testMetrics,
                    privacy: privacy.map { .init(epsilon: $0.epsilon(afterRound: report.round), delta: $0.privacy.delta) }
                ))
            },
            event: { peer, event, virtualTime in
                writers[peer]?.write(ConvergenceLog.event(event, peer: peer, round: rounds[peer] ?? 0, time: now(), virtualTime: seconds(virtualTime)))
            }
        )
        let elapsed = seconds(ContinuousClock.now - started)
        var evaluations: [PeerID: Evaluation] = [:]
        if let test {
            for peer in peerIDs { evaluations[peer] = Evaluation(model: model, parameters: outcome.parameters[peer]!, data: test) }
        }
        var summary = SimulationSummary(
            peers: peerIDs, test: evaluations, finalParameters: outcome.parameters, standardization: standardization,
            outcome: outcome, seconds: elapsed, secondsPerRound: elapsed / Double(max(plan.rounds, 1)), bytesSent: bytesSent
        )
        summary.attackers = attackers
        for peer in peerIDs {
            summary.advertisedSamples[peer] = simulator.instance(peer)?.neighbourStates.compactMapValues(\.sampleCount) ?? [:]
        }
        return summary
    }

    /// Refuses attacks that do not apply to this network or plan, naming why.
    static func checkAttacks(_ attackers: [PeerID: Attack], topology: Topology, plan: Plan) throws(ExperimentError) {
        for (peer, attack) in attackers.sorted(by: { $0.key < $1.key }) {
            let honestNeighbours = topology.neighbours(of: peer).filter { attackers[$0] == nil }
            switch attack {
            case .alie:
                guard Attack.alieZ(peers: topology.peers.count, attackers: attackers.count) != nil else {
                    throw ExperimentError(
                        "'\(peer.rawValue):alie': ALIE's z = Φ⁻¹((n − s) ÷ n), s = ⌊n ÷ 2 + 1⌋ − f, needs s ≥ 1: at most half the \(topology.peers.count) peers attacking, not \(attackers.count)"
                    )
                }
                fallthrough
            case .ipm, .dissensus:
                guard !honestNeighbours.isEmpty else {
                    throw ExperimentError("'\(peer.rawValue):\(attack)' computes from its honest neighbours' models, and every neighbour of '\(peer.rawValue)' is an attacker")
                }
            default:
                break
            }
        }
    }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

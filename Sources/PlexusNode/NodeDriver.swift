import Foundation
import Logging
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusEngine
import PlexusGossip
import PlexusLearning
import PlexusLog
import PlexusPrivacy
import PlexusTopology
import PlexusTransport
import ServiceLifecycle
import UnixSignals

/// The network shell around the gossip instance: it feeds mesh events and deadlines to the
/// instance and carries out what it returns — sends (one ordered queue per neighbour), logs,
/// state files, the final model.
actor NodeDriver: Service {
    let node: PeerNode
    let mesh: PeerMesh
    private var instance: GossipInstance<PlanLearner>
    private var topology: Topology
    private var outbound: [PeerID: AsyncStream<[UInt8]>.Continuation] = [:]
    private var senders: [PeerID: _Concurrency.Task<Void, Never>] = [:]
    private let log: ConvergenceLogWriter?
    private let statePath: String?
    private var finished = false
    private(set) var failure: NodeError?
    private var lastTopologyStamp: (Int, Int)?

    // The statistics round (a state machine of PlexusGossip): every site's signed schema and
    // statistics, flooded over the topology, before the first round.
    private var statisticsRound: StatisticsRound
    private let summary: SiteSummary
    private let statisticsPath: String?
    /// The node-local key that authenticates the state file (`<state-dir>/<peer>.statekey`).
    private var stateKey: SecureBytes?
    private var standardization: Standardization?
    /// Each site's sample count from its signed statistics, once the round completed.
    private var declaredSamples: [PeerID: Int] = [:]
    /// The counts the last sample basis changed (to warn once per change).
    private var sampleAdjustments: [SampleBasis.Adjustment] = []
    private var restoredSnapshot: GossipInstance<PlanLearner>.Snapshot?
    /// Operator warnings about refused messages: at most one per neighbour and reason per interval.
    private var warningLimiter = RateLimiter(interval: .seconds(10))
    /// The topology-file fingerprint each neighbour last announced; since when it differs from
    /// ours, and whether that was reported (see ``compareTopology(of:)``).
    private var neighbourTopology: [PeerID: (fingerprint: [UInt8], differentSince: Duration?, warned: Bool)] = [:]
    /// How long a neighbour's file may differ before it is a warning: an edit distributed to
    /// every site reaches them all within a second or two (each polls its file every second).
    static let topologyMismatchGrace: Duration = .seconds(10)
    private var round: Int { instance.round }
    /// Each neighbour's session as `plexus status` shows it.
    private struct Link {
        var up = false
        var since: Date?
        var lastHandshake: Date?
        var bytesSent = 0
        var bytesReceived = 0
    }
    private var links: [PeerID: Link] = [:]
    private let startedAt = Date()

    let metrics: NodeMetrics
    /// `[plan.privacy]` resolved (σ, ε per round), nil without one.
    private var privacy: PlanPrivacy?
    /// This peer's identity key: `--key` at start, the rotated one after a reload that re-keys it.
    private var key: Ed25519.PrivateKey
    /// How long a neighbour that exceeded its budget of rejected messages in a round is refused.
    static let disconnectBackoff: Duration = .seconds(30)

    init(node: PeerNode, mesh: PeerMesh, metrics: NodeMetrics) throws(NodeError) {
        self.node = node
        self.mesh = mesh
        self.metrics = metrics
        self.topology = node.topology
        self.key = node.key
        let me = node.configuration.peer
        let index = node.topology.index(of: me)!
        var settings: GossipSettings
        do {
            settings = try Experiment.gossipSettings(
                topology: node.topology, plan: node.plan, planHash: node.planHash, peer: me,
                keys: { node.topology.peer($0)!.publicKey }
            )
        } catch { throw NodeError(error.description) }
        // The statistics round brings every signed count before training starts.
        settings.countsArriveBeforeStart = true
        // The same learner, seed and starting point as the simulator gives this peer.
        let noise: PlanLearner.Noise = node.configuration.deterministicNoise
            ? .deterministic(label: Experiment.noiseLabel(plan: node.plan, peer: me)) : .system
        let learner: PlanLearner
        do {
            learner = try Experiment.learner(model: node.model, plan: node.plan, data: node.site, peerIndex: index, noise: noise)
        } catch { throw NodeError(error.description) }
        privacy = node.plan.privacy == nil ? nil : try? PlanPrivacy(plan: node.plan)
        if let privacy { node.logger.notice("Differential privacy: \(privacy.summary)") }
        if node.plan.privacy != nil && node.configuration.deterministicNoise {
            node.logger.warning("--deterministic-noise: privacy noise is derived from the plan's seed, which every peer knows; this run is NOT private (a test flag)")
        }
        instance = GossipInstance(
            settings: settings, key: node.key, learner: learner,
            initialParameters: Experiment.initialParameters(model: node.model, plan: node.plan),
            clock: { ContinuousClock.now - NodeClock.epoch }
        )
        if let directory = node.configuration.logDirectory {
            let header = ConvergenceLog.header(
                peer: me, network: node.topology.networkName, planHash: PlanHash.hex(node.planHash),
                model: node.plan.model.rawValue, codec: node.plan.codec, parameters: node.model.layout.count, samples: node.site.count,
                rounds: node.plan.rounds
            )
            do { log = try ConvergenceLogWriter(directory: directory, peer: me, header: header) } catch { throw NodeError(error.description) }
        } else {
            log = nil
        }
        summary = try Self.siteSummary(node)
        var roundSettings = StatisticsRound.Settings(
            me: me, planHash: node.planHash, peers: Self.pinnedKeys(node.topology),
            neighbours: node.topology.neighbours(of: me)
        )
        roundSettings.timeout = node.configuration.statisticsTimeout
        let releases = node.plan.privacy?.releasesStatistics ?? false
        statisticsRound = StatisticsRound(settings: roundSettings, key: node.key, payload: summary.encoded()) { _, payload in
            do throws(SiteSummary.Error) {
                let summary = try SiteSummary(decoding: payload)
                if releases && summary.release == nil {
                    return (.unsupportedVersion, "exact statistics (version 1) under a plan that releases them privately ([plan.privacy.bounds])")
                }
                if !releases && summary.release != nil {
                    return (.unsupportedVersion, "privately released statistics (version 2) under a plan without [plan.privacy.bounds]")
                }
                return nil
            } catch {
                return (error.reason, error.description)
            }
        }
        if let directory = node.configuration.stateDirectory {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw NodeError("\(directory): cannot create the state directory: \(String(cString: strerror(errno)))")
            }
            statePath = directory + "/" + me.rawValue + ".state"
            statisticsPath = directory + "/" + me.rawValue + ".statistics"
            do {
                // Files without a MAC are an upgrade's only while there was no state key before.
                let upgrading = try StateFile.stateKey(directory: directory, peer: me, create: false) == nil
                stateKey = try StateFile.stateKey(directory: directory, peer: me, create: true)
                if let bytes = try StateFile.read(statePath!) {
                    let key = stateKey, planHash = node.planHash, count = node.model.layout.count
                    restoredSnapshot = try Self.naming(statePath!) {
                        try StateFile.decode(bytes, planHash: planHash, parameterCount: count, key: key, acceptChecksum: upgrading, as: PlanLearner.self)
                    }
                    // An upgrade: the version-1 file is rewritten authenticated now, so the next
                    // start (which has the key) does not take it for a downgrade.
                    if bytes[4] == 1, let snapshot = restoredSnapshot, let stateKey {
                        try StateFile.writeAtomically(StateFile.encode(snapshot, planHash: node.planHash, key: stateKey), to: statePath!)
                    }
                }
                if let bytes = try StateFile.read(statisticsPath!) {
                    let saved: CompletedStatistics
                    do { saved = try CompletedStatistics(decoding: bytes, planHash: node.planHash, key: stateKey, acceptChecksum: upgrading) } catch {
                        throw NodeError("\(statisticsPath!): \(error.description); delete it to run the statistics round again")
                    }
                    declaredSamples = Self.declaredSamples(saved.basis)
                    let counts = Experiment.sampleBasis(topology: node.topology, plan: node.plan, declared: declaredSamples)
                    standardization = try Self.pooled(saved.basis, mine: summary, me: me, counts: counts, plan: node.plan)
                    statisticsRound.restoreCompleted(basis: saved.basis, messages: saved.messages)
                    if bytes[4] == 1, let stateKey {
                        try StateFile.writeAtomically(saved.encoded(planHash: node.planHash, key: stateKey), to: statisticsPath!)
                    }
                }
            } catch let error as NodeError {
                throw error
            } catch { throw NodeError("\(error)") }
        } else {
            statePath = nil
            statisticsPath = nil
        }
    }

    /// What this site sends in the statistics round. Under `[plan.privacy.bounds]` it is a
    /// Gaussian release, made once per plan: it is written (authenticated) to
    /// `<state-dir>/<peer>.release` before anything is sent, and a restart sends the same bytes —
    /// a second release, with fresh noise, would spend the budget again and, if the rows changed,
    /// give away the difference. So a private release needs a state directory, and it refuses
    /// rows that differ from the ones released.
    static func siteSummary(_ node: PeerNode) throws(NodeError) -> SiteSummary {
        let plan = node.plan, me = node.configuration.peer
        guard let privacy = plan.privacy, privacy.releasesStatistics else { return SiteSummary(node.site, plan: plan) }
        guard let directory = node.configuration.stateDirectory else {
            throw NodeError("[plan.privacy.bounds]: a private statistics release needs --state-dir, where it is kept so that a restart does not release it twice")
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw NodeError("\(directory): cannot create the state directory: \(String(cString: strerror(errno)))")
        }
        let path = directory + "/" + me.rawValue + ".release"
        do {
            guard let key = try StateFile.stateKey(directory: directory, peer: me, create: true) else { throw NodeError("\(directory): no state key") }
            if let bytes = try StateFile.read(path) {
                let saved: SiteSummary
                do {
                    let file = try CompletedStatistics(decoding: bytes, planHash: node.planHash, key: key, acceptChecksum: false)
                    guard let payload = file.basis[me] else { throw NodeError("\(path): holds no release of '\(me)'") }
                    saved = try SiteSummary(decoding: payload)
                } catch let error as NodeError { throw error } catch {
                    throw NodeError("\(path): \(error); it is this site's released statistics: restore it, or delete the whole state directory to start the run again (a new release spends budget again)")
                }
                guard saved.release != nil, saved.features == node.site.featureNames, saved.targets == plan.targetColumns,
                      saved.statistics.count == Double(node.site.count)
                else {
                    throw NodeError("\(path): the statistics this site released were of \(Int(saved.statistics.count)) rows and \(saved.features.count) features; the data now has \(node.site.count) rows and \(node.site.featureNames.count) features. Releasing again would give away the difference: run on the rows released, or start a new run with a new plan (a new seed) and a new state directory")
                }
                node.logger.info("Statistics already released in an earlier run; sending the same release", metadata: ["release": "\(path)"])
                return saved
            }
            let noise: PlanLearner.Noise = node.configuration.deterministicNoise
                ? .deterministic(label: Experiment.statisticsNoiseLabel(plan: plan, peer: me)) : .system
            let summary: SiteSummary
            do { summary = try Experiment.siteSummary(node.site, plan: plan, noise: noise) } catch { throw NodeError(error.description) }
            try StateFile.writeAtomically(CompletedStatistics(basis: [me: summary.encoded()], messages: [:]).encoded(planHash: node.planHash, key: key), to: path)
            node.logger.notice("Statistics released with the Gaussian mechanism (noise multiplier \(privacy.statisticsNoiseMultiplier), declared feature bounds)", metadata: ["release": "\(path)"])
            return summary
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError("\(path): \(error)")
        }
    }

    static func pinnedKeys(_ topology: Topology) -> [PeerID: Ed25519.PublicKey] {
        Dictionary(uniqueKeysWithValues: topology.peers.map { ($0.id, $0.publicKey) })
    }

    /// The pooled standardization of the basis (merged in peer-id order: the same bits on every
    /// peer and in the simulator), after checking that every site resolved this site's schema.
    /// Runs `body`; a failure becomes a configuration error naming `path` (every state-file error
    /// says which file).
    static func naming<T>(_ path: String, _ body: () throws -> T) throws(NodeError) -> T {
        do { return try body() } catch let error as NodeError { throw error } catch {
            let text = "\(error)"
            throw NodeError(text.hasPrefix(path) ? text : "\(path): \(text)")
        }
    }

    /// Each site's sample count as its signed statistics declare it (payloads that do not decode
    /// were refused by the round already).
    static func declaredSamples(_ payloads: [PeerID: [UInt8]]) -> [PeerID: Int] {
        payloads.compactMapValues { payload in (try? SiteSummary(decoding: payload)).map { Int($0.statistics.count) } }
    }

    /// The neighbours of `topology` with their mixing weights and, once known, declared counts.
    private func neighbours(_ topology: Topology) -> [PeerID: Neighbour] {
        node.neighbours(topology).reduce(into: [:]) { out, entry in
            var neighbour = entry.value
            neighbour.declaredSamples = declaredSamples[entry.key]
            out[entry.key] = neighbour
        }
    }

    /// A site whose count the sample basis changed (a pin or the bound) is pooled with the count
    /// used — its mean as signed, its sum of squared deviations rescaled to keep its variance —
    /// so that a lie about the count buys no more in the standardization than in the weights.
    static func pooled(_ payloads: [PeerID: [UInt8]], mine: SiteSummary, me: PeerID, counts: SampleBasis, plan: Plan) throws(NodeError) -> Standardization {
        var sites: [PeerID: SiteSummary] = [:]
        var mismatches: [String] = []
        for origin in payloads.keys.sorted() {
            let summary: SiteSummary
            do { summary = try SiteSummary(decoding: payloads[origin]!) } catch {
                throw NodeError("statistics of '\(origin)': \(error.description)")
            }
            if let difference = mine.schemaDifference(from: summary) {
                mismatches.append("site '\(origin)' \(difference)")
                continue
            }
            sites[origin] = summary
        }
        guard mismatches.isEmpty else {
            throw NodeError("schema mismatch with this site ('\(me)', \(mine.features.count) features): \(mismatches.joined(separator: "; ")); every site's export must have the plan's columns, by name")
        }
        do { return try Experiment.pooledStandardization(sites, counts: counts, plan: plan) } catch { throw NodeError(error.description) }
    }

    // MARK: Service

    func run() async throws {
        let me = node.configuration.peer
        if let snapshot = restoredSnapshot {
            do { try instance.restore(snapshot) } catch { throw NodeError("\(statePath ?? "state file"): \(error)") }
            node.logger.info("Resuming from the state file", metadata: ["round": "\(snapshot.round)", "state": "\(statePath ?? "")"])
            // Peer scoring's state came back with it: a quarantine made before the restart holds.
            for neighbour in instance.scoring.quarantined.sorted() {
                metrics.setQuarantined(neighbour: neighbour, true, counted: false)
                node.logger.warning("A neighbour quarantined before the restart stays quarantined", metadata: ["neighbour": "\(neighbour)"])
            }
        }
        for peer in topology.neighbours(of: me) { openQueue(to: peer) }
        node.logger.info("Node starting", metadata: [
            "peer": "\(me)", "neighbours": "\(topology.neighbours(of: me).map(\.rawValue).joined(separator: ","))", "round": "\(round)",
            "topology.fingerprint": "\(topology.fingerprintHex)", "plan": "\(PlanHash.hex(node.planHash).prefix(16))",
            "version": "\(PlexusVersion.current)",
        ])
        if let snapshot = restoredSnapshot, snapshot.round > node.plan.rounds {
            node.logger.notice("This node already finished its plan (\(node.plan.rounds) rounds); the final model is \(node.modelPath)")
            metrics.finished()
            if standardization == nil { return }
        }
        if let standardization {
            // The statistics round completed in an earlier run: train on at once.
            startTraining(standardization)
        } else {
            carryOut(statisticsRound.start(now: elapsed()))
        }
        let stop = self.stop
        await withTaskCancellationOrGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.watchTopology() }
                group.addTask { for await event in self.mesh.events { await self.handle(event) } }
                group.addTask { for await _ in stop.stream {} }
                group.addTask { await self.statisticsTicker() }
                // Whichever ends first — the stop signal, or the mesh — ends the node.
                await group.next()
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: {
            stop.continuation.finish()
        }
        persist()
        for (_, continuation) in outbound { continuation.finish() }
        for (_, task) in senders { await task.value }
    }

    /// Finished by the linger timer after the last round, or by a graceful shutdown.
    private let stop = AsyncStream<Void>.makeStream()
    private var stopScheduled = false

    // MARK: Events

    private func handle(_ event: MeshEvent) async {
        switch event {
        case .sessionOpened(let peer):
            metrics.sessionOpened()
            let opened = Date()
            links[peer, default: Link()].up = true
            links[peer]!.since = opened
            links[peer]!.lastHandshake = opened
            log?.write(ConvergenceLog.session("session_opened", peer: node.configuration.peer, other: peer.rawValue, reason: nil, round: round, time: now()))
            // Every new session: the statistics round's blobs, then a keyframe.
            carryOut(statisticsRound.sessionOpened(with: peer, now: elapsed()))
            carryOut(instance.sessionOpened(with: peer))
        case .sessionClosed(let peer, let reason, _):
            metrics.sessionClosed()
            links[peer, default: Link()].up = false
            links[peer]!.since = Date()
            log?.write(ConvergenceLog.session("session_closed", peer: node.configuration.peer, other: peer.rawValue, reason: reason.rawValue, round: round, time: now()))
        case .refused(let peer, let reason, _):
            metrics.handshakeFailed(reason)
            log?.write(ConvergenceLog.session("refused", peer: node.configuration.peer, other: peer ?? "?", reason: reason.rawValue, round: round, time: now()))
        case .topologyAnnounced(let peer, let fingerprint):
            let previous = neighbourTopology[peer]
            if previous?.fingerprint != fingerprint {
                // Another file: a difference is timed (and reported) afresh.
                neighbourTopology[peer] = (fingerprint, nil, previous?.warned ?? false)
            }
            compareTopology(of: peer)
        case .message(let peer, let bytes):
            links[peer, default: Link()].bytesReceived += bytes.count
            if let type = bytes.first, (StatisticsRound.statisticsType...StatisticsRound.basisType).contains(type) {
                carryOut(statisticsRound.receive(bytes, from: peer, now: elapsed()))
            } else {
                carryOut(instance.receive(bytes, from: peer))
            }
        }
    }

    /// The statistics round's timer: re-requests, warnings naming the missing peers, its deadline;
    /// also reports topology files that stayed different. It runs until the node stops (returning earlier would end the node's task group).
    private func statisticsTicker() async {
        while !_Concurrency.Task.isCancelled {
            try? await _Concurrency.Task.sleep(for: .seconds(1))
            // After completion it only resets the per-interval budgets (and answers nothing).
            carryOut(statisticsRound.tick(now: elapsed()))
            reportTopologyMismatches()
        }
    }

    private func carryOut(_ directives: [StatisticsRound.Directive]) {
        let me = node.configuration.peer
        for directive in directives {
            switch directive {
            case .send(let peer, let bytes):
                enqueue(bytes, to: peer)
            case .rejected(let from, let reason, let message):
                log?.write(ConvergenceLog.event(.rejected(from: from, reason: reason, message: message), peer: me, round: round, time: now()))
                metrics.rejected(reason)
                warnRejected(from: from, reason: reason, message: message)
            case .waiting(let missing, let elapsed):
                node.logger.warning(
                    "Waiting for the statistics of \(missing.count) peer\(missing.count == 1 ? "" : "s") before training",
                    metadata: ["missing": "\(missing.map(\.rawValue).joined(separator: ","))", "waited": "\(elapsed)", "timeout": "\(node.configuration.statisticsTimeout)"]
                )
                log?.write(ConvergenceLog.session("statistics_waiting", peer: me, other: missing.map(\.rawValue).joined(separator: ","), reason: nil, round: round, time: now()))
            case .timedOut(let missing):
                fail(NodeError(
                    "the statistics round did not complete within \(node.configuration.statisticsTimeout): no statistics from \(missing.map { "'\($0)'" }.joined(separator: ", ")) (not started, unreachable, or silent)",
                    kind: .transient
                ))
            case .disconnect(let peer, let reason):
                disconnect(peer, reason: reason)
            case .basisConflict(let a, let b, let origins):
                fail(NodeError("'\(a)' and '\(b)' train with different pooled standardizations (they differ on the statistics of \(origins.map { "'\($0)'" }.joined(separator: ", "))): a site signed two different statistics, or the network was restarted with other sites"))
            case .completed(let payloads):
                do {
                    declaredSamples = Self.declaredSamples(payloads)
                    let counts = Experiment.sampleBasis(topology: topology, plan: node.plan, declared: declaredSamples)
                    let pooled = try Self.pooled(payloads, mine: summary, me: me, counts: counts, plan: node.plan)
                    persistStatistics()
                    node.logger.info("Pooled statistics complete; training", metadata: ["sites": "\(payloads.count)"])
                    startTraining(pooled)
                } catch {
                    fail(error)
                }
            }
        }
    }

    /// Closes `peer`'s session and refuses it for ``disconnectBackoff``; it comes back with a
    /// keyframe on its next session, like any reconnecting peer.
    private func disconnect(_ peer: PeerID, reason: Reason) {
        let backoff = NodeDriver.disconnectBackoff
        node.logger.warning("Neighbour exceeded its budget of rejected messages; disconnected", metadata: ["peer": "\(peer)", "reason": "\(reason)", "backoff": "\(backoff)"])
        log?.write(ConvergenceLog.session("disconnected", peer: node.configuration.peer, other: peer.rawValue, reason: reason.rawValue, round: round, time: now()))
        let mesh = self.mesh
        _Concurrency.Task { await mesh.disconnect(peer, reason: reason, backoff: backoff) }
    }

    private func persistStatistics() {
        guard let statisticsPath, let completed = statisticsRound.completed else { return }
        do {
            try StateFile.writeAtomically(completed.encoded(planHash: node.planHash, key: stateKey), to: statisticsPath)
        } catch {
            node.logger.error("Cannot persist the statistics", metadata: ["error": "\(error)"])
        }
    }

    /// Standardize this site's rows with the network's pooled standardization and start (or resume).
    private func startTraining(_ pooled: Standardization) {
        standardization = pooled
        // From now on every neighbour's envelopes must advertise the count it signed, and the
        // weights use the bounded counts.
        updateSampleBasis()
        carryOut(instance.updateNeighbours(neighbours(topology)))
        let data = pooled.applied(to: node.site)
        instance.withLearner { $0.data = data }
        metrics.trainingStarted()
        carryOut(restoredSnapshot != nil ? instance.resume() : instance.start())
    }

    /// What `plexus status` shows, now.
    func status() -> NodeStatus {
        let me = node.configuration.peer
        let phase = finished || round > node.plan.rounds ? "finished" : statisticsRound.isComplete ? "training" : "statistics"
        let expected = topology.peers.count
        let neighbours = topology.neighbours(of: me).map { peer -> NodeStatus.Neighbour in
            let link = links[peer] ?? Link()
            let state = instance.neighbourStates[peer]
            let current = min(round, node.plan.rounds)
            let staleness = statisticsRound.isComplete && current >= 1 ? max(0, current - (state?.deliveredRound ?? 0)) : nil
            return NodeStatus.Neighbour(
                id: peer.rawValue, sessionUp: link.up, since: link.since?.timeIntervalSince1970, lastHandshake: link.lastHandshake?.timeIntervalSince1970,
                bytesSent: link.bytesSent, bytesReceived: link.bytesReceived, staleness: staleness,
                sameTopology: neighbourTopology[peer].map { $0.fingerprint == topology.fingerprint ?? [] },
                quarantined: instance.scoring.isQuarantined(peer)
            )
        }
        return NodeStatus(
            peer: me.rawValue, network: topology.networkName, version: PlexusVersion.current, topologyFingerprint: topology.fingerprintHex,
            planHash: String(PlanHash.hex(node.planHash).prefix(16)), phase: phase, round: min(round, node.plan.rounds), planRounds: node.plan.rounds,
            statisticsReceived: statisticsRound.isComplete ? expected : expected - statisticsRound.missing.count, statisticsExpected: expected,
            uptimeSeconds: Date().timeIntervalSince(startedAt), neighbours: neighbours
        )
    }

    /// Gives the instance the bounded counts of the running topology (once every site's signed
    /// count is known), and warns about every count that was changed — once per change, since
    /// the basis only changes at the statistics round and at reloads.
    private func updateSampleBasis() {
        guard !declaredSamples.isEmpty else { return }
        let basis = Experiment.sampleBasis(topology: topology, plan: node.plan, declared: declaredSamples)
        instance.updateSampleBasis(basis)
        guard basis.adjustments != sampleAdjustments else { return }
        sampleAdjustments = basis.adjustments
        for adjustment in basis.adjustments {
            let why: String
            switch adjustment.cause {
            case .pin(let pin):
                why = "the topology file pins \(pin.description)"
            case .bound(let ratio, let median):
                why = "max_sample_ratio = \(ratio) × the median count \(median)"
            }
            let message = adjustment.contradictsPin
                ? "'\(adjustment.peer)' signed \(adjustment.declared) samples, which contradicts \(why); the mixing weights count \(adjustment.used)"
                : "the mixing weights count '\(adjustment.peer)' as \(adjustment.used) samples, not the \(adjustment.declared) it signed: \(why)"
            node.logger.warning(
                "Sample count bounded",
                metadata: ["peer": "\(adjustment.peer)", "signed": "\(adjustment.declared)", "used": "\(adjustment.used)", "why": "\(why)"]
            )
            log?.write(ConvergenceLog.session("sample_count_bounded", peer: node.configuration.peer, other: adjustment.peer.rawValue, reason: message, round: round, time: now()))
        }
    }

    /// Stops the node with `error` (its exit code tells an init system whether to restart).
    private func fail(_ error: NodeError) {
        guard failure == nil else { return }
        failure = error
        // `plexus run` prints it as its one error line; the convergence log keeps it too.
        log?.write(ConvergenceLog.session("failed", peer: node.configuration.peer, other: "", reason: error.description, round: round, time: now()))
        stop.continuation.finish()
    }

    private func warnRejected(from peer: PeerID, reason: Reason, message: String) {
        // A joining peer (round 0) hears deltas of its neighbours' later rounds before it adopts
        // their round: expected, counted and logged in the convergence log, not a warning.
        if reason == .tooFarAhead && round == 0 { return }
        guard let suppressed = warningLimiter.admit("\(peer)/\(reason)", now: elapsed()) else { return }
        var metadata: Logger.Metadata = ["from": "\(peer)", "reason": "\(reason)", "detail": "\(message)"]
        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
        node.logger.warning("Dropped a message", metadata: metadata)
    }

    private func elapsed() -> Duration { ContinuousClock.now - NodeClock.epoch }

    private func deadline(_ round: Int) {
        carryOut(instance.deadlinePassed(round: round))
    }

    // MARK: Directives

    private func carryOut(_ directives: [GossipDirective]) {
        // A round's log line is written after the state file that covers it (the `.persist` that
        // follows it), so a `kill -9` in between never leaves a line for a round the restarted
        // node will run — and log — again.
        var roundLines: [LogRecord] = []
        func writeRoundLines() {
            for line in roundLines { log?.write(line) }
            roundLines.removeAll()
        }
        for directive in directives {
            switch directive {
            case .persist(let snapshot):
                persist(snapshot)
                writeRoundLines()
            case .disconnect(let peer, let reason):
                disconnect(peer, reason: reason)
            case .roundCompleted(let report):
                var test: [(String, Double)] = []
                if let testSet = node.test, let standardization {
                    test = metricPairs(Evaluation(model: node.model, parameters: report.parameters, data: standardization.applied(to: testSet)))
                }
                roundLines.append(ConvergenceLog.round(
                    report, time: now(), test: test,
                    privacy: privacy.map { .init(epsilon: $0.epsilon(afterRound: report.round), delta: $0.privacy.delta) }))
                // The budget is spent with the last training round: from here the node only
                // mixes and sends (post-processing), and it says so once.
                if let privacy, report.round == node.plan.rounds - node.plan.consensusRounds {
                    node.logger.notice(
                        "Privacy budget spent: no more local training; the node keeps mixing and sending\(node.plan.consensusRounds > 0 ? " for the \(node.plan.consensusRounds) consensus rounds" : "")",
                        metadata: ["epsilon": "\(privacy.epsilon(afterRound: report.round))", "delta": "\(privacy.privacy.delta)", "round": "\(report.round)"]
                    )
                }
                // A progress line for the operator about every tenth of the run.
                let every = max(1, node.plan.rounds / 10)
                if report.round % every == 0 || report.round == node.plan.rounds {
                    var metadata: Logger.Metadata = [
                        "round": "\(report.round)/\(node.plan.rounds)", "loss": "\(report.trainingLoss)",
                        "consensus_distance": "\(report.consensusDistance)",
                    ]
                    if let first = test.first { metadata["test.\(first.0)"] = "\(first.1)" }
                    node.logger.info("Round completed", metadata: metadata)
                }
                metrics.roundCompleted(
                    NodeMetrics.RoundValues(
                        round: report.round, trainingLoss: report.trainingLoss, consensusDistance: report.consensusDistance,
                        bytesSent: report.bytesSent, bytesReceived: report.bytesReceived, rejected: report.rejected,
                        staleness: report.staleness, validation: test.first.map { (name: $0.0, value: $0.1) },
                        privacyEpsilon: privacy?.epsilon(afterRound: report.round)
                    ),
                    unixTime: now()
                )
            case .event(let event):
                log?.write(ConvergenceLog.event(event, peer: node.configuration.peer, round: round, time: now()))
                switch event {
                case .rejected(let from, let reason, let message):
                    warnRejected(from: from, reason: reason, message: message)
                case .quarantined(let neighbour, let why):
                    metrics.setQuarantined(neighbour: neighbour, true)
                    if let suppressed = warningLimiter.admit("quarantined/\(neighbour)", now: elapsed()) {
                        var metadata: Logger.Metadata = [
                            "neighbour": "\(neighbour)", "round": "\(round)", "cause": "\(why.cause)", "why": "\(why)",
                        ]
                        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
                        node.logger.warning("Quarantined a neighbour: its copy gets weight 0 until it behaves; its messages are still verified and counted", metadata: metadata)
                    }
                case .released(let neighbour):
                    metrics.setQuarantined(neighbour: neighbour, false)
                    if let suppressed = warningLimiter.admit("released/\(neighbour)", now: elapsed()) {
                        var metadata: Logger.Metadata = ["neighbour": "\(neighbour)", "round": "\(round)"]
                        if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
                        node.logger.warning("Released a quarantined neighbour after rounds of good behaviour; it is mixed in again", metadata: metadata)
                    }
                case .awaitingFirstSession(let neighbour):
                    node.logger.warning("New neighbour has not connected yet; rounds go on without it until its first session", metadata: ["neighbour": "\(neighbour)"])
                case .deadlineMissed(let missedRound, let missing):
                    metrics.deadlineMissed(missing: missing)
                    if let suppressed = warningLimiter.admit("deadline", now: elapsed()) {
                        var metadata: Logger.Metadata = ["round": "\(missedRound)", "missing": "\(missing.map(\.rawValue).joined(separator: ","))", "deadline": "\(node.plan.roundDeadlineMilliseconds) ms"]
                        if suppressed > 0 { metadata["rounds_missed_since_last_warning"] = "\(suppressed)" }
                        node.logger.warning("Round completed at its deadline without these neighbours' deltas (down, unreachable or slow)", metadata: metadata)
                    }
                default:
                    break
                }
            case .finished:
                finished = true
                metrics.finished()
                saveModel()
                if !node.configuration.forever && !stopScheduled {
                    stopScheduled = true
                    let (linger, stop) = (node.configuration.linger, self.stop)
                    _Concurrency.Task {
                        try? await _Concurrency.Task.sleep(for: linger)
                        stop.continuation.finish()
                    }
                }
            case .evidence(let neighbour, let envelopes):
                saveEvidence(envelopes, of: neighbour)
            case .send, .scheduleDeadline:
                break
            }
        }
        writeRoundLines()
        // `.persist` directives were carried out above, before any send below: whatever a
        // neighbour ever receives is covered by a state file.
        for directive in directives {
            switch directive {
            case .send(let peer, let bytes):
                enqueue(bytes, to: peer)
            case .scheduleDeadline(let round, let after):
                _Concurrency.Task { [weak self] in
                    try? await _Concurrency.Task.sleep(for: after)
                    await self?.deadline(round)
                }
            default:
                break
            }
        }
    }

    private func persist(_ snapshot: GossipSnapshot? = nil) {
        guard let statePath else { return }
        do {
            guard let stateKey else { return }
            try StateFile.writeAtomically(StateFile.encode(snapshot ?? instance.snapshot(), planHash: node.planHash, key: stateKey), to: statePath)
        } catch {
            node.logger.error("Cannot persist the state", metadata: ["error": "\(error)"])
        }
    }

    /// Keeps the signed envelopes of a quarantined neighbour as evidence, beside the state:
    /// `<state-dir>/<peer>.evidence/<neighbour>/<round>-<sequence>.envelope` (directories 0700, files
    /// 0600, like the state), at most ``PeerScoring/Settings/evidenceCount`` files and
    /// ``PeerScoring/Settings/evidenceBytes`` bytes per neighbour — the oldest go first, the
    /// newest is always kept. Each file is one envelope exactly as received: it verifies with
    /// the neighbour's pinned key (``EnvelopeVerifier``). Without a state directory nothing is kept.
    private func saveEvidence(_ envelopes: [EvidenceEnvelope], of neighbour: PeerID) {
        guard let stateDirectory = node.configuration.stateDirectory else { return }
        let root = stateDirectory + "/" + node.configuration.peer.rawValue + ".evidence"
        let directory = root + "/" + neighbour.rawValue
        for path in [root, directory] where mkdir(path, 0o700) != 0 && errno != EEXIST {
            node.logger.error("Cannot create the evidence directory", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
            return
        }
        func padded(_ value: some BinaryInteger, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var written = 0
        for envelope in envelopes {
            let path = directory + "/" + padded(envelope.round, 10) + "-" + padded(envelope.sequence, 20) + ".envelope"
            do {
                try StateFile.writeAtomically(envelope.bytes, to: path)
                written += 1
            } catch {
                node.logger.error("Cannot write evidence", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        // Bounded: the names sort oldest first.
        let limits = instance.settings.scoring
        var files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".envelope") }.sorted()
        var sizes = files.map { ((try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0))?[.size] as? Int) ?? 0 }
        while files.count > 1 && (files.count > limits.evidenceCount || sizes.reduce(0, +) > limits.evidenceBytes) {
            unlink(directory + "/" + files.removeFirst())
            sizes.removeFirst()
        }
        node.logger.info("Evidence kept", metadata: ["neighbour": "\(neighbour)", "written": "\(written)", "kept": "\(files.count)", "directory": "\(directory)"])
    }

    private func saveModel() {
        guard let standardization else { return }
        let path = node.modelPath
        let trained = TrainedModel(model: node.model, parameters: instance.parameters, standardization: standardization)
        // The Breslow baseline of a survival model from this site's own rows: the baseline of its
        // stratum of the partial likelihood the network optimises (scope "site"); a pooled
        // baseline needs every site's risk-set sums (README, "Clinical results").
        let saved = SavedModel(
            trained: trained, plan: node.plan, featureNames: node.site.featureNames,
            baseline: SavedModel.breslow(trained, rawRows: node.site), baselineScope: "site", planHash: PlanHash.hex(node.planHash))
        let bytes = saved.encode(extraMetadata: ["plexus.peer": node.configuration.peer.rawValue, "plexus.rounds": String(node.plan.rounds)])
        do {
            try StateFile.writeAtomically(bytes, to: path)
            node.logger.info("Final model written", metadata: ["path": "\(path)"])
        } catch {
            node.logger.error("Cannot write the model", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Outbound queues: one per neighbour, so its messages leave in order.

    /// The most messages queued for one neighbour in the driver (the mesh's own queue behind
    /// it is bounded in bytes, ``MeshConfiguration/outboundHardLimit``). Messages wait here only
    /// while a session changes hands, so the bound is a guard, not a working limit: a round
    /// queues one delta and at most one keyframe per neighbour, the statistics round one blob
    /// per peer of the topology.
    var outboundQueueLimit: Int { max(256, 4 * topology.peers.count) }

    private func openQueue(to peer: PeerID) {
        guard outbound[peer] == nil else { return }
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(outboundQueueLimit))
        outbound[peer] = continuation
        let mesh = self.mesh
        senders[peer] = _Concurrency.Task {
            for await bytes in stream { _ = await mesh.send(bytes, to: peer) }
        }
    }

    private func closeQueue(to peer: PeerID) {
        outbound[peer]?.finish()
        // Cancelled, not drained: what was queued must not reach a later session.
        senders[peer]?.cancel()
        outbound[peer] = nil
        senders[peer] = nil
    }

    private func enqueue(_ bytes: [UInt8], to peer: PeerID) {
        links[peer, default: Link()].bytesSent += bytes.count
        guard case .dropped = outbound[peer]?.yield(bytes) else { return }
        // The queue is full: a message lost here would break the neighbour's chain of deltas, so
        // the session goes (the next one starts with a keyframe) and the queue starts empty.
        closeQueue(to: peer)
        openQueue(to: peer)
        if let suppressed = warningLimiter.admit("\(peer)/outboundOverflow", now: elapsed()) {
            node.logger.warning(
                "Outbound queue to a neighbour is full (\(outboundQueueLimit) messages); closing its session to resynchronize",
                metadata: ["peer": "\(peer)", "suppressed": "\(suppressed)"]
            )
        }
        log?.write(ConvergenceLog.session("disconnected", peer: node.configuration.peer, other: peer.rawValue, reason: Reason.outboundOverflow.rawValue, round: round, time: now()))
        let mesh = self.mesh
        _Concurrency.Task { await mesh.disconnect(peer, reason: .outboundOverflow, backoff: .seconds(1)) }
    }

    // MARK: Live topology reload

    private func watchTopology() async {
        lastTopologyStamp = stamp(node.configuration.topologyPath)
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [weak self] in
                for await _ in signals { await self?.reload(reason: "SIGHUP") }
            }
            group.addTask { [weak self] in
                while !_Concurrency.Task.isCancelled {
                    try? await _Concurrency.Task.sleep(for: self?.node.configuration.reloadInterval ?? .seconds(1))
                    await self?.reloadIfChanged()
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func stamp(_ path: String) -> (Int, Int)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec), Int(info.st_size))
    }

    private func reloadIfChanged() {
        let current = stamp(node.configuration.topologyPath)
        guard let current, current != lastTopologyStamp ?? (0, 0) else { return }
        lastTopologyStamp = current
        reload(reason: "file changed")
    }

    private func reload(reason: String) {
        let me = node.configuration.peer
        let updated: Topology
        do {
            updated = try Topology.load(path: node.configuration.topologyPath, spectralAnalysis: false)
        } catch {
            node.logger.warning("Topology reload rejected; keeping the running topology", metadata: ["reason": "\(reason)", "diagnostics": "\(error.description)"])
            log?.write(ConvergenceLog.session("reload_rejected", peer: me, other: "", reason: error.description, round: round, time: now()))
            return
        }
        guard updated.planHash == node.planHash else {
            node.logger.warning("Topology reload changes the plan; refused until restart", metadata: ["plan.running": "\(PlanHash.hex(node.planHash))", "plan.file": "\(PlanHash.hex(updated.planHash))"])
            log?.write(ConvergenceLog.session("reload_rejected", peer: me, other: "", reason: "plan changed", round: round, time: now()))
            return
        }
        guard let pinned = updated.peer(me)?.publicKey else {
            node.logger.warning("Topology reload removes this peer; refused", metadata: ["peer": "\(me)"])
            log?.write(ConvergenceLog.session("reload_rejected", peer: me, other: "", reason: "this peer is not in the file", round: round, time: now()))
            return
        }
        var rotated: Ed25519.PrivateKey?
        if pinned != key.publicKey {
            // This peer's key was rotated in the file: take the new key from --key (re-read now).
            let loaded: Ed25519.PrivateKey
            do { loaded = try KeyFile.read(from: node.configuration.keyPath).key } catch {
                node.logger.warning("Topology reload re-keys this peer, but its key file cannot be read; refused", metadata: ["key": "\(node.configuration.keyPath)", "error": "\(error.description)"])
                log?.write(ConvergenceLog.session("reload_rejected", peer: me, other: "", reason: "key file unreadable", round: round, time: now()))
                return
            }
            guard loaded.publicKey == pinned else {
                node.logger.warning(
                    "Topology reload pins a new key for this peer, but the key file holds another; refused until the new key is in place",
                    metadata: ["key": "\(node.configuration.keyPath)", "pinned": "\(pinned.base64)", "file": "\(loaded.publicKey.base64)"]
                )
                log?.write(ConvergenceLog.session("reload_rejected", peer: me, other: "", reason: "this peer's pinned key is not the one in its key file", round: round, time: now()))
                return
            }
            rotated = loaded
        }
        let diff = TopologyDiff(from: topology, to: updated)
        topology = updated
        metrics.topologyChanged(fingerprint: updated.fingerprintHex, neighbours: updated.neighbours(of: me))
        carryOut(statisticsRound.updatePeers(Self.pinnedKeys(updated), neighbours: updated.neighbours(of: me), now: elapsed()))
        let neighbours = self.neighbours(updated)
        for peer in outbound.keys where neighbours[peer] == nil { closeQueue(to: peer) }
        for peer in neighbours.keys { openQueue(to: peer) }
        updateSampleBasis()
        carryOut(instance.updateNeighbours(neighbours))
        let peers = node.meshPeers(updated)
        let mesh = self.mesh
        if let rotated {
            // Like WireGuard: sessions opened under the old key stay until they close; every
            // handshake, envelope and statistics blob from now on is signed with the new one.
            key = rotated
            carryOut(instance.updateKey(rotated))
            carryOut(statisticsRound.updateKey(rotated))
            node.logger.notice("This peer's key was rotated; signing with the new key", metadata: ["public_key": "\(rotated.publicKey.base64)"])
            _Concurrency.Task { await mesh.updateIdentity(rotated); await mesh.updatePeers(peers) }
        } else {
            _Concurrency.Task { await mesh.updatePeers(peers) }
        }
        if let fingerprint = updated.fingerprint {
            _Concurrency.Task { await mesh.updateTopologyFingerprint(fingerprint) }
        }
        for peer in Array(neighbourTopology.keys) {
            if neighbours[peer] == nil { neighbourTopology[peer] = nil } else { compareTopology(of: peer) }
        }
        // The consortium's record of who changed what: the diff, at notice level.
        node.logger.notice("Topology reloaded", metadata: [
            "reason": "\(reason)", "neighbours": "\(neighbours.keys.sorted().map(\.rawValue).joined(separator: ","))",
            "topology.fingerprint": "\(updated.fingerprintHex)", "diff": "\(diff.isEmpty ? "nothing a node acts on" : diff.description)",
        ])
        log?.write(ConvergenceLog.session("reloaded", peer: me, other: neighbours.keys.sorted().map(\.rawValue).joined(separator: ","), reason: diff.isEmpty ? reason : reason + ": " + diff.description, round: round, time: now()))
    }

    /// Compares a neighbour's announced topology-file fingerprint with ours, after an
    /// announcement or a reload of our own file. The metric follows at once; the log only when
    /// a difference outlasts ``topologyMismatchGrace`` (``reportTopologyMismatches()``, every
    /// second) — a warning naming both, never a refusal: the plan hash decides who may talk —
    /// and, after such a warning, when the files agree again (a notice).
    private func compareTopology(of peer: PeerID) {
        guard var entry = neighbourTopology[peer], let ours = topology.fingerprint else { return }
        let matches = entry.fingerprint == ours
        if matches {
            if entry.warned {
                node.logger.notice("Neighbour \(peer) now runs the same topology file", metadata: ["neighbour": "\(peer)", "topology.fingerprint": "\(topology.fingerprintHex)"])
                log?.write(ConvergenceLog.session("topology_match", peer: node.configuration.peer, other: peer.rawValue, reason: nil, round: round, time: now()))
            }
            entry.differentSince = nil
            entry.warned = false
        } else if entry.differentSince == nil {
            entry.differentSince = elapsed()
            entry.warned = false
        }
        neighbourTopology[peer] = entry
        metrics.setNeighbourTopologyMatch(neighbour: peer, matches: matches)
    }

    /// The differences that outlasted the grace period, reported once each.
    private func reportTopologyMismatches() {
        let now = elapsed()
        for peer in neighbourTopology.keys.sorted() {
            guard var entry = neighbourTopology[peer], let since = entry.differentSince, !entry.warned,
                now - since >= Self.topologyMismatchGrace
            else { continue }
            entry.warned = true
            neighbourTopology[peer] = entry
            let theirs = Topology.hex(entry.fingerprint)
            node.logger.warning(
                "Neighbour \(peer) runs a different topology file (fingerprint \(theirs), this node \(topology.fingerprintHex)); check that every site has the same file",
                metadata: ["neighbour": "\(peer)", "topology.fingerprint": "\(topology.fingerprintHex)", "neighbour.fingerprint": "\(theirs)"]
            )
            log?.write(ConvergenceLog.session("topology_mismatch", peer: node.configuration.peer, other: peer.rawValue, reason: "fingerprint \(theirs), ours \(topology.fingerprintHex)", round: round, time: self.now()))
        }
    }

    private func now() -> Double { Date().timeIntervalSince1970 }
}

enum NodeClock {
    static let epoch = ContinuousClock.now
}

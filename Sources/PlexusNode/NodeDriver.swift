import Foundation
import Logging
import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusEngine
import PlexusGossip
import PlexusLearning
import PlexusLog
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

    // The statistics round: every site's signed statistics, flooded over the topology.
    private let ownStatistics: [UInt8]
    private var statistics: [PeerID: FeatureStatistics] = [:]
    private var statisticsMessages: [PeerID: [UInt8]] = [:]
    private var standardization: Standardization?
    private var restoredSnapshot: GossipInstance<PlanLearner>.Snapshot?
    private var round: Int { instance.round }

    let metrics: NodeMetrics

    init(node: PeerNode, mesh: PeerMesh, metrics: NodeMetrics) throws(NodeError) {
        self.node = node
        self.mesh = mesh
        self.metrics = metrics
        self.topology = node.topology
        let me = node.configuration.peer
        let index = node.topology.index(of: me)!
        let settings: GossipSettings
        do {
            settings = try Experiment.gossipSettings(
                topology: node.topology, plan: node.plan, planHash: node.planHash, peer: me,
                keys: { node.topology.peer($0)!.publicKey }
            )
        } catch { throw NodeError(error.description) }
        // The same learner, seed and starting point as the simulator gives this peer.
        let learner = PlanLearner(model: node.model, plan: node.plan, data: node.site, seed: node.plan.seed &+ UInt64(index) &* 0x9E37_79B9)
        instance = GossipInstance(
            settings: settings, key: node.key, learner: learner,
            initialParameters: Experiment.initialParameters(model: node.model, plan: node.plan),
            clock: { ContinuousClock.now - NodeClock.epoch }
        )
        if let directory = node.configuration.logDirectory {
            let header = ConvergenceLog.header(
                peer: me, network: node.topology.networkName, planHash: PlanHash.hex(node.planHash),
                model: node.plan.model.rawValue, codec: node.plan.codec, parameters: node.model.layout.count, samples: node.site.count
            )
            do { log = try ConvergenceLogWriter(directory: directory, peer: me, header: header) } catch { throw NodeError(error.description) }
        } else {
            log = nil
        }
        let stats = FeatureStatistics(node.site)
        ownStatistics = StatisticsMessage(origin: me, statistics: stats).sealed(planHash: node.planHash, key: node.key)
        statistics[me] = stats
        statisticsMessages[me] = ownStatistics
        if let directory = node.configuration.stateDirectory {
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw NodeError("\(directory): cannot create the state directory: \(String(cString: strerror(errno)))")
            }
            statePath = directory + "/" + me.rawValue + ".state"
            do {
                if let bytes = try StateFile.read(statePath!) {
                    restoredSnapshot = try StateFile.decode(bytes, planHash: node.planHash, parameterCount: node.model.layout.count, as: PlanLearner.self)
                }
            } catch { throw NodeError(error.description) }
        } else {
            statePath = nil
        }
    }

    // MARK: Service

    func run() async throws {
        let me = node.configuration.peer
        if let snapshot = restoredSnapshot {
            instance.restore(snapshot)
            node.logger.info("Resuming from the state file", metadata: ["round": "\(snapshot.round)", "state": "\(statePath ?? "")"])
        }
        for peer in topology.neighbours(of: me) { openQueue(to: peer) }
        node.logger.info("Node starting", metadata: ["peer": "\(me)", "neighbours": "\(topology.neighbours(of: me).map(\.rawValue).joined(separator: ","))", "round": "\(round)"])
        checkStatisticsComplete()
        let stop = self.stop
        await withTaskCancellationOrGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.watchTopology() }
                group.addTask { for await event in self.mesh.events { await self.handle(event) } }
                group.addTask { for await _ in stop.stream {} }
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
            metrics.update { $0.openSessions += 1 }
            log?.write(ConvergenceLog.session("session_opened", peer: node.configuration.peer, other: peer.rawValue, reason: nil, round: round, time: now()))
            // Every new session: all the statistics known, then a keyframe.
            for (_, bytes) in statisticsMessages.sorted(by: { $0.key < $1.key }) { enqueue(bytes, to: peer) }
            carryOut(instance.sessionOpened(with: peer))
        case .sessionClosed(let peer, let reason, _):
            metrics.update { $0.openSessions = max(0, $0.openSessions - 1) }
            log?.write(ConvergenceLog.session("session_closed", peer: node.configuration.peer, other: peer.rawValue, reason: reason.rawValue, round: round, time: now()))
        case .refused(let peer, let reason, _):
            metrics.update { $0.handshakeFailures[reason.rawValue, default: 0] += 1 }
            log?.write(ConvergenceLog.session("refused", peer: node.configuration.peer, other: peer ?? "?", reason: reason.rawValue, round: round, time: now()))
        case .message(let peer, let bytes):
            if bytes.first == StatisticsMessage.type {
                receiveStatistics(bytes, from: peer)
            } else {
                carryOut(instance.receive(bytes, from: peer))
            }
        }
    }

    private func receiveStatistics(_ bytes: [UInt8], from peer: PeerID) {
        let message: StatisticsMessage
        do {
            message = try StatisticsMessage(
                verifying: bytes, planHash: node.planHash, dimension: node.site.dimension,
                publicKey: { [topology] in topology.peer($0)?.publicKey }
            )
        } catch {
            carryOut([.event(.rejected(from: peer, reason: error.reason, message: error.description))])
            return
        }
        guard statistics[message.origin] == nil else { return }
        statistics[message.origin] = message.statistics
        statisticsMessages[message.origin] = bytes
        // Flood: pass it on to every other neighbour.
        for neighbour in topology.neighbours(of: node.configuration.peer) where neighbour != peer {
            enqueue(bytes, to: neighbour)
        }
        checkStatisticsComplete()
    }

    /// Once every peer's statistics are in: standardize this site's rows and start (or resume).
    private func checkStatisticsComplete() {
        guard standardization == nil, topology.peers.allSatisfy({ statistics[$0.id] != nil }) else { return }
        let pooled = StatisticsMessage.pooled(statistics, dimension: node.site.dimension)
        standardization = pooled
        let data = pooled.applied(to: node.site)
        instance.withLearner { $0.data = data }
        node.logger.info("Pooled statistics complete; training", metadata: ["sites": "\(statistics.count)"])
        carryOut(restoredSnapshot != nil ? instance.resume() : instance.start())
    }

    private func deadline(_ round: Int) {
        carryOut(instance.deadlinePassed(round: round))
    }

    // MARK: Directives

    private func carryOut(_ directives: [GossipDirective]) {
        var completed = false
        for directive in directives {
            switch directive {
            case .roundCompleted(let report):
                completed = true
                var test: [(String, Double)] = []
                if let testSet = node.test, let standardization {
                    test = metricPairs(Evaluation(model: node.model, parameters: report.parameters, data: standardization.applied(to: testSet)))
                }
                log?.write(ConvergenceLog.round(report, time: now(), test: test))
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
                metrics.update { m in
                    m.round = report.round
                    m.loss = report.trainingLoss
                    m.consensusDistance = report.consensusDistance
                    m.bytesSent += report.bytesSent
                    m.bytesReceived += report.bytesReceived
                    for (reason, count) in report.rejected { m.rejected[reason, default: 0] += count }
                    if let first = test.first { m.metric = (first.0, first.1) }
                }
            case .event(let event):
                log?.write(ConvergenceLog.event(event, peer: node.configuration.peer, round: round, time: now()))
                if case .rejected(let from, let reason, _) = event {
                    node.logger.info("Dropped a message", metadata: ["from": "\(from)", "reason": "\(reason)"])
                }
            case .finished:
                finished = true
                metrics.update { $0.finished = true }
                saveModel()
                if !node.configuration.forever && !stopScheduled {
                    stopScheduled = true
                    let (linger, stop) = (node.configuration.linger, self.stop)
                    _Concurrency.Task {
                        try? await _Concurrency.Task.sleep(for: linger)
                        stop.continuation.finish()
                    }
                }
            case .send, .scheduleDeadline:
                break
            }
        }
        // The state is persisted at the end of every round, before that round's messages leave:
        // whatever a neighbour ever receives is covered by a state file.
        if completed { persist() }
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

    private func persist() {
        guard let statePath else { return }
        do {
            try StateFile.writeAtomically(StateFile.encode(instance.snapshot(), planHash: node.planHash), to: statePath)
        } catch {
            node.logger.error("Cannot persist the state", metadata: ["error": "\(error)"])
        }
    }

    private func saveModel() {
        guard let standardization else { return }
        let path = node.configuration.modelPath ?? node.configuration.stateDirectory.map { $0 + "/" + node.configuration.peer.rawValue + ".safetensors" }
        guard let path else { return }
        let trained = TrainedModel(model: node.model, parameters: instance.parameters, standardization: standardization)
        let bytes = trained.safetensors(featureNames: node.site.featureNames, extraMetadata: [
            "plexus.peer": node.configuration.peer.rawValue, "plexus.plan_hash": PlanHash.hex(node.planHash),
            "plexus.rounds": String(node.plan.rounds),
        ])
        do {
            try StateFile.writeAtomically(bytes, to: path)
            node.logger.info("Final model written", metadata: ["path": "\(path)"])
        } catch {
            node.logger.error("Cannot write the model", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Outbound queues: one per neighbour, so its messages leave in order.

    private func openQueue(to peer: PeerID) {
        guard outbound[peer] == nil else { return }
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        outbound[peer] = continuation
        let mesh = self.mesh
        senders[peer] = _Concurrency.Task {
            for await bytes in stream { _ = await mesh.send(bytes, to: peer) }
        }
    }

    private func closeQueue(to peer: PeerID) {
        outbound[peer]?.finish()
        outbound[peer] = nil
        senders[peer] = nil
    }

    private func enqueue(_ bytes: [UInt8], to peer: PeerID) {
        outbound[peer]?.yield(bytes)
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
        guard updated.peer(me)?.publicKey == node.key.publicKey else {
            node.logger.warning("Topology reload drops or re-keys this peer; refused")
            return
        }
        topology = updated
        let neighbours = node.neighbours(updated)
        for peer in outbound.keys where neighbours[peer] == nil { closeQueue(to: peer) }
        for peer in neighbours.keys { openQueue(to: peer) }
        carryOut(instance.updateNeighbours(neighbours))
        let peers = node.meshPeers(updated)
        let mesh = self.mesh
        _Concurrency.Task { await mesh.updatePeers(peers) }
        node.logger.info("Topology reloaded", metadata: ["reason": "\(reason)", "neighbours": "\(neighbours.keys.sorted().map(\.rawValue).joined(separator: ","))"])
        log?.write(ConvergenceLog.session("reloaded", peer: me, other: neighbours.keys.sorted().map(\.rawValue).joined(separator: ","), reason: reason, round: round, time: now()))
    }

    private func now() -> Double { Date().timeIntervalSince1970 }
}

enum NodeClock {
    static let epoch = ContinuousClock.now
}

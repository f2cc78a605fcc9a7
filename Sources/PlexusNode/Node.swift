import Foundation
public import Logging
public import PlexusCore
import PlexusCodec
import PlexusCrypto
import PlexusEngine
import PlexusGossip
public import PlexusLearning
import PlexusLog
import PlexusPrivacy
import PlexusTopology
import PlexusTransport
import ServiceLifecycle
import UnixSignals

/// What `plexus run` is told.
public struct NodeConfiguration: Sendable {
    public var topologyPath: String
    public var peer: PeerID
    public var keyPath: String
    public var dataPath: String
    /// This site's rows: every filter must match.
    public var filters: [RowFilter] = []
    /// A common test set for the convergence log's `test` metrics (optional).
    public var testFilters: [RowFilter] = []
    /// A protocol split file: this site is `hospitals[site]`, the test set its `test` rows.
    public var split: (path: String, site: Int)?
    /// Every N-th training row starting at i (after the filters, or of a split's `train` rows):
    /// a quick way to give N test nodes IID shards of one file.
    public var shard: (index: Int, count: Int)?
    /// Where the state file and the final model go. Default: none (no persistence).
    public var stateDirectory: String?
    public var logDirectory: String?
    /// Listen here instead of the topology's endpoint for this peer (e.g. 0.0.0.0:7400).
    public var listen: (host: String, port: Int)?
    /// Where to write the final model as safetensors. Default: `<state-dir>/<peer>.safetensors`,
    /// or `./<peer>.safetensors` without a state directory: a node always leaves a model.
    public var modelPath: String?
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    public var metrics: (host: String, port: Int)?
    /// Keep serving after the last round.
    public var forever = false
    /// How long a finished node keeps answering (keyframe requests of slower neighbours) before
    /// it exits. Default: 2 s.
    public var linger: Duration = .seconds(2)
    /// How often the topology file is checked for changes. Default: 1 s.
    public var reloadInterval: Duration = .seconds(1)
    /// How long the statistics round may take before the node gives up (exit 75). Default: 120 s.
    public var statisticsTimeout: Duration = .seconds(120)
    /// TEST ONLY: draw privacy noise from the plan's seed as the simulator does (so a run can be
    /// compared bit for bit), not from the system CSPRNG. Every peer knows the seed, so noise
    /// drawn this way protects nothing; the node warns at start-up. Default: false.
    public var deterministicNoise = false

    public init(topologyPath: String, peer: PeerID, keyPath: String, dataPath: String) {
        self.topologyPath = topologyPath
        self.peer = peer
        self.keyPath = keyPath
        self.dataPath = dataPath
    }
}

/// Why a node stopped without finishing: one clear line, and an exit code an init system can
/// act on (see ``exitCode``).
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The topology, a key, the data or the schema is wrong: restarting will not help.
        case configuration
        /// Something that may pass (a port in use, a peer that never answered): restart later.
        case transient
    }

    public var kind: Kind
    public var description: String

    public init(_ description: String, kind: Kind = .configuration) {
        self.kind = kind
        self.description = description
    }

    /// The process exit code for this failure: 78 (`EX_CONFIG`) for configuration and data
    /// errors, 75 (`EX_TEMPFAIL`) for transient ones; a node that finished exits 0. A systemd
    /// unit uses `Restart=on-failure` with `RestartPreventExitStatus=78`.
    public var exitCode: Int32 {
        switch kind {
        case .configuration: 78
        case .transient: 75
        }
    }
}

/// A peer node: the gossip instance driven over the secure mesh, with convergence logs,
/// durable state, live topology reload and a final model file.
public final class PeerNode: Sendable {
    let configuration: NodeConfiguration
    let topology: Topology
    let key: Ed25519.PrivateKey
    let plan: Plan
    let planHash: [UInt8]
    let site: Dataset
    let test: Dataset?
    let model: any Model
    let logger: Logger

    /// Loads and checks everything a node needs, so that every start-up problem is one line
    /// naming the file and what is wrong, before any socket is opened.
    public init(configuration: NodeConfiguration, logger: Logger) throws(NodeError) {
        self.configuration = configuration
        self.logger = logger
        do {
            topology = try Topology.load(path: configuration.topologyPath, spectralAnalysis: false)
        } catch {
            throw NodeError("\(configuration.topologyPath): invalid topology:\n\(error.description)")
        }
        guard let me = topology.peer(configuration.peer) else {
            throw NodeError("\(configuration.topologyPath): no peer '\(configuration.peer)' (peers: \(topology.peers.map(\.id.rawValue).joined(separator: ", ")))")
        }
        do {
            let loaded = try KeyFile.read(from: configuration.keyPath)
            if let warning = loaded.warning { logger.warning("\(warning.description)") }
            key = loaded.key
        } catch {
            throw NodeError(error.description)
        }
        guard key.publicKey == me.publicKey else {
            throw NodeError("\(configuration.keyPath): this key's public key \(key.publicKey.base64) is not the one pinned for '\(me.id)' in \(configuration.topologyPath) (\(me.publicKey.base64))")
        }
        plan = topology.plan
        planHash = topology.planHash
        (site, test) = try Self.loadData(configuration, plan: plan)
        model = makeModel(plan: plan, dimension: site.dimension)
    }

    /// This site's rows (and the optional common test set), read by column name under `plan`.
    static func loadData(_ configuration: NodeConfiguration, plan: Plan) throws(NodeError) -> (site: Dataset, test: Dataset?) {
        let site: Dataset
        let test: Dataset?
        do {
            let table = try CSV.read(path: configuration.dataPath)
            var rows: [Int]? = nil
            if let split = configuration.split {
                let file = try SplitFile.read(path: split.path, rowCount: table.rows.count)
                if configuration.shard == nil {
                    guard file.hospitals.indices.contains(split.site) else {
                        throw NodeError("\(split.path): no site \(split.site); the file has \(file.hospitals.count) (0…\(file.hospitals.count - 1))")
                    }
                    rows = file.hospitals[split.site]
                } else {
                    rows = file.train
                }
                test = try DatasetLoader.load(table, plan: plan, rows: file.test).dataset
            } else {
                test = configuration.testFilters.isEmpty ? nil : try DatasetLoader.load(table, plan: plan, filters: configuration.testFilters).dataset
            }
            if let shard = configuration.shard {
                let all = rows ?? Array(0..<table.rows.count)
                rows = all.enumerated().filter { $0.offset % shard.count == shard.index }.map(\.element)
            }
            site = try DatasetLoader.load(table, plan: plan, rows: rows, filters: configuration.filters).dataset
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError("\(error)")
        }
        guard site.count > 0 else { throw NodeError("\(configuration.dataPath): no rows match \(configuration.filters.map(\.description).joined(separator: " "))") }
        return (site, test)
    }

    /// Everything `run` would check before opening a socket — the topology, the key (and that it
    /// is the one pinned for this peer), the data against the plan (columns by name, types,
    /// missing values, rows), the state files, the ports — as one line per problem (empty when
    /// all is well) and one line per fact checked.
    public static func check(configuration: NodeConfiguration) -> (problems: [String], facts: [String]) {
        var problems: [String] = []
        var facts: [String] = []
        let topology: Topology
        do {
            topology = try Topology.load(path: configuration.topologyPath, spectralAnalysis: false)
        } catch {
            return (["\(configuration.topologyPath): invalid topology:\n\(error.description)"], facts)
        }
        guard let me = topology.peer(configuration.peer) else {
            return (["\(configuration.topologyPath): no peer '\(configuration.peer)' (peers: \(topology.peers.map(\.id.rawValue).joined(separator: ", ")))"], facts)
        }
        facts.append("topology: \(configuration.topologyPath): network '\(topology.networkName)', \(topology.peers.count) peers, plan \(PlanHash.hex(topology.planHash).prefix(16)), neighbours \(topology.neighbours(of: me.id).map(\.rawValue).joined(separator: ", "))")
        do {
            let loaded = try KeyFile.read(from: configuration.keyPath)
            if let warning = loaded.warning { problems.append(warning.description) }
            if loaded.key.publicKey != me.publicKey {
                problems.append("\(configuration.keyPath): this key's public key \(loaded.key.publicKey.base64) is not the one pinned for '\(me.id)' in \(configuration.topologyPath) (\(me.publicKey.base64))")
            } else {
                facts.append("key: \(configuration.keyPath): the key pinned for '\(me.id)'")
            }
        } catch {
            problems.append(error.description)
        }
        var dimension: Int?
        do {
            let (site, test) = try loadData(configuration, plan: topology.plan)
            dimension = site.dimension
            facts.append("data: \(configuration.dataPath): \(site.count) rows × \(site.dimension) features by name (\(site.featureNames.prefix(3).joined(separator: ", "))\(site.dimension > 3 ? ", …" : "")), targets \(topology.plan.targetColumns.joined(separator: ", "))\(test.map { "; test set \($0.count) rows" } ?? "")")
            if topology.plan.privacy != nil {
                do {
                    facts.append("privacy: " + (try PlanPrivacy(plan: topology.plan)).summary.dropFirst("privacy: ".count))
                } catch {
                    problems.append("\(configuration.topologyPath): [plan.privacy]: \(error)")
                }
            }
            if let privacy = topology.plan.privacy, privacy.releasesStatistics {
                switch privacy.bounds(for: site.featureNames) {
                case .success(let resolved):
                    let outside = Self.rowsOutside(site, resolved)
                    facts.append("privacy: every feature has a declared bound; \(outside) of \(site.count) rows have a value outside one and are clipped to it for the statistics release")
                    if configuration.stateDirectory == nil {
                        problems.append("[plan.privacy.bounds]: a private statistics release needs --state-dir, where it is kept so that a restart does not release it twice")
                    }
                case .failure(let mismatch):
                    problems.append("\(configuration.topologyPath): \(mismatch.description)")
                }
            }
        } catch {
            problems.append(error.description)
        }
        if let directory = configuration.stateDirectory, let dimension {
            let releasePath = directory + "/" + me.id.rawValue + ".release"
            if topology.plan.privacy?.releasesStatistics == true, FileManager.default.fileExists(atPath: releasePath) {
                facts.append("privacy: \(releasePath): this site's statistics were released in an earlier run; the node sends the same release")
            }
            let statePath = directory + "/" + me.id.rawValue + ".state"
            let statisticsPath = directory + "/" + me.id.rawValue + ".statistics"
            let model = makeModel(plan: topology.plan, dimension: dimension)
            do {
                if let bytes = try StateFile.read(statePath) {
                    let key = try StateFile.stateKey(directory: directory, peer: me.id, create: false)
                    let snapshot = try StateFile.decode(bytes, planHash: topology.planHash, parameterCount: model.layout.count, key: key, acceptChecksum: key == nil, as: PlanLearner.self)
                    facts.append("state: \(statePath): resumes at round \(snapshot.round) of \(topology.plan.rounds)")
                } else {
                    facts.append("state: none yet in \(directory); the node starts at round 1")
                }
            } catch {
                problems.append("\(statePath): \(error.description)")
            }
            do {
                if let bytes = try StateFile.read(statisticsPath) {
                    let key = try StateFile.stateKey(directory: directory, peer: me.id, create: false)
                    let saved = try CompletedStatistics(decoding: bytes, planHash: topology.planHash, key: key, acceptChecksum: key == nil)
                    facts.append("statistics: \(statisticsPath): completed over \(saved.basis.count) sites; no statistics round needed")
                }
            } catch {
                problems.append("\(statisticsPath): \(error)")
            }
        }
        let listen = configuration.listen ?? (me.endpoint.host, me.endpoint.port)
        var endpoints = [("listen", listen)]
        if let metrics = configuration.metrics { endpoints.append(("metrics", metrics)) }
        for (what, endpoint) in endpoints {
            if let problem = PortProbe.problem(host: endpoint.host, port: endpoint.port) {
                problems.append("cannot \(what == "listen" ? "listen" : "serve metrics") on \(endpoint.host):\(endpoint.port): \(problem)")
            } else {
                facts.append("\(what): \(endpoint.host):\(endpoint.port) is free")
            }
        }
        return (problems, facts)
    }

    /// Where the final model goes: `--model`, else `<state-dir>/<peer>.safetensors`, else
    /// `./<peer>.safetensors` — a node always leaves a model.
    var modelPath: String {
        configuration.modelPath
            ?? (configuration.stateDirectory ?? ".") + "/" + configuration.peer.rawValue + ".safetensors"
    }

    /// The largest frame a session accepts: a lossless keyframe of this model plus slack.
    var maximumFrameSize: Int {
        let parameters = model.layout.count
        return max(64 << 10, 4 * parameters + 4 * parameters / 128 + (64 << 10) + 16 * site.dimension)
    }

    /// Runs until the plan's last round (then lingers and exits), or forever with `forever`,
    /// or until SIGINT/SIGTERM.
    public func run() async throws {
        let me = configuration.peer
        let endpoint = topology.peer(me)!.endpoint
        let listen = configuration.listen ?? (endpoint.host, endpoint.port)
        let mesh = PeerMesh(
            configuration: MeshConfiguration(
                me: me, key: key, planHash: planHash, topologyFingerprint: topology.fingerprint, listen: listen, peers: meshPeers(topology),
                maximumFrameSize: maximumFrameSize
            ),
            logger: logger
        )
        let metrics = NodeMetrics(
            peer: me, planRounds: plan.rounds, topologyFingerprint: topology.fingerprintHex, neighbours: topology.neighbours(of: me)
        )
        let driver = try NodeDriver(node: self, mesh: mesh, metrics: metrics)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: mesh),
            .init(service: driver, successTerminationBehavior: .gracefullyShutdownGroup),
        ]
        if let endpoint = configuration.metrics {
            services.append(.init(service: MetricsServer(
                host: endpoint.host, port: endpoint.port, metrics: metrics, roundDeadline: .milliseconds(plan.roundDeadlineMilliseconds), logger: logger
            )))
        }
        // The control socket `plexus status` talks to.
        services.append(.init(service: ControlServer(path: ControlProtocol.path(stateDirectory: configuration.stateDirectory, peer: me), logger: logger) {
            await driver.status()
        }))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        if let failure = await driver.failure { throw failure }
    }

    func meshPeers(_ topology: Topology) -> [PeerID: MeshPeer] {
        Dictionary(uniqueKeysWithValues: topology.neighbours(of: configuration.peer).map { id in
            let peer = topology.peer(id)!
            return (id, MeshPeer(host: peer.endpoint.host, port: peer.endpoint.port, publicKey: peer.publicKey))
        })
    }

    func neighbours(_ topology: Topology) -> [PeerID: Neighbour] {
        let weights = topology.mixingWeights(for: configuration.peer)
        return Dictionary(uniqueKeysWithValues: weights.neighbours.map { id, weight in
            (id, Neighbour(publicKey: topology.peer(id)!.publicKey, weight: weight))
        })
    }
}

extension PeerNode {
    /// Rows with at least one feature outside its declared bound (what the release clips).
    static func rowsOutside(_ site: Dataset, _ bounds: [Plan.FeatureBound]) -> Int {
        let d = site.dimension
        return (0..<site.count).filter { r in
            (0..<d).contains { j in
                let x = Double(site.features[r * d + j])
                return x < bounds[j].lower || x > bounds[j].upper
            }
        }.count
    }
}

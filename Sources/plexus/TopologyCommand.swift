import ArgumentParser
import Foundation
import PlexusCore
import PlexusCrypto
import PlexusLog
import PlexusPrivacy
import PlexusTopology

struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Check, inspect, generate, draw and compare topology files.",
        discussion: """
            A topology file (TOML) names the network, its learning plan, every peer (id, \
            endpoint, public key) and the links between them. A copy sits on every node.
            """,
        subcommands: [Check.self, Show.self, Generate.self, Dot.self, Diff.self]
    )
}

/// Loads a topology for a subcommand, printing its diagnostics to standard error and exiting 1
/// on any error; warnings are printed too.
private func loadOrExit(_ path: String, spectralAnalysis: Bool = false) throws -> Topology {
    do {
        let topology = try Topology.load(path: path, spectralAnalysis: spectralAnalysis)
        for warning in topology.warnings { StandardStream.error.write("\(warning)\n") }
        return topology
    } catch {
        StandardStream.error.write(error.description + "\n")
        throw ExitCode(1)
    }
}

private func peerID(_ text: String) throws -> PeerID {
    guard let id = PeerID(text) else {
        throw ValidationError("invalid peer id '\(text)': \(PeerID.problem(with: text) ?? "")")
    }
    return id
}

extension TopologyCommand {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a topology file and print its graph facts.",
            discussion: """
                Every problem is collected, then printed sorted by position in compiler style \
                (FILE:LINE:COLUMN: error: message) on standard error — plan keys that do not work \
                together included, at the `aggregation` line (README, "Plan keys that work together"). \
                When the file is valid, the \
                graph facts follow on standard output: peers, links, degrees, diameter, components, \
                the spectral gap of the mixing matrix and the rounds it implies to shrink \
                disagreement between peers 1000×, and how sample counts are held: a peer's \
                `samples = N` (exact) or `max_samples = N` (upper bound) pins the count its \
                neighbours' mixing weights use whatever it signs; every other count is bounded \
                at max_sample_ratio × the network's median signed count. Exits 1 when there is \
                any error.
                """
        )

        enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

        @Argument(help: "The topology file.", completion: .file(extensions: ["toml"]))
        var file: String

        @Option(help: "Output format: text or json (diagnostics and facts as one JSON object on standard output).")
        var format: Format = .text

        func run() throws {
            var diagnostics: [Diagnostic]
            var topology: Topology?
            do {
                let loaded = try Topology.load(path: file)
                diagnostics = loaded.warnings
                topology = loaded
            } catch {
                diagnostics = error.diagnostics
            }
            let facts = topology.map { $0.facts ?? GraphFacts($0) }
            switch format {
            case .json:
                struct Report: Encodable {
                    let file: String
                    let valid: Bool
                    let diagnostics: [Diagnostic]
                    let network: String?
                    let planHash: String?
                    let facts: GraphFacts?
                    let samplePins: [String: String]?
                    let maxSampleRatio: Double?
                    let privacy: Privacy?
                }
                struct Privacy: Encodable {
                    let epsilon: Double, delta: Double, steps: Int, noiseMultiplier: Double, sampling: Double, clip: Double
                    let coversStatistics: Bool
                }
                let privacy = try? topology.flatMap { t in t.plan.privacy == nil ? nil : try PlanPrivacy(plan: t.plan) }.map {
                    Privacy(epsilon: $0.epsilon, delta: $0.privacy.delta, steps: $0.steps, noiseMultiplier: $0.noiseMultiplier,
                            sampling: $0.privacy.sampling, clip: $0.privacy.clip, coversStatistics: false)
                }
                let report = Report(
                    file: file, valid: topology != nil, diagnostics: diagnostics, network: topology?.networkName,
                    planHash: topology.map { PlanHash.hex($0.planHash) }, facts: facts,
                    samplePins: topology.map { t in Dictionary(uniqueKeysWithValues: t.peers.compactMap { p in p.samples.map { (p.id.rawValue, $0.description) } }) },
                    maxSampleRatio: topology?.plan.maxSampleRatio, privacy: privacy)
                print(try PlexusJSON.string(report, pretty: true))
            case .text:
                for d in diagnostics { StandardStream.error.write("\(d)\n") }
                if let topology, let facts {
                    print("\(file): ok: network '\(topology.networkName)', plan hash \(PlanHash.hex(topology.planHash)), file fingerprint \(topology.fingerprintHex)")
                    for line in facts.summary { print("  \(line)") }
                    print("  \(Self.sampleCounts(topology))")
                    if topology.plan.privacy != nil {
                        do {
                            print("  \(try PlanPrivacy(plan: topology.plan).summary)")
                        } catch {
                            StandardStream.error.write("\(file): error: [plan.privacy]: \(error)\n")
                            throw ExitCode(1)
                        }
                    }
                }
            }
            if topology == nil { throw ExitCode(1) }
        }

        /// One line: the pins, and the bound on every other count.
        static func sampleCounts(_ topology: Topology) -> String {
            let pins = topology.peers.compactMap { p in p.samples.map { "\(p.id) \($0.description)" } }
            let ratio = topology.plan.maxSampleRatio
            let bound = ratio > 0
                ? "counts at most \(TopologyWriter.number(ratio)) × the network's median signed count (max_sample_ratio)"
                : "counts as signed: no bound (max_sample_ratio = 0)"
            if pins.isEmpty { return "sample counts: none pinned; each \(bound)" }
            return "sample counts: pinned \(pins.joined(separator: ", ")); every count \(bound)"
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one peer's neighbours and mixing weights (or every peer's degree).",
            discussion: "Mixing weights follow the plan's `mixing`: Metropolis–Hastings or the links' explicit weights."
        )

        @Argument(help: "The topology file.", completion: .file(extensions: ["toml"]))
        var file: String

        @Option(help: "The peer to show; without it, every peer is listed.")
        var peer: String?

        func run() throws {
            let topology = try loadOrExit(file)
            guard let peer else {
                print("network '\(topology.networkName)': \(topology.peers.count) peers, \(topology.links.count) links, mixing \(topology.plan.mixing.rawValue)")
                for p in topology.peers {
                    print("  \(p.id)  \(p.endpoint)  degree \(topology.degree(of: p.id))")
                }
                return
            }
            let id = try peerID(peer)
            guard let p = topology.peer(id) else {
                let names = topology.peers.map(\.id.rawValue)
                throw CLIError("no peer '\(peer)' in \(file); peers: \(names.prefix(20).joined(separator: ", "))\(names.count > 20 ? ", …" : "")")
            }
            let weights = topology.mixingWeights(for: id)
            print("peer \(p.id)")
            print("  endpoint    \(p.endpoint)")
            print("  public key  \(p.publicKey.base64)")
            print("  degree      \(topology.degree(of: id))")
            print("  mixing      \(topology.plan.mixing.rawValue)")
            print("  self weight \(weights.selfWeight)")
            print("  neighbours:")
            let neighbours = topology.neighbours(of: id)
            let width = neighbours.map(\.rawValue.count).max() ?? 0
            for n in neighbours {
                let endpoint = topology.peer(n)?.endpoint.description ?? ""
                let pad = String(repeating: " ", count: width - n.rawValue.count)
                print("    \(n)\(pad)  weight \(weights.neighbours[n] ?? 0)  \(endpoint)")
            }
        }
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a valid topology file of a given shape, optionally with private keys.",
            discussion: """
                Peers are named peer-00, peer-01, … and listen on --host at --base-port, \
                --base-port + 1, … With --keys-dir, one private key per peer is written there as \
                <id>.key (mode 0600) and its public key goes into the file, so a local test network \
                is one command. Without --keys-dir, the public keys are real but their private keys \
                are discarded.

                --from FILE rewrites an existing topology (e.g. one from Topologies/) with fresh \
                keys: same peers, links and plan; endpoints are rebased only when --host or \
                --base-port is given. --keys-dir is required with --from.

                Examples:
                  plexus topology generate --shape torus --peers 16 \\
                      --keys-dir keys --out torus.toml
                  plexus topology generate --from Topologies/tcga-brca.toml --keys-dir keys \\
                      --host 127.0.0.1 --base-port 7400 --out local.toml
                """
        )

        @Option(help: "ring, torus, full, star, random-regular:D, small-world[:P] or exponential.")
        var shape: String?

        @Option(help: "The number of peers, 2–\(TopologyGenerator.maximumPeers).")
        var peers: Int?

        @Option(help: "Rewrite this topology file with fresh keys instead of generating a shape.", completion: .file(extensions: ["toml"]))
        var from: String?

        @Option(help: "The host every peer listens on (default 127.0.0.1; with --from, keeps each peer's host unless given).")
        var host: String?

        @Option(help: "The first peer's port; peer i gets base-port + i (default 7400; with --from, keeps ports unless given).")
        var basePort: Int?

        @Option(help: "Write one private key per peer here, as <id>.key (mode 0600).", completion: .directory)
        var keysDir: String?

        @Option(help: "Seed for the random shapes (random-regular, small-world).")
        var seed: UInt64 = 1

        @Option(help: "The network name. Default: the shape and size, e.g. ring-8.")
        var name: String?

        @Option(help: "Take the [plan] from this file (a plan-only or topology file). Default: a logistic-regression plan on a 'label' column.", completion: .file())
        var plan: String?

        @Option(name: .shortAndLong, help: "The topology file to write.", completion: .file(extensions: ["toml"]))
        var out: String

        @Flag(help: "Overwrite --out and existing key files.")
        var force = false

        func validate() throws {
            if from == nil {
                guard shape != nil, peers != nil else { throw ValidationError("give --shape and --peers, or --from FILE") }
            } else {
                guard shape == nil, peers == nil else { throw ValidationError("--from cannot be combined with --shape or --peers") }
                guard keysDir != nil else { throw ValidationError("--from needs --keys-dir: fresh keys are useless if their private halves are discarded") }
            }
            if let host, case .failure(let e) = Endpoint.parse(host.contains(":") && !host.hasPrefix("[") ? "[\(host)]:1" : "\(host):1") {
                throw ValidationError("invalid --host '\(host)': \(e)")
            }
            if let basePort, !(1...65535).contains(basePort) { throw ValidationError("--base-port must be from 1 to 65535") }
        }

        func run() throws {
            if !force && FileManager.default.fileExists(atPath: out) {
                throw CLIError("\(out) exists; use --force to overwrite it")
            }
            var privateKeys: [PeerID: Ed25519.PrivateKey] = [:]
            func freshKey(_ id: PeerID) -> Ed25519.PublicKey {
                let key = Ed25519.PrivateKey()
                privateKeys[id] = key
                return key.publicKey
            }
            let cleanHost = host.map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
            let topology: Topology
            var comment: [String]
            if let from {
                let source = try loadOrExit(from)
                let peers = source.peers.enumerated().map { i, p in
                    Topology.Peer(
                        id: p.id,
                        endpoint: Endpoint(host: cleanHost ?? p.endpoint.host, port: basePort.map { $0 + i } ?? p.endpoint.port),
                        publicKey: freshKey(p.id))
                }
                if let basePort, basePort + peers.count - 1 > 65535 {
                    throw CLIError("ports \(basePort)…\(basePort + peers.count - 1) do not fit in 1…65535")
                }
                topology = Topology(
                    networkName: name ?? source.networkName, protocolVersion: source.protocolVersion,
                    plan: try plan.map(loadPlan) ?? source.plan, peers: peers, links: source.links)
                comment = ["Rewritten from \(from) with fresh keys by `plexus topology generate --from`."]
            } else if let shapeText = shape, let count = peers {
                do {
                    let shape = try Shape(parsing: shapeText)
                    topology = try TopologyGenerator.generate(
                        shape: shape, peers: count, host: cleanHost ?? "127.0.0.1", basePort: basePort ?? 7400, seed: seed,
                        networkName: name ?? "\(shape)-\(count)", plan: try plan.map(loadPlan) ?? TopologyGenerator.defaultPlan,
                        publicKey: freshKey)
                    comment = ["Generated by `plexus topology generate --shape \(shape) --peers \(count) --seed \(seed)`."]
                } catch let error as GeneratorError {
                    throw CLIError(error.message)
                }
            } else {
                throw ValidationError("give --shape and --peers, or --from FILE")
            }
            if keysDir == nil {
                comment.append("The private keys of these public keys were discarded: regenerate with --keys-dir for a runnable network.")
            }
            let text = TopologyWriter.toml(topology, comment: comment)
            // The output must validate: check it before writing anything.
            do {
                _ = try Topology.parse(source: text, path: out, spectralAnalysis: false)
            } catch {
                StandardStream.error.write(error.description + "\n")
                throw CLIError("internal error: the generated topology does not validate")
            }
            if let keysDir {
                try FileManager.default.createDirectory(atPath: keysDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                for peer in topology.peers {
                    guard let key = privateKeys[peer.id] else { continue }
                    do {
                        try KeyFile.write(key, to: (keysDir as NSString).appendingPathComponent("\(peer.id).key"), overwrite: force)
                    } catch {
                        throw CLIError(error.description)
                    }
                }
            }
            do {
                try text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw CLIError("cannot write \(out): \(error.localizedDescription)")
            }
            print("wrote \(out): \(topology.peers.count) peers, \(topology.links.count) links" + (keysDir.map { "; private keys in \($0)/<id>.key" } ?? ""))
        }

        private func loadPlan(_ path: String) throws -> Plan {
            do {
                return try PlanFile.load(path: path)
            } catch {
                StandardStream.error.write(error.description + "\n")
                throw ExitCode(1)
            }
        }
    }

    struct Dot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the topology's graph in Graphviz DOT.",
            discussion: "Example: plexus topology dot Topologies/torus-16.toml | neato -Tsvg > torus.svg"
        )

        @Argument(help: "The topology file.", completion: .file(extensions: ["toml"]))
        var file: String

        @Option(name: .shortAndLong, help: "Write to this file instead of standard output.")
        var out: String?

        func run() throws {
            let text = TopologyWriter.dot(try loadOrExit(file))
            if let out {
                do {
                    try text.write(toFile: out, atomically: true, encoding: .utf8)
                } catch {
                    throw CLIError("cannot write \(out): \(error.localizedDescription)")
                }
            } else {
                print(text, terminator: "")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what changed between two topology files.",
            discussion: """
                One line per change: + added, - removed, ~ changed — peers, rotated keys, \
                endpoints, links, weights, plan keys and the plan hash. Prints "no changes" when \
                nothing a node acts on changed. Both files must be valid.
                """
        )

        @Argument(help: "The old topology file.", completion: .file(extensions: ["toml"]))
        var old: String

        @Argument(help: "The new topology file.", completion: .file(extensions: ["toml"]))
        var new: String

        func run() throws {
            let a = try loadOrExit(old)
            let b = try loadOrExit(new)
            print(TopologyDiff(from: a, to: b).description)
        }
    }
}

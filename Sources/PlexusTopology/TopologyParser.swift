public import PlexusCore
import PlexusCrypto
import TOMLKit

/// Reads a whole topology file: `[network]`, `[plan]`, `[[peer]]`, `[[link]]`, then the checks
/// that span tables (duplicates, unknown peers, connectivity, mixing weights, mixing speed).
enum TopologyParser {
    static let networkKeys = ["name", "protocol"]
    static let peerKeys = ["id", "endpoint", "public_key", "samples", "max_samples"]
    static let linkKeys = ["peers", "weight"]
    /// The longest network name accepted.
    static let maximumNameLength = 128

    struct ParsedPeer {
        var idText: String?
        var id: PeerID?
        var endpoint: Endpoint?
        var publicKey: Ed25519.PublicKey?
        var samples: SamplePin?
        var header: SourcePosition
        /// Whether this entry is the one the graph uses for its id (the first valid one).
        var isCanonical = false
    }

    struct ParsedLink {
        var a: PeerID
        var b: PeerID
        var weight: Double?
        var header: SourcePosition
    }

    static func parse(source: String, path: String, spectralAnalysis: Bool) throws(TopologyError) -> Topology {
        let index = SourceIndex(source: source)
        let root: TOMLTable
        switch SourceFile.parseTOML(source, path: path, index: index) {
        case .failure(let diagnostic): throw TopologyError(diagnostics: [diagnostic])
        case .success(let table): root = table
        }
        var reader = Reader(path: path, index: index)
        let plan = reader.planSection(root)
        let network = reader.network(root)
        let explicit = plan.map { $0.mixing == .explicit } ?? (root["plan"]?.table?["mixing"]?.string == "explicit")
        let peers = reader.peers(root)
        let links = reader.links(root, peers: peers, explicitWeights: explicit)
        reader.checkGraph(peers: peers, links: links, explicitWeights: explicit)
        if let plan { reader.checkAggregation(plan, peers: peers, links: links) }
        try reader.diagnostics.throwIfErrors()
        guard let plan, let network else {
            throw TopologyError(diagnostics: reader.diagnostics.diagnostics + [Diagnostic(.error, "the file is incomplete", path: path, at: .start)])
        }
        var topology = Topology(
            networkName: network.name,
            protocolVersion: network.protocolVersion,
            plan: plan,
            peers: peers.compactMap { p in
                guard p.isCanonical, let id = p.id, let endpoint = p.endpoint, let key = p.publicKey else { return nil }
                return Topology.Peer(id: id, endpoint: endpoint, publicKey: key, samples: p.samples)
            },
            links: links.map { Topology.Link($0.a, $0.b, weight: $0.weight) }
        )
        if spectralAnalysis { topology.facts = reader.checkMixingSpeed(topology) }
        topology.warnings = Diagnostic.sorted(reader.diagnostics.diagnostics)
        return topology
    }
}

extension Topology {
    /// Why `rule` cannot run on this graph, or `nil`: `trimmed-mean:B` needs 2B + 1 members in
    /// every closed neighbourhood (the check `topology check` makes at the `aggregation` key,
    /// for a rule given on the command line instead).
    public func aggregationProblem(_ rule: Plan.Aggregation) -> String? {
        guard case .trimmedMean(let b) = rule, peers.count >= 2 else { return nil }
        let small = peers.map(\.id).filter { degree(of: $0) + 1 < 2 * b + 1 }
        guard let first = small.first else { return nil }
        return "aggregation '\(rule)' needs \(2 * b + 1) members in every closed neighbourhood; peer '\(first)' has \(degree(of: first) + 1)"
            + (small.count > 1 ? " (and \(small.count - 1) more peers too few)" : "")
    }
}

extension Reader {
    mutating func network(_ root: TOMLTable) -> (name: String, protocolVersion: Int)? {
        guard let value = root["network"] else {
            error("missing [network] table (name = \"…\", protocol = \(Topology.protocolVersion))", at: .start)
            return nil
        }
        guard let table = value.table else {
            error("'network' must be a table ([network]), found \(Self.kind(value.type))", at: keyPosition(TableRef(table: root, section: "", displayName: "the file"), "network"))
            return nil
        }
        let t = TableRef(table: table, section: "network", displayName: "[network]")
        checkKeys(t, known: TopologyParser.networkKeys)
        var ok = true
        let name = string(t, "name", required: "a string naming the network")
        if let name {
            if name.isEmpty || name.count > TopologyParser.maximumNameLength || name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                error("the network name must be 1–\(TopologyParser.maximumNameLength) characters without control characters", at: valuePosition(t, "name"))
                ok = false
            }
        }
        var version = Topology.protocolVersion
        if let v = integer(t, "protocol") {
            if v != Topology.protocolVersion {
                error("protocol \(v) is not supported; this build speaks protocol \(Topology.protocolVersion)", at: valuePosition(t, "protocol"))
                ok = false
            }
            version = v
        }
        guard ok, let name else { return nil }
        return (name, version)
    }

    /// The entries of an array of tables (`[[peer]]`), reporting a single `[peer]` table or
    /// a non-table element.
    mutating func arrayOfTables(_ root: TOMLTable, _ key: String) -> [(TableRef, SourcePosition)] {
        guard let value = root[key] else { return [] }
        let rootRef = TableRef(table: root, section: "", displayName: "the file")
        guard let array = value.array else {
            error("'\(key)' must be an array of tables: write [[\(key)]] before each entry, found \(Self.kind(value.type))", at: index.header(key) ?? keyPosition(rootRef, key))
            return []
        }
        var result: [(TableRef, SourcePosition)] = []
        for i in 0..<array.count {
            let section = "\(key)#\(i)"
            let header = index.header(section) ?? elementPosition(rootRef, key, i)
            guard let table = array[i].table else {
                error("entry \(i + 1) of '\(key)' must be a table, found \(Self.kind(array[i].type))", at: header)
                continue
            }
            result.append((TableRef(table: table, section: section, displayName: "[[\(key)]]", origin: header), header))
        }
        return result
    }

    /// `samples = N` or `max_samples = N` (at most one of them), N in 1…2⁴⁰.
    mutating func samplePin(_ t: TableRef) -> SamplePin? {
        let exact = integer(t, "samples")
        let most = integer(t, "max_samples")
        if exact != nil && most != nil {
            error("a peer takes 'samples' (its exact count) or 'max_samples' (an upper bound), not both", at: keyPosition(t, "max_samples"))
            return nil
        }
        guard let (key, n) = exact.map({ ("samples", $0) }) ?? most.map({ ("max_samples", $0) }) else { return nil }
        guard (1...SamplePin.largest).contains(n) else {
            error("\(key) must be an integer from 1 to \(SamplePin.largest) (2^40), found \(n)", at: valuePosition(t, key))
            return nil
        }
        return key == "samples" ? .exactly(n) : .atMost(n)
    }

    mutating func peers(_ root: TOMLTable) -> [TopologyParser.ParsedPeer] {
        var parsed: [TopologyParser.ParsedPeer] = []
        var firstId: [String: SourcePosition] = [:]
        var firstEndpoint: [String: (String, SourcePosition)] = [:]
        var firstKey: [Ed25519.PublicKey: (String, SourcePosition)] = [:]
        for (t, header) in arrayOfTables(root, "peer") {
            checkKeys(t, known: TopologyParser.peerKeys)
            var peer = TopologyParser.ParsedPeer(header: header)
            if let idText = string(t, "id", required: "the peer's id, e.g. \"northeast\"") {
                peer.idText = idText
                let at = valuePosition(t, "id")
                if let problem = PeerID.problem(with: idText) {
                    error("invalid peer id '\(idText)': \(problem)", at: at)
                } else if let first = firstId[idText] {
                    error("duplicate peer id '\(idText)' (first defined at line \(first.line))", at: at)
                } else {
                    firstId[idText] = at
                    peer.id = PeerID(idText)
                    peer.isCanonical = true
                }
            }
            let name = peer.idText ?? "?"
            if let text = string(t, "endpoint", required: "host:port, e.g. \"10.0.0.11:7400\"") {
                let at = valuePosition(t, "endpoint")
                switch Endpoint.parse(text) {
                case .failure(let problem):
                    error("malformed endpoint '\(text)': \(problem.reason)", at: at)
                case .success(let endpoint):
                    if let (other, first) = firstEndpoint[endpoint.normalised] {
                        error("endpoint \(endpoint) is already used by peer '\(other)' (line \(first.line))", at: at)
                    } else {
                        firstEndpoint[endpoint.normalised] = (name, at)
                    }
                    peer.endpoint = endpoint
                }
            }
            if let text = string(t, "public_key", required: "44 characters of base64, from `plexus keygen`") {
                let at = valuePosition(t, "public_key")
                do {
                    let key = try Ed25519.PublicKey(base64: text)
                    if let (other, first) = firstKey[key] {
                        error("public key already used by peer '\(other)' (line \(first.line)); every peer needs its own key", at: at)
                    } else {
                        firstKey[key] = (name, at)
                    }
                    peer.publicKey = key
                } catch {
                    let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
                    self.error("malformed public_key '\(shown)': \(error.description)", at: at)
                }
            }
            peer.samples = samplePin(t)
            if peer.endpoint == nil || peer.publicKey == nil { peer.isCanonical = false }
            parsed.append(peer)
        }
        return parsed
    }

    mutating func links(_ root: TOMLTable, peers: [TopologyParser.ParsedPeer], explicitWeights: Bool) -> [TopologyParser.ParsedLink] {
        let known = Set(peers.compactMap(\.idText))
        let knownSorted = known.sorted()
        var result: [TopologyParser.ParsedLink] = []
        var first: [Topology.LinkKey: SourcePosition] = [:]
        for (t, header) in arrayOfTables(root, "link") {
            checkKeys(t, known: TopologyParser.linkKeys)
            var weight: Double?
            if let w = number(t, "weight") {
                let at = valuePosition(t, "weight")
                if !explicitWeights {
                    warning("'weight' is ignored with mixing = \"metropolis\"; set mixing = \"explicit\" in [plan] to use link weights", at: keyPosition(t, "weight"))
                } else if !w.isFinite || w <= 0 {
                    error("weight must be a number > 0, found \(w)", at: at)
                } else if w > 1 {
                    error("weight must be at most 1, found \(w)", at: at)
                } else {
                    weight = w
                }
            } else if explicitWeights && t.table["weight"] == nil {
                error("[[link]] is missing 'weight' (mixing = \"explicit\" needs a weight on every link)", at: header)
            }
            guard let names = stringArray(t, "peers", required: "the two peers it joins, e.g. [\"northeast\", \"south\"]") else { continue }
            guard names.count == 2 else {
                error("'peers' must name exactly 2 peers, found \(names.count)", at: valuePosition(t, "peers"))
                continue
            }
            var ok = true
            for (i, name) in names.enumerated() where !known.contains(name) {
                error("unknown peer '\(name)' in link\(didYouMean(name, among: knownSorted))", at: elementPosition(t, "peers", i))
                ok = false
            }
            guard ok else { continue }
            if names[0] == names[1] {
                error("link from '\(names[0])' to itself", at: valuePosition(t, "peers"))
                continue
            }
            guard let a = PeerID(names[0]), let b = PeerID(names[1]) else { continue }
            let key = Topology.LinkKey(a, b)
            if let earlier = first[key] {
                error("duplicate link between '\(names[0])' and '\(names[1])' (first at line \(earlier.line))", at: valuePosition(t, "peers"))
                continue
            }
            first[key] = header
            result.append(TopologyParser.ParsedLink(a: a, b: b, weight: weight, header: header))
        }
        return result
    }

    mutating func checkGraph(peers: [TopologyParser.ParsedPeer], links: [TopologyParser.ParsedLink], explicitWeights: Bool) {
        let nodes = peers.filter { $0.id != nil }
        let ids = nodes.compactMap(\.id)
        if peers.isEmpty {
            error("the network has no peers; add a [[peer]] table for each (id, endpoint, public_key)", at: .start)
            return
        }
        if ids.count == 1 {
            warning("the network has a single peer: it will train alone", at: nodes[0].header)
            return
        }
        guard ids.count >= 2 else { return }
        var indexOf: [PeerID: Int] = [:]
        for (i, id) in ids.enumerated() { indexOf[id] = i }
        var adjacency = [[Int]](repeating: [], count: ids.count)
        for link in links {
            guard let i = indexOf[link.a], let j = indexOf[link.b] else { continue }
            adjacency[i].append(j)
            adjacency[j].append(i)
        }
        if links.isEmpty {
            error("the network has \(ids.count) peers but no links; add a [[link]] table (peers = [\"a\", \"b\"]) for each link", at: nodes[0].header)
            return
        }
        for (i, node) in nodes.enumerated() where adjacency[i].isEmpty {
            error("peer '\(ids[i])' has no link; add a [[link]] with peers = [\"\(ids[i])\", …]", at: node.header)
        }
        // Isolated peers were reported above; the graph is "disconnected" when at least two
        // components have links of their own.
        let components = Graph.components(adjacency)
        if components.filter({ $0.count > 1 }).count > 1 {
            let names = components.map { component in Graph.describe(component.map { ids[$0].rawValue }) }
            let at = links.first?.header ?? nodes[0].header
            error("the graph is disconnected: \(components.count) components: \(names.joined(separator: ", "))", at: at)
        }
        if explicitWeights && links.count == links.filter({ $0.weight != nil }).count {
            for (i, node) in nodes.enumerated() {
                var sum = 0.0
                var parts: [String] = []
                for link in links where link.a == ids[i] || link.b == ids[i] {
                    let w = link.weight ?? 0
                    sum += w
                    parts.append("\(link.a == ids[i] ? link.b : link.a) \(w)")
                }
                if sum > 1 + 1e-9 {
                    error(
                        "the link weights of peer '\(ids[i])' sum to \(Format.number(sum)) (\(parts.joined(separator: ", "))), above 1: "
                            + "row '\(ids[i])' of the mixing matrix would need self-weight \(Format.number(1 - sum)) to sum to 1",
                        at: node.header
                    )
                }
            }
        }
    }

    /// The plan's `aggregation` against the graph and the other plan keys (README, "Plan keys
    /// that work together"): every diagnostic is at the `aggregation` value and says why.
    ///
    /// - error: `trimmed-mean:B` on a peer whose closed neighbourhood (itself and its
    ///   neighbours) has fewer than 2B + 1 members: dropping B values at each end would leave
    ///   nothing, or only values an attacker chose.
    /// - warning: `trimmed-mean:B` or `median` with `mixing = "explicit"` (the rules give each
    ///   member one vote; the link weights are not used).
    /// - warning: `clipped` or `median` on a peer with a single neighbour: with two values
    ///   there is no majority, so the rule cannot tell that neighbour from the consensus.
    /// - warning: `clip_anchor` with a rule other than `clipped` (it bounds the clipping radius;
    ///   the other rules have none).
    mutating func checkAggregation(_ plan: Plan, peers: [TopologyParser.ParsedPeer], links: [TopologyParser.ParsedLink]) {
        if plan.clipAnchor > 0 && plan.aggregation != .clipped {
            warning(
                "clip_anchor bounds the clipping radius of aggregation = \"clipped\"; with aggregation '\(plan.aggregation)' it has no effect",
                at: index.entry("plan", "clip_anchor")?.value ?? index.header("plan") ?? .start
            )
        }
        guard plan.aggregation.isRobust else { return }
        let at = index.entry("plan", "aggregation")?.value ?? index.header("plan") ?? .start
        var degree: [PeerID: Int] = [:]
        for peer in peers where peer.isCanonical { if let id = peer.id { degree[id] = 0 } }
        for link in links {
            degree[link.a, default: 0] += 1
            degree[link.b, default: 0] += 1
        }
        let ordered = degree.sorted { ($0.value, $0.key.rawValue) < ($1.value, $1.key.rawValue) }
        guard ordered.count >= 2 else { return }
        func named(_ list: [(key: PeerID, value: Int)]) -> String {
            let shown = list.prefix(4).map { "'\($0.key)' (\($0.value) neighbour\($0.value == 1 ? "" : "s"))" }
            let rest = list.count > 4 ? " and \(list.count - 4) more" : ""
            return shown.joined(separator: ", ") + rest
        }
        let rule = plan.aggregation.description
        switch plan.aggregation {
        case .trimmedMean(let b):
            let needed = 2 * b + 1
            let small = ordered.filter { $0.value + 1 < needed }
            if !small.isEmpty {
                let largest = ((ordered[0].value + 1) - 1) / 2
                let fix = largest >= 1 ? "use trimmed-mean:\(largest) or fewer" : "use \"clipped\" or add links"
                error(
                    "aggregation '\(rule)' drops \(b) value\(b == 1 ? "" : "s") at each end of every coordinate, so every peer needs at least "
                        + "\(needed) in its neighbourhood (itself and \(needed - 1) neighbours); too few at peer \(named(small)); \(fix)",
                    at: at
                )
            }
        case .clipped, .median:
            let single = ordered.filter { $0.value == 1 }
            if !single.isEmpty {
                warning(
                    "aggregation '\(rule)' cannot protect a peer with a single neighbour (two values have no majority): peer \(named(single))",
                    at: at
                )
            }
        case .mean:
            break
        }
        if plan.mixing == .explicit, plan.aggregation != .clipped {
            warning("aggregation '\(rule)' gives every member of a neighbourhood one vote: the link weights of mixing = \"explicit\" are not used", at: at)
        }
    }

    /// `check` warns when the plan's `consensus_rounds` leave more than this share of the
    /// disagreement between peers (|λ₂|^K > 0.1: the phase shrinks it less than 10×).
    static let consensusRoundsShortfall = 0.1

    /// Warns when disagreement between peers shrinks slowly compared with the plan's rounds, or
    /// compared with its final `consensus_rounds`. Returns the facts it computed.
    mutating func checkMixingSpeed(_ topology: Topology) -> GraphFacts {
        let facts = GraphFacts(topology, spectralAnalysis: true)
        guard topology.peers.count >= 2, let gap = facts.spectralGap, let rounds = facts.roundsToShrink1000x else { return facts }
        let hint = "add chords, or use a torus or an exponential graph (plexus topology generate --shape torus|exponential)"
        let planRef = index.header("plan")
        if rounds > Double(topology.plan.rounds) {
            let at = index.entry("plan", "rounds")?.value ?? planRef ?? .start
            warning(
                "the graph needs about \(Format.rounds(rounds)) rounds to shrink disagreement 1000× (spectral gap \(Format.number(gap))), "
                    + "more than the plan's \(topology.plan.rounds); \(hint)",
                at: at
            )
        } else if rounds > GraphFacts.slowMixingRounds {
            warning(
                "the graph mixes slowly: about \(Format.rounds(rounds)) rounds to shrink disagreement 1000× (spectral gap \(Format.number(gap))); \(hint)",
                at: index.header("peer#0") ?? .start
            )
        }
        // The final consensus phase: |λ₂|^K is what it leaves of the disagreement (≤ 1, no trap
        // for any K: the product only shrinks, and stops once negligible).
        let k = topology.plan.consensusRounds
        if k > 0, let modulus = facts.secondEigenvalueModulus, modulus < 1 {
            var left = 1.0
            for _ in 0..<k where left > 1e-300 { left *= modulus }
            if left > Self.consensusRoundsShortfall {
                warning(
                    "consensus_rounds = \(k) shrinks disagreement only about \(Format.number(1 / left))× on this graph (|λ₂| = \(Format.fixed(modulus, decimals: 4))); "
                        + "about \(Format.rounds(rounds)) rounds shrink it 1000×",
                    at: index.entry("plan", "consensus_rounds")?.value ?? planRef ?? .start
                )
            }
        }
        return facts
    }
}

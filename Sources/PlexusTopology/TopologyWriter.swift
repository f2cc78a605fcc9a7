public import PlexusCore
import PlexusCrypto

/// Renders plans and topologies back to TOML (and topologies to Graphviz DOT).
///
/// A rendered file parses back to an equal value with the same plan hash: the writer emits
/// every required plan key and every key whose value differs from its default.
public enum TopologyWriter {
    /// Every plan key and its TOML literal, in ``PlanKeys/all`` order; `isDefault` is true
    /// when the key could be omitted. Optional keys that are unset are absent.
    public static func planEntries(_ plan: Plan) -> [(key: String, value: String, isDefault: Bool)] {
        let defaults = Plan(model: plan.model, rounds: plan.rounds, learningRate: plan.learningRate)
        var entries: [(key: String, value: String, isDefault: Bool)] = []
        func add(_ key: String, _ value: String, _ isDefault: Bool) { entries.append((key, value, isDefault)) }
        add("model", string(plan.model.rawValue), false)
        switch plan.features {
        case .all: add("features", string("all"), true)
        case .columns(let columns): add("features", strings(columns), false)
        }
        add("exclude", strings(plan.exclude), plan.exclude.isEmpty)
        if let label = plan.label { add("label", string(label), false) }
        if let time = plan.time { add("time", string(time), false) }
        if let event = plan.event { add("event", string(event), false) }
        add("missing", string(plan.missing.rawValue), plan.missing == defaults.missing)
        add("hidden", "[" + plan.hidden.map(String.init).joined(separator: ", ") + "]", plan.hidden == defaults.hidden)
        add("rounds", String(plan.rounds), false)
        add("consensus_rounds", String(plan.consensusRounds), plan.consensusRounds == defaults.consensusRounds)
        add("clip_anchor", number(plan.clipAnchor), plan.clipAnchor == defaults.clipAnchor)
        add("local_steps", String(plan.localSteps), plan.localSteps == defaults.localSteps)
        add("learning_rate", number(plan.learningRate), false)
        add("l2", number(plan.l2), plan.l2 == defaults.l2)
        add("optimizer", string(plan.optimizer.rawValue), plan.optimizer == defaults.optimizer)
        add("momentum", number(plan.momentum), plan.momentum == defaults.momentum)
        if let b = plan.batchSize { add("batch_size", String(b), false) }
        add("proximal", number(plan.proximal), plan.proximal == defaults.proximal)
        add("codec", string(plan.codec), plan.codec == defaults.codec)
        add("mixing", string(plan.mixing.rawValue), plan.mixing == defaults.mixing)
        add("consensus_step", number(plan.consensusStep), plan.consensusStep == defaults.consensusStep)
        add("synchrony", string(plan.synchrony.rawValue), plan.synchrony == defaults.synchrony)
        add("round_deadline_ms", String(plan.roundDeadlineMilliseconds), plan.roundDeadlineMilliseconds == defaults.roundDeadlineMilliseconds)
        add("max_staleness", String(plan.maxStaleness), plan.maxStaleness == defaults.maxStaleness)
        add("max_sample_ratio", number(plan.maxSampleRatio), plan.maxSampleRatio == defaults.maxSampleRatio)
        add("ties", string(plan.ties.rawValue), plan.ties == defaults.ties)
        add("seed", String(plan.seed), plan.seed == defaults.seed)
        add("aggregation", string(plan.aggregation.description), plan.aggregation == defaults.aggregation)
        if let privacy = plan.privacy { add("privacy", Self.privacy(privacy), false) }
        return entries
    }

    /// `[plan.privacy]` as an inline table (`privacy = { … }` in `[plan]` reads back the same).
    static func privacy(_ p: Plan.Privacy) -> String {
        var keys = ["delta = \(number(p.delta))", "clip = \(number(p.clip))", "sampling = \(number(p.sampling))"]
        switch p.noise {
        case .multiplier(let sigma): keys.append("noise_multiplier = \(number(sigma))")
        case .epsilon(let epsilon): keys.append("epsilon = \(number(epsilon))")
        }
        if p.stratumSize != 8 { keys.append("stratum_size = \(p.stratumSize)") }
        if p.releasesStatistics {
            let bounds = p.bounds.map { "\(string($0.name)) = [\(number($0.lower)), \(number($0.upper))]" }
            if !bounds.isEmpty { keys.append("bounds = { " + bounds.joined(separator: ", ") + " }") }
            if let d = p.defaultBound { keys.append("default_bound = [\(number(d.lower)), \(number(d.upper))]") }
            if p.statisticsNoiseMultiplier != Plan.Privacy.defaultStatisticsNoiseMultiplier {
                keys.append("statistics_noise_multiplier = \(number(p.statisticsNoiseMultiplier))")
            }
        }
        return "{ " + keys.joined(separator: ", ") + " }"
    }

    /// The `[plan]` table, required keys and non-default keys only.
    public static func plan(_ plan: Plan) -> String {
        var out = "[plan]\n"
        for entry in planEntries(plan) where !entry.isDefault {
            out += "\(entry.key) = \(entry.value)\n"
        }
        return out
    }

    /// A whole topology file. `comment` lines (without `#`) head the file.
    public static func toml(_ topology: Topology, comment: [String] = []) -> String {
        var out = ""
        for line in comment { out += line.isEmpty ? "#\n" : "# \(line)\n" }
        if !comment.isEmpty { out += "\n" }
        out += "[network]\nname = \(string(topology.networkName))\nprotocol = \(topology.protocolVersion)\n\n"
        out += plan(topology.plan)
        for peer in topology.peers {
            out += "\n[[peer]]\nid = \(string(peer.id.rawValue))\nendpoint = \(string(peer.endpoint.description))\n"
            out += "public_key = \(string(peer.publicKey.base64))\n"
            if let pin = peer.samples { out += pin.description + "\n" }
        }
        let explicit = topology.plan.mixing == .explicit
        for link in topology.links {
            out += "\n[[link]]\npeers = [\(string(link.a.rawValue)), \(string(link.b.rawValue))]\n"
            if explicit, let w = link.weight { out += "weight = \(number(w))\n" }
        }
        return out
    }

    /// Graphviz DOT: one node per peer (labelled with its endpoint), one edge per link
    /// (labelled with its weight under explicit mixing).
    public static func dot(_ topology: Topology) -> String {
        var out = "graph \(dotID(topology.networkName)) {\n"
        out += "    graph [overlap=false, splines=true];\n    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        for peer in topology.peers {
            out += "    \(dotID(peer.id.rawValue)) [label=\(dotID("\(peer.id)\n\(peer.endpoint)"))];\n"
        }
        let explicit = topology.plan.mixing == .explicit
        for link in topology.links {
            var line = "    \(dotID(link.a.rawValue)) -- \(dotID(link.b.rawValue))"
            if explicit, let w = link.weight { line += " [label=\(dotID(number(w)))]" }
            out += line + ";\n"
        }
        return out + "}\n"
    }

    /// A TOML basic string.
    static func string(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func strings(_ list: [String]) -> String { "[" + list.map(string).joined(separator: ", ") + "]" }

    /// A TOML float that reads back to exactly `x` (Swift prints the shortest such form).
    public static func number(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        return "\(x)"
    }

    /// A quoted DOT id.
    static func dotID(_ s: String) -> String {
        var out = "\""
        for c in s {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out + "\""
    }
}

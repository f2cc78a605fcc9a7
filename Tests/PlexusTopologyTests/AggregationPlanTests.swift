import PlexusCore
import PlexusTopology
import Testing

/// The `aggregation` plan key: parsing, diagnostics with exact text, the checks against the
/// graph and the other keys, the writer round trip and the plan hash.
@Suite struct AggregationPlanTests {
    static func planSource(_ aggregation: String?) -> String {
        var s = "[plan]\nmodel = \"logistic\"\nlabel = \"y\"\nrounds = 10\nlearning_rate = 0.5\n"
        if let aggregation { s += "aggregation = \(aggregation)\n" }
        return s
    }

    /// A ring a–b–c–d (every closed neighbourhood has 3 members), optionally with a peer `e`
    /// hanging off `a` (closed neighbourhood 2), and extra plan lines.
    static func topologySource(aggregation: String, extraPlan: String = "", pendant: Bool = false) -> String {
        let keys = [
            "EUGXa82ukkbV0zhcMYSRSOedTyTjmr2WBWi5xwlmYzo=", "uj54+dkKB3BDGK3hQcK+0H3Qe9E2oU46fqtb2EBjX0Y=",
            "SpZ4oTo9Q52zvK7xuWc0aoMCVWPWuIn0eR0U8NB1LTQ=", "ESGlIDfsntK/KknU5bmk2rqbn5rEF3NVLNEKoOjy9f8=",
            "+VWhYfxzMJOPxVfjW0rwB6KeNswYBz30UapdFPkCXa8=",
        ]
        let names = pendant ? ["a", "b", "c", "d", "e"] : ["a", "b", "c", "d"]
        var s = "[network]\nname = \"ring\"\nprotocol = 1\n\n"
        s += planSource("\"\(aggregation)\"") + extraPlan
        for (i, name) in names.enumerated() {
            s += "\n[[peer]]\nid = \"\(name)\"\nendpoint = \"10.0.0.\(i + 1):7400\"\npublic_key = \"\(keys[i])\"\n"
        }
        var links = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")]
        if pendant { links.append(("a", "e")) }
        let weighted = extraPlan.contains("explicit")
        for (x, y) in links { s += "\n[[link]]\npeers = [\"\(x)\", \"\(y)\"]\n" + (weighted ? "weight = 0.25\n" : "") }
        return s
    }

    /// Every diagnostic of a plan-only source, as printed.
    static func planDiagnostics(_ source: String) -> [String] {
        do {
            return try PlanFile.parse(source: source, path: "p.toml").warnings.map(\.description)
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    static func topologyDiagnostics(_ source: String) -> (valid: Bool, lines: [String]) {
        do {
            return (true, try Topology.parse(source: source, path: "t.toml", spectralAnalysis: false).warnings.map(\.description))
        } catch {
            return (false, error.diagnostics.map(\.description))
        }
    }

    @Test(arguments: [
        (nil, Plan.Aggregation.mean), ("\"mean\"", .mean), ("\"clipped\"", .clipped), ("\"median\"", .median),
        ("\"trimmed-mean:1\"", .trimmedMean(1)), ("\"trimmed-mean:12\"", .trimmedMean(12)),
    ])
    func goodValues(_ text: String?, _ expected: Plan.Aggregation) throws {
        let (plan, _, warnings) = try PlanFile.parse(source: Self.planSource(text), path: "p.toml")
        #expect(plan.aggregation == expected)
        #expect(warnings.isEmpty)
    }

    @Test(arguments: [
        ("\"avg\"", "p.toml:6:15: error: unknown aggregation 'avg'; expected mean, clipped, trimmed-mean:B or median"),
        ("\"clipd\"", "p.toml:6:15: error: unknown aggregation 'clipd'; expected mean, clipped, trimmed-mean:B or median; did you mean 'clipped'?"),
        ("\"trimmed-man:1\"", "p.toml:6:15: error: unknown aggregation 'trimmed-man:1'; expected mean, clipped, trimmed-mean:B or median; did you mean 'trimmed-mean'?"),
        ("\"trimmed-mean\"", "p.toml:6:15: error: aggregation 'trimmed-mean' needs B, the number of values dropped at each end of every coordinate: write \"trimmed-mean:B\" with an integer B ≥ 1, e.g. \"trimmed-mean:1\""),
        ("\"trimmed-mean:0\"", "p.toml:6:15: error: invalid aggregation 'trimmed-mean:0': B must be an integer ≥ 1, found '0'"),
        ("\"trimmed-mean:-1\"", "p.toml:6:15: error: invalid aggregation 'trimmed-mean:-1': B must be an integer ≥ 1, found '-1'"),
        ("\"trimmed-mean:1.5\"", "p.toml:6:15: error: invalid aggregation 'trimmed-mean:1.5': B must be an integer ≥ 1, found '1.5'"),
        ("\"trimmed-mean:\"", "p.toml:6:15: error: invalid aggregation 'trimmed-mean:': B must be an integer ≥ 1, found ''"),
        ("\"median:2\"", "p.toml:6:15: error: aggregation 'median' takes no parameter, found 'median:2'"),
        ("1", "p.toml:6:15: error: 'aggregation' must be a string, found an integer"),
    ])
    func badValues(_ text: String, _ expected: String) {
        #expect(Self.planDiagnostics(Self.planSource(text)) == [expected])
    }

    @Test func trimLargerThanTheSmallestNeighbourhoodIsATopologyErrorNamingThePeer() {
        let (valid, lines) = Self.topologyDiagnostics(Self.topologySource(aggregation: "trimmed-mean:1", pendant: true))
        #expect(!valid)
        #expect(
            lines == [
                "t.toml:10:15: error: aggregation 'trimmed-mean:1' drops 1 value at each end of every coordinate, so every peer needs at least "
                    + "3 in its neighbourhood (itself and 2 neighbours); too few at peer 'e' (1 neighbour); use \"clipped\" or add links"
            ]
        )
        let (valid2, lines2) = Self.topologyDiagnostics(Self.topologySource(aggregation: "trimmed-mean:2"))
        #expect(!valid2)
        #expect(
            lines2 == [
                "t.toml:10:15: error: aggregation 'trimmed-mean:2' drops 2 values at each end of every coordinate, so every peer needs at least "
                    + "5 in its neighbourhood (itself and 4 neighbours); too few at peer 'a' (2 neighbours), 'b' (2 neighbours), 'c' (2 neighbours), "
                    + "'d' (2 neighbours); use trimmed-mean:1 or fewer"
            ]
        )
        // The largest B that fits every closed neighbourhood of 3 members is accepted.
        let (valid3, lines3) = Self.topologyDiagnostics(Self.topologySource(aggregation: "trimmed-mean:1"))
        #expect(valid3 && lines3.isEmpty, "\(lines3)")
    }

    @Test func robustRulesWarnWhereTheyCannotHelpOrIgnoreAKey() {
        for rule in ["clipped", "median"] {
            let (valid, lines) = Self.topologyDiagnostics(Self.topologySource(aggregation: rule, pendant: true))
            #expect(valid)
            #expect(lines == ["t.toml:10:15: warning: aggregation '\(rule)' cannot protect a peer with a single neighbour (two values have no majority): peer 'e' (1 neighbour)"])
        }
        let (valid, lines) = Self.topologyDiagnostics(Self.topologySource(aggregation: "median", extraPlan: "mixing = \"explicit\"\n"))
        #expect(valid)
        #expect(lines == ["t.toml:10:15: warning: aggregation 'median' gives every member of a neighbourhood one vote: the link weights of mixing = \"explicit\" are not used"])
        // Clipping keeps the weights: no warning; nor for mean, pendant or not.
        #expect(Self.topologyDiagnostics(Self.topologySource(aggregation: "clipped", extraPlan: "mixing = \"explicit\"\n")).lines.isEmpty)
        #expect(Self.topologyDiagnostics(Self.topologySource(aggregation: "mean", pendant: true)).lines.isEmpty)
    }

    @Test(arguments: [Plan.Aggregation.mean, .clipped, .trimmedMean(3), .median])
    func writerRoundTripsAndTheHashCoversTheRule(_ rule: Plan.Aggregation) throws {
        var plan = try PlanFile.parse(source: Self.planSource(nil), path: "p.toml").plan
        plan.aggregation = rule
        let text = TopologyWriter.plan(plan)
        #expect(text.contains("aggregation = \"\(rule)\"") == (rule != .mean), "\(text)")
        let again = try PlanFile.parse(source: text, path: "w.toml")
        #expect(again.plan == plan)
        #expect(again.planHash == PlanHash.hash(plan))
        let others: [Plan.Aggregation] = [.mean, .clipped, .trimmedMean(3), .trimmedMean(4), .median]
        for other in others where other != rule {
            var changed = plan
            changed.aggregation = other
            #expect(PlanHash.hash(changed) != PlanHash.hash(plan), "\(rule) and \(other) hash alike")
        }
    }

    /// Committed vectors, computed outside Swift (Python's hashlib.blake2b over the documented
    /// encoding): the default plan's hash is the one it had before `aggregation` existed, and a
    /// robust rule appends a named entry.
    @Test(arguments: [
        (nil, "7a02886b45d39e6e44761bd33073491a4b6a0204677bbbaebbe7ba1a703106a4"),
        ("\"mean\"", "7a02886b45d39e6e44761bd33073491a4b6a0204677bbbaebbe7ba1a703106a4"),
        ("\"clipped\"", "f522eaf478ca5a18986eebc0e8aeecfd09cb3396e8e3b1d085e515dd2e653139"),
        ("\"trimmed-mean:2\"", "e7e9d21b33e13b428d472241949e733d778dfcb3fddd4bd2ffd416000607edd6"),
        ("\"median\"", "c4dd1a14e9d1a74e854a873d834c9a77007f455e28408f2aaa5a6ba9b01381e4"),
    ])
    func planHashVectors(_ text: String?, _ hex: String) throws {
        let parsed = try PlanFile.parse(source: Self.planSource(text), path: "p.toml")
        #expect(PlanHash.hex(parsed.planHash) == hex)
    }
}

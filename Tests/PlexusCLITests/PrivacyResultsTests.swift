import Foundation
import PlexusCore
import PlexusLog
import PlexusPrivacy
import Testing

extension ProcessSuites {
/// What a private plan spent, where its results are read: `plexus evaluate`'s table (text and
/// JSON) and `plexus report`'s HTML, from the simulator's logs.
@Suite struct PrivacyResultsTests {
    static let topology = repositoryRoot + "/Topologies/consortium-3.toml"
    static let data = repositoryRoot + "/Topologies/data/wdbc.csv"
    static let split = repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json"

    /// consortium-3's plan, 20 rounds, with σ given (so ε is whatever 100 steps cost, not a round target).
    static func plan(private: Bool) -> (toml: String, plan: Plan) {
        var plan = Plan(model: .logistic, rounds: 20, learningRate: 0.1)
        plan.localSteps = 5
        var toml = """
            [plan]
            model = "logistic"
            label = "diagnosis"
            rounds = 20
            local_steps = 5
            learning_rate = 0.1
            l2 = 0.0022
            codec = "lossless"
            mixing = "metropolis"
            seed = 1

            """
        if `private` {
            toml += "\n[plan.privacy]\ndelta = 1e-5\nclip = 1.0\nsampling = 0.1\nnoise_multiplier = 1.3\n"
            plan.privacy = Plan.Privacy(delta: 1e-5, clip: 1, sampling: 0.1, noise: .multiplier(1.3))
        }
        return (toml, plan)
    }

    func arguments(_ command: String, plan toml: String, in directory: String) throws -> [String] {
        try toml.write(toFile: directory + "/plan.toml", atomically: true, encoding: .utf8)
        return [command, "--topology", Self.topology, "--plan", directory + "/plan.toml", "--data", Self.data, "--partition", "split:" + Self.split, "--split", Self.split]
    }

    /// Under `[plan.privacy]` the table has an `epsilon` column: every row — decentralized, and
    /// the centralized and isolated fits, private under the same mechanism — states PlanPrivacy's
    /// ε for the plan's 100 steps; `--json` has the same as a number. Without privacy: no column,
    /// no key.
    @Test func evaluateStatesEpsilonPerRow() throws {
        let directory = temporaryDirectory("evaluate-dp")
        let (toml, plan) = Self.plan(private: true)
        let expected = try PlanPrivacy(plan: plan).epsilon(afterRound: plan.rounds)
        #expect(expected > 0.5 && expected < 5, "\(expected)")
        let text = try plexus(try arguments("evaluate", plan: toml, in: directory), timeout: 300)
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.first { $0.hasPrefix("setting") }, "\(text.stdout)")
        #expect(header.hasSuffix("epsilon"), "\(header)")
        let decentralized = try #require(lines.first { $0.hasPrefix("decentralized") })
        #expect(decentralized.hasSuffix("  " + Format.fixed(expected, decimals: 3)), "\(decentralized), expected ε \(expected)")
        let others = lines.filter { $0.hasPrefix("centralized") || $0.hasPrefix("isolated") }
        #expect(others.count == 4 && others.allSatisfy { $0.hasSuffix("  " + Format.fixed(expected, decimals: 3)) }, "\(others)")
        #expect(text.stdout.contains("the centralized and isolated rows are private too"), "\(text.stdout)")

        let json = try plexus(try arguments("evaluate", plan: toml, in: directory) + ["--json"], timeout: 300)
        #expect(json.status == 0, "\(json.stderr)")
        let rows = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["rows"] as? [[String: Any]])
        #expect(rows.count == 5)
        for row in rows {
            let epsilon = try #require(row["epsilon"] as? Double, "\(row)")
            #expect(abs(epsilon - expected) <= 1e-12 * expected, "\(row["setting"] ?? ""): \(epsilon) vs \(expected)")
        }
        // The record reads back with ε on every row.
        let record = try PlexusJSON.decode(EvaluationRecord.self, from: Array(json.stdout.utf8))
        #expect(record.rows.map { $0.epsilon?.isFinite } == [true, true, true, true, true])

        let (plainToml, _) = Self.plan(private: false)
        let plain = try plexus(try arguments("evaluate", plan: plainToml, in: directory) + ["--json"], timeout: 300)
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(!plain.stdout.contains("epsilon"), "\(plain.stdout)")
        let plainText = try plexus(try arguments("evaluate", plan: plainToml, in: directory), timeout: 300)
        #expect(plainText.status == 0 && !plainText.stdout.contains("epsilon") && !plainText.stdout.contains("∞"), "\(plainText.stdout)")
    }

    /// `plexus report` on a private simulation's logs: the ε chart, one series per site, and each
    /// site's last logged ε in the final table; a non-private run's report has neither.
    @Test func reportChartsTheEpsilonOfAPrivateSimulation() throws {
        for isPrivate in [true, false] {
            let directory = temporaryDirectory("report-dp")
            let (toml, _) = Self.plan(private: isPrivate)
            let simulated = try plexus(try arguments("simulate", plan: toml, in: directory) + ["--log-dir", directory + "/logs"], timeout: 300)
            #expect(simulated.status == 0, "\(simulated.stderr)")
            let report = try plexus(["report", directory + "/logs", "--out", directory + "/report.html"])
            #expect(report.status == 0, "\(report.stderr)")
            let html = try String(contentsOfFile: directory + "/report.html", encoding: .utf8)
            #expect(html.contains("Privacy spent: ε per site") == isPrivate)
            let logs = try ConvergenceLogReader.read(directory: directory + "/logs")
            #expect(logs.count == 3)
            let cells = html.components(separatedBy: "<td class=\"epsilon\">").dropFirst().map { String($0.prefix { $0 != "<" }) }
            if isPrivate {
                let last = logs.map { $0.rounds.last?.privacy?.epsilon ?? -1 }
                #expect(last.allSatisfy { $0 > 0.5 }, "\(last)")
                #expect(cells == last.map { Format.fixed($0, decimals: 3) }, "\(cells) vs \(last)")
                let chart = try #require(html.components(separatedBy: "<svg").first { $0.contains("Privacy spent") })
                #expect(chart.components(separatedBy: "<polyline class=\"series\"").count - 1 == 3)
                for log in logs { #expect(chart.contains("data-name=\"\(log.peer)\"")) }
            } else {
                #expect(cells.isEmpty && !html.contains("ε spent"))
            }
        }
    }
}
}

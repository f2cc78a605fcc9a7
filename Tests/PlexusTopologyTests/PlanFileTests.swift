import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// Paths of fixture files, from the test bundle.
enum Fixtures {
    static func path(_ name: String) -> String {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            Issue.record("the Fixtures folder is missing from the test bundle")
            return "/nonexistent/\(name)"
        }
        return url.appendingPathComponent(name).path
    }

    static func text(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
    }
}

@Suite struct PlanFileTests {
    @Test func loadsPlanOnlyFile() throws {
        let plan = try PlanFile.load(path: Fixtures.path("plans/cox.toml"))
        #expect(plan.model == .cox)
        #expect(plan.exclude == ["pid", "center", "split"])
        #expect(plan.time == "time" && plan.event == "event")
        #expect(plan.rounds == 400 && plan.localSteps == 1)
        #expect(plan.learningRate == 0.5 && plan.l2 == 0.01)
        #expect(plan.codec == "lossless" && plan.mixing == .metropolis && plan.seed == 1)
    }

    @Test func planHashIgnoresLayoutAndExplicitDefaults() throws {
        let a = try PlanFile.read(path: Fixtures.path("plans/cox.toml"))
        let b = try PlanFile.read(path: Fixtures.path("plans/cox-reordered.toml"))
        #expect(a.plan == b.plan)
        #expect(a.planHash == b.planHash)
        #expect(a.planHash.count == 32)
        var changed = a.plan
        changed.rounds = 101
        #expect(PlanHash.hash(changed) != a.planHash)
    }

    @Test func missingFileIsOneClearError() {
        #expect {
            _ = try PlanFile.load(path: "/nonexistent/plan.toml")
        } throws: { error in
            (error as? TopologyError)?.description == "/nonexistent/plan.toml: error: no such file"
        }
    }

    @Test func reportsEveryPlanProblem() {
        let source = """
            [plan]
            model = "coxx"
            round = 10
            learning_rate = -1
            codec = "topk:1.5"
            """
        do {
            _ = try PlanFile.parse(source: source, path: "p.toml")
            Issue.record("expected errors")
        } catch {
            #expect(error.description == """
                p.toml:1:1: error: [plan] is missing 'rounds' (an integer ≥ 1)
                p.toml:2:9: error: unknown model 'coxx'; expected logistic, cox, mlp or deepsurv; did you mean 'cox'?
                p.toml:3:1: error: unknown key 'round' in [plan]; did you mean 'rounds'?
                p.toml:4:17: error: learning_rate must be a finite number > 0, found -1.0
                p.toml:5:9: error: invalid codec 'topk:1.5': top-k fraction '1.5' must be a number in (0, 1], e.g. topk:0.01
                """)
        }
    }
}

/// `ties` in the plan: read, checked, written back, and hashed only when it is not the default,
/// so every existing plan keeps its hash.
@Suite struct TiesPlanKeyTests {
    static let base = """
        [plan]
        model = "cox"
        time = "time"
        event = "event"
        rounds = 10
        learning_rate = 0.5

        """

    @Test func tiesIsReadWrittenAndHashed() throws {
        let plain = try PlanFile.parse(source: Self.base, path: "p.toml")
        let breslow = try PlanFile.parse(source: Self.base + "ties = \"breslow\"\n", path: "p.toml")
        let efron = try PlanFile.parse(source: Self.base + "ties = \"efron\"\n", path: "p.toml")
        #expect(plain.plan.ties == .breslow && efron.plan.ties == .efron)
        #expect(plain.planHash == breslow.planHash)
        #expect(efron.planHash != plain.planHash)
        #expect(TopologyWriter.plan(efron.plan).contains("ties = \"efron\""))
        #expect(!TopologyWriter.plan(plain.plan).contains("ties"))
        let again = try PlanFile.parse(source: TopologyWriter.plan(efron.plan), path: "q.toml")
        #expect(again.planHash == efron.planHash)
    }

    @Test func badTiesIsAnErrorAndTiesOnAClassifierAWarning() throws {
        #expect {
            _ = try PlanFile.parse(source: Self.base + "ties = \"exact\"\n", path: "p.toml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("p.toml:7") && text.contains("ties") && text.contains("efron")
        }
        let classifier = """
            [plan]
            model = "logistic"
            label = "y"
            rounds = 10
            learning_rate = 0.5
            ties = "efron"
            """
        let parsed = try PlanFile.parse(source: classifier, path: "c.toml")
        #expect(parsed.warnings.contains { "\($0)".contains("'ties' is used only by cox and deepsurv") })
    }
}

import Foundation
import PlexusCore
import PlexusLearning
import PlexusPrivacy
import Testing

/// The final model file: everything needed to predict, read back strictly.
@Suite struct SavedModelTests {
    static func temporaryPath(_ name: String) -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("plexus-saved-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent(name).path
    }

    /// `plexus train --save` on gbsg2 (Efron, l2 0.01): the Breslow baseline and the survival of
    /// the CSV's first five rows at 365 and 730 days equal lifelines' (Fixtures/inference.json).
    @Test func gbsg2SurvivalEqualsLifelines() throws {
        let path = Self.temporaryPath("gbsg2.safetensors")
        var options = TrainingOptions(dataPath: TestData.path("gbsg2.csv"), plan: .cox(l2: 0.01, ties: .efron))
        options.savePath = path
        options.planHash = String(repeating: "ab", count: 32)
        _ = try Trainer.run(options)
        let saved = try SavedModel(safetensors: Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(saved.model == .cox && saved.ties == .efron && saved.targets == ["time": "time", "event": "event"])
        #expect(saved.baselineScope == "pooled" && saved.planHash == String(repeating: "ab", count: 32))
        #expect(saved.version == PlexusVersion.current && saved.metadata["plexus.link"] == "log-hazard")
        let baseline = try #require(saved.baseline)
        let fixture = try #require(value(try TestData.json("inference.json"), "gbsg2", "survival") as? [String: Any])
        let h0 = try #require(fixture["baseline_cumulative_hazard"] as? [Double])
        let expected = try #require(fixture["probabilities"] as? [[Double]])
        #expect(abs(baseline.value(at: 365) - h0[0]) <= 1e-6 * h0[0], "H0(365) \(baseline.value(at: 365)) vs \(h0[0])")
        #expect(abs(baseline.value(at: 730) - h0[1]) <= 1e-6 * h0[1], "H0(730) \(baseline.value(at: 730)) vs \(h0[1])")
        #expect(baseline.value(at: -1) == 0 && baseline.value(at: 1e9) == baseline.cumulative.last)
        let table = try TestData.table("gbsg2.csv")
        let columns = saved.featureNames.map { table.header.firstIndex(of: $0)! }
        let raw = (0..<5).flatMap { r in columns.map { Double(table.rows[r][$0])! } }
        let (_, survival) = saved.predict(rawFeatures: raw, rows: 5, times: [365, 730])
        var worst = 0.0
        for r in 0..<5 {
            for k in 0..<2 { worst = max(worst, abs(survival[r][k] - expected[r][k])) }
        }
        print("gbsg2 S(365), S(730) of rows 0-4 vs lifelines: max |Δ| \(worst)")
        #expect(worst <= 1e-6)
    }

    /// Every model type survives encode → decode bit for bit, and the file's Float64 prediction
    /// equals the Float32 model's on the same rows.
    @Test(arguments: [Plan.Model.logistic, .cox, .mlp, .deepsurv])
    func roundTripAndPrediction(model: Plan.Model) throws {
        var plan = model.isSurvival ? Plan.cox() : Plan.logistic()
        plan.model = model
        plan.hidden = [5, 3]
        let raw = try DatasetLoader.load(try TestData.table(model.isSurvival ? "gbsg2.csv" : "wdbc.csv"), plan: plan).dataset
        let standardization = Standardization(fitting: raw)
        let network = makeModel(plan: plan, dimension: raw.dimension)
        let parameters = Trainer.initialParameters(for: network, seed: 3).enumerated().map { $0.element + Float($0.offset % 7) * 0.01 }
        let trained = TrainedModel(model: network, parameters: parameters, standardization: standardization)
        let saved = SavedModel(
            trained: trained, plan: plan, featureNames: raw.featureNames, baseline: SavedModel.breslow(trained, rawRows: raw),
            baselineScope: "pooled", planHash: nil)
        let again = try SavedModel(safetensors: saved.encode())
        #expect(again.parameters.map(\.bitPattern) == parameters.map(\.bitPattern))
        #expect(again.featureNames == raw.featureNames && again.standardization == standardization && again.model == model)
        #expect(again.hidden == (model == .mlp || model == .deepsurv ? [5, 3] : []))
        #expect((again.baseline != nil) == model.isSurvival)
        let rows = min(raw.count, 50)
        let subset = raw.subset(0..<rows)
        let features = subset.features.map(Double.init)
        let (scores, _) = again.predict(rawFeatures: features, rows: rows, times: [])
        let reference = network.predict(parameters: parameters, batch: standardization.applied(to: subset))
        for r in 0..<rows { #expect(abs(scores[r] - Double(reference[r])) <= 1e-4 * max(1, abs(scores[r])), "row \(r)") }
    }

    /// A hostile or foreign file is an error naming what is wrong — never a trap, never an
    /// allocation sized by its numbers.
    @Test func hostileMetadataIsRejected() throws {
        var plan = Plan.cox()
        plan.model = .deepsurv
        plan.hidden = [4]
        let network = makeModel(plan: plan, dimension: 2)
        let trained = TrainedModel(
            model: network, parameters: [Float](repeating: 0.1, count: network.layout.count),
            standardization: Standardization(mean: [0, 1], scale: [1, 2]))
        let good = SavedModel(
            trained: trained, plan: plan, featureNames: ["a", "b"], baseline: BaselineHazard(times: [1, 2], cumulative: [0.1, 0.2]),
            baselineScope: "pooled", planHash: nil)
        let bytes = good.encode()
        _ = try SavedModel(safetensors: bytes)
        let metadata = try Safetensors.metadata(bytes)
        func with(_ key: String, _ value: String?) -> [UInt8] {
            var m = metadata
            m[key] = value
            return Safetensors.encode(good.parameters, layout: network.layout, metadata: m)
        }
        let cases: [(String, String?, String)] = [
            ("plexus.model", nil, "'plexus.model' is missing"),
            ("plexus.model", "forest", "expected one of"),
            ("plexus.format", "2", "format"),
            ("plexus.link", "logit", "'plexus.link'"),
            ("features", #"["a","a"]"#, "distinct"),
            ("features", #"["a"]"#, "for 1 features"),
            ("standardization.scale", "[1, 0]", "scales finite and > 0"),
            ("standardization.mean", #"["x", 1]"#, "not a JSON array of numbers"),
            ("plexus.hidden", "[1000000]", "more parameters than the file holds"),
            ("plexus.hidden", "[4611686018427387904]", "plexus.hidden"),
            ("plexus.hidden", "[9223372036854775807, 9223372036854775807]", "plexus.hidden"),
            ("plexus.hidden", "[]", "one or two widths"),
            ("plexus.activation", "tanh", "expected relu"),
            ("plexus.ties", "exact", "breslow or efron"),
            ("plexus.targets", #"{"label":"y"}"#, "needs time and event"),
            ("plexus.baseline.times", "[2, 1]", "times must increase"),
            ("plexus.baseline.cumulative_hazard", "[0.2, 0.1]", "must not decrease"),
            ("plexus.baseline.cumulative_hazard", "[0.1]", "2 times and 1 values"),
            ("plexus.baseline.times", "[1e999, 2]", "baseline"),
        ]
        for (key, value, expected) in cases {
            #expect(throws: Safetensors.FormatError.self, "\(key) = \(value ?? "nil")") { try SavedModel(safetensors: with(key, value)) }
            do {
                _ = try SavedModel(safetensors: with(key, value))
            } catch {
                #expect(error.description.contains(expected), "\(key) = \(value ?? "nil"): \(error.description)")
            }
        }
        // A metadata value that is not a string, and a truncated file.
        var header = Array(#"{"__metadata__":{"plexus.format":1}}"#.utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        #expect(throws: Safetensors.FormatError.self) { try SavedModel(safetensors: file) }
        file = Array(bytes.prefix(bytes.count - 4))
        #expect(throws: Safetensors.FormatError.self) { try SavedModel(safetensors: file) }
    }

    /// Under `[plan.privacy]` the file states what the run spent: ε (PlanPrivacy's, for every
    /// DP-SGD step of the plan), δ, σ, the steps, q and C, and for Cox the stratum size; they read
    /// back exactly. A model trained without the table carries no `privacy.*` key.
    @Test(arguments: [Plan.Model.logistic, .cox])
    func privateModelCarriesWhatItSpent(model: Plan.Model) throws {
        var plan = model == .cox ? Plan.cox() : Plan.logistic()
        plan.rounds = 40
        plan.localSteps = 5
        let network = makeModel(plan: plan, dimension: 2)
        let trained = TrainedModel(
            model: network, parameters: [Float](repeating: 0.25, count: network.layout.count),
            standardization: Standardization(mean: [0, 1], scale: [1, 2]))
        func saved(_ plan: Plan) -> SavedModel {
            SavedModel(trained: trained, plan: plan, featureNames: ["a", "b"], baseline: nil, baselineScope: nil, planHash: nil)
        }
        let plain = try Safetensors.metadata(saved(plan).encode())
        #expect(saved(plan).privacy == nil && !plain.keys.contains { $0.hasPrefix("privacy.") }, "\(plain.keys.sorted())")
        #expect(try SavedModel(safetensors: saved(plan).encode()).privacy == nil)

        plan.privacy = Plan.Privacy(delta: 1e-5, clip: 0.5, sampling: 0.1, noise: .epsilon(2), stratumSize: 6)
        let resolved = try PlanPrivacy(plan: plan)
        let bytes = saved(plan).encode()
        let metadata = try Safetensors.metadata(bytes)
        let epsilon = try #require(metadata["privacy.epsilon"].flatMap(Double.init))
        // The calibrated budget: just under the target, and what the plan's last round has spent.
        #expect(epsilon == resolved.epsilon(afterRound: plan.rounds) && epsilon <= 2 && epsilon > 1.99, "\(epsilon)")
        #expect(metadata["privacy.delta"] == "1e-05" && metadata["privacy.clip"] == "0.5" && metadata["privacy.sampling"] == "0.1")
        #expect(metadata["privacy.steps"] == "200" && Double(metadata["privacy.noise_multiplier"] ?? "") == resolved.noiseMultiplier)
        #expect(metadata["privacy.stratum_size"] == (model == .cox ? "6" : nil))
        let again = try SavedModel(safetensors: bytes)
        #expect(again.privacy == saved(plan).privacy)
        #expect(again.privacy == ModelPrivacy(
            epsilon: epsilon, delta: 1e-5, noiseMultiplier: resolved.noiseMultiplier, steps: 200, sampling: 0.1, clip: 0.5,
            stratumSize: model == .cox ? 6 : nil))
        // The final consensus rounds take no step and cost nothing.
        plan.consensusRounds = 10
        #expect(saved(plan).privacy?.steps == 150 && saved(plan).privacy!.epsilon < epsilon)

        // Some privacy entries without the others, or one out of range, is an error naming the key.
        func with(_ key: String, _ value: String?) -> [UInt8] {
            var m = metadata
            m[key] = value
            return Safetensors.encode(trained.parameters, layout: network.layout, metadata: m)
        }
        for (key, value, expected) in [
            ("privacy.delta", nil, "'privacy.delta' is missing"), ("privacy.epsilon", "-1", "'privacy.epsilon'"),
            ("privacy.delta", "1", "in (0, 1)"), ("privacy.steps", "2.5", "whole"), ("privacy.sampling", "x", "'privacy.sampling'"),
        ] as [(String, String?, String)] {
            do {
                _ = try SavedModel(safetensors: with(key, value))
                Issue.record("\(key) = \(value ?? "nil") was accepted")
            } catch {
                #expect(error.description.contains(expected), "\(key) = \(value ?? "nil"): \(error.description)")
            }
        }
    }
}

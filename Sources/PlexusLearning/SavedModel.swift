#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
public import PlexusCore
import PlexusPrivacy

/// The Breslow estimate of the baseline cumulative hazard H₀(t) = Σ_{event times tₖ ≤ t} dₖ / Σ_{Tⱼ ≥ tₖ} e^{ηⱼ}
/// (η on the model's standardized scale, so the baseline is that of a covariate vector at the
/// training means): a right-continuous step function, constant after the last event time.
public struct BaselineHazard: Sendable, Hashable, Codable {
    /// The distinct event times, increasing.
    public var times: [Double]
    /// H₀ at each of ``times``, non-decreasing.
    public var cumulative: [Double]

    public init(times: [Double], cumulative: [Double]) {
        self.times = times
        self.cumulative = cumulative
    }

    /// Breslow's estimator from log-risks `eta` of the rows of `data` (survival rows).
    public init(data: Dataset, eta: [Double]) {
        precondition(data.task == .survival && eta.count == data.count, "one log-risk per survival row")
        let n = data.count
        // Decreasing time: risk-set sums by group of tied times, shifted by the running maximum.
        var groups: [(time: Double, events: Int, logRiskSum: Double)] = []
        var shift = -Double.infinity
        var sum = 0.0
        var k = 0
        while k < n {
            let t = data.times[k]
            var end = k
            var groupMax = shift
            while end < n && data.times[end] == t {
                groupMax = max(groupMax, eta[end])
                end += 1
            }
            if groupMax > shift {
                sum = shift == -.infinity ? 0 : sum * exp(shift - groupMax)
                shift = groupMax
            }
            var events = 0
            for r in k..<end {
                sum += exp(eta[r] - shift)
                if data.events[r] != 0 { events += 1 }
            }
            if events > 0 { groups.append((t, events, log(sum) + shift)) }
            k = end
        }
        var times: [Double] = []
        var cumulative: [Double] = []
        var total = 0.0
        for g in groups.reversed() {
            total += Double(g.events) * exp(-g.logRiskSum)
            times.append(g.time)
            cumulative.append(total)
        }
        self.init(times: times, cumulative: cumulative)
    }

    /// H₀(t): the value at the last event time ≤ t, 0 before the first.
    public func value(at t: Double) -> Double {
        let k = StepFunction.count(of: times, atOrBefore: t)
        return k == 0 ? 0 : cumulative[k - 1]
    }
}

/// Right-continuous step functions over sorted times (the Breslow baseline, Kaplan–Meier).
enum StepFunction {
    /// How many of the ascending `times` are ≤ t (a binary search): the step in force at t is
    /// the one at index count − 1, none before the first.
    static func count(of times: [Double], atOrBefore t: Double) -> Int {
        var lo = 0
        var hi = times.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if times[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// A final model as a file carries it: the parameters and everything needed to predict from them
/// without Plexus — what `plexus predict` and the README's numpy snippet read.
///
/// Metadata keys (all values strings, JSON where structured), in the safetensors `__metadata__`:
///
/// | key | value |
/// | --- | --- |
/// | `plexus.format` | `1` |
/// | `plexus.model` | `logistic`, `cox`, `mlp`, `deepsurv` |
/// | `plexus.link` | `logit` (output o, probability σ(o)) or `log-hazard` (o = η, S(t) = exp(−H₀(t)·e^η)) |
/// | `plexus.targets` | `{"label": …}` or `{"time": …, "event": …}` |
/// | `plexus.hidden`, `plexus.activation` | MLP/DeepSurv: hidden widths `[32]`, `relu` |
/// | `plexus.ties` | Cox/DeepSurv: `breslow` or `efron` |
/// | `features`, `standardization.mean`, `standardization.scale` | the input columns, z = (x − mean)/scale |
/// | `plexus.baseline.times`, `plexus.baseline.cumulative_hazard` | Cox/DeepSurv: Breslow H₀ at the event times |
/// | `plexus.baseline.scope` | `pooled` (every training row) or `site` (this node's rows only) |
/// | `plexus.plan_hash`, `plexus.version` | the plan's BLAKE2b-256 (hex) and the Plexus release |
/// | `privacy.epsilon`, `privacy.delta` | under `[plan.privacy]` only (``ModelPrivacy``): the (ε, δ) the run spent per site |
/// | `privacy.noise_multiplier`, `privacy.steps`, `privacy.sampling`, `privacy.clip` | σ, the DP-SGD steps, q and C |
/// | `privacy.stratum_size` | Cox/DeepSurv under `[plan.privacy]`: the mean rows per random stratum (C is per stratum) |
public struct SavedModel: Sendable {
    public var model: Plan.Model
    public var featureNames: [String]
    public var standardization: Standardization
    /// Widths of the hidden layers (MLP, DeepSurv); empty for the linear models.
    public var hidden: [Int]
    public var ties: Plan.Ties
    /// `label` or `time` and `event`.
    public var targets: [String: String]
    public var baseline: BaselineHazard?
    /// `pooled` or `site`.
    public var baselineScope: String?
    public var planHash: String?
    public var version: String?
    public var parameters: [Float]
    /// What training under `[plan.privacy]` spent; `nil` for a model trained without it.
    public var privacy: ModelPrivacy?
    /// Every metadata entry, including any this reader does not interpret.
    public var metadata: [String: String]

    public static let formatVersion = "1"
    /// Bounds a file from outside must respect before anything is allocated by its numbers.
    public static let maxFeatures = 100_000
    public static let maxHiddenWidth = 1_000_000
    public static let maxBaselinePoints = 10_000_000

    public var link: String { model.isSurvival ? "log-hazard" : "logit" }

    public var layoutModel: any Model {
        var plan = Plan(model: model, rounds: 1, learningRate: 1)
        plan.hidden = hidden
        plan.ties = ties
        return makeModel(plan: plan, dimension: featureNames.count)
    }

    public init(
        trained: TrainedModel, plan: Plan, featureNames: [String], baseline: BaselineHazard?, baselineScope: String?,
        planHash: String?
    ) {
        self.model = plan.model
        self.featureNames = featureNames
        self.standardization = trained.standardization
        self.hidden = plan.model == .mlp || plan.model == .deepsurv ? plan.hidden : []
        self.ties = plan.ties
        var targets: [String: String] = [:]
        if plan.model.isSurvival {
            targets["time"] = plan.time
            targets["event"] = plan.event
        } else {
            targets["label"] = plan.label
        }
        self.targets = targets
        self.baseline = baseline
        self.baselineScope = baseline == nil ? nil : baselineScope
        self.planHash = planHash
        self.version = PlexusVersion.current
        self.parameters = trained.parameters
        self.privacy = ModelPrivacy(plan: plan)
        self.metadata = [:]
    }

    /// The Breslow baseline of `trained` from its (raw) training rows.
    public static func breslow(_ trained: TrainedModel, rawRows: Dataset) -> BaselineHazard? {
        guard trained.model.task == .survival, rawRows.count > 0 else { return nil }
        let eta = trained.model.predict(parameters: trained.parameters, batch: trained.standardization.applied(to: rawRows))
        return BaselineHazard(data: rawRows, eta: eta.map(Double.init))
    }

    /// The file: parameters by tensor name and the metadata above.
    public func encode(extraMetadata: [String: String] = [:]) -> [UInt8] {
        func json(_ value: some Encodable) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        }
        var m = extraMetadata
        m["plexus.format"] = Self.formatVersion
        m["plexus.model"] = model.rawValue
        m["plexus.link"] = link
        m["plexus.targets"] = json(targets)
        if !hidden.isEmpty {
            m["plexus.hidden"] = json(hidden)
            m["plexus.activation"] = "relu"
        }
        if model.isSurvival { m["plexus.ties"] = ties.rawValue }
        m["features"] = json(featureNames)
        m["standardization.mean"] = json(standardization.mean)
        m["standardization.scale"] = json(standardization.scale)
        if let baseline {
            m["plexus.baseline.times"] = json(baseline.times)
            m["plexus.baseline.cumulative_hazard"] = json(baseline.cumulative)
            m["plexus.baseline.scope"] = baselineScope ?? "pooled"
        }
        if let planHash { m["plexus.plan_hash"] = planHash }
        m["plexus.version"] = version ?? PlexusVersion.current
        if let privacy { m.merge(privacy.metadata) { _, new in new } }
        return Safetensors.encode(parameters, layout: layoutModel.layout, metadata: m)
    }

    /// Reads a model file written by ``encode(extraMetadata:)``. The file is outside input: every
    /// key is checked (types, lengths, finiteness, order) and no number in it sizes an allocation
    /// before it is bounded by the file's own length.
    public init(safetensors bytes: [UInt8]) throws(Safetensors.FormatError) {
        func fail(_ message: String) -> Safetensors.FormatError { Safetensors.FormatError(description: message) }
        let metadata = try Safetensors.metadata(bytes)
        func string(_ key: String) throws(Safetensors.FormatError) -> String {
            guard let v = metadata[key] else { throw fail("metadata '\(key)' is missing (not a Plexus model file, or one from before format 1)") }
            return v
        }
        func array<T: Decodable>(_ key: String, _ type: T.Type, limit: Int) throws(Safetensors.FormatError) -> [T] {
            let text = try string(key)
            // A JSON array of n values has at least 2n − 1 + 2 bytes: bounded by the limit first.
            guard text.utf8.count <= 64 * limit + 2 else { throw fail("metadata '\(key)' holds more than \(limit) values") }
            guard let values = try? JSONDecoder().decode([T].self, from: Data(text.utf8)) else {
                throw fail("metadata '\(key)' is not a JSON array of \(T.self == String.self ? "strings" : "numbers")")
            }
            guard values.count <= limit else { throw fail("metadata '\(key)' holds \(values.count) values, more than \(limit)") }
            return values
        }
        guard try string("plexus.format") == Self.formatVersion else {
            throw fail("metadata 'plexus.format' is '\(metadata["plexus.format"] ?? "")', this reader knows format \(Self.formatVersion)")
        }
        guard let model = Plan.Model(rawValue: try string("plexus.model")) else {
            throw fail("metadata 'plexus.model' is '\(metadata["plexus.model"] ?? "")', expected one of \(Plan.Model.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let link = try string("plexus.link")
        guard link == (model.isSurvival ? "log-hazard" : "logit") else { throw fail("metadata 'plexus.link' is '\(link)' for a \(model.rawValue) model") }
        let features = try array("features", String.self, limit: Self.maxFeatures)
        guard !features.isEmpty, Set(features).count == features.count else { throw fail("metadata 'features' must name distinct columns") }
        let mean = try array("standardization.mean", Double.self, limit: Self.maxFeatures)
        let scale = try array("standardization.scale", Double.self, limit: Self.maxFeatures)
        guard mean.count == features.count, scale.count == features.count else {
            throw fail("standardization has \(mean.count) means and \(scale.count) scales for \(features.count) features")
        }
        guard mean.allSatisfy(\.isFinite), scale.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw fail("standardization means must be finite and scales finite and > 0")
        }
        var hidden: [Int] = []
        if model == .mlp || model == .deepsurv {
            hidden = try array("plexus.hidden", Int.self, limit: 2)
            guard (1...2).contains(hidden.count), hidden.allSatisfy({ (1...Self.maxHiddenWidth).contains($0) }) else {
                throw fail("metadata 'plexus.hidden' must be one or two widths in 1...\(Self.maxHiddenWidth)")
            }
            guard try string("plexus.activation") == "relu" else { throw fail("metadata 'plexus.activation' is '\(metadata["plexus.activation"] ?? "")', expected relu") }
            // The parameter count, without overflow, must fit in the file before a layout is built.
            var count = 0
            var fanIn = features.count
            for width in hidden + [1] {
                let (w, o1) = width.multipliedReportingOverflow(by: fanIn)
                let (c, o2) = count.addingReportingOverflow(w)
                let (c2, o3) = c.addingReportingOverflow(width)
                guard !o1 && !o2 && !o3, c2 <= bytes.count / 4 else { throw fail("metadata 'plexus.hidden' \(hidden) needs more parameters than the file holds") }
                count = c2
                fanIn = width
            }
        }
        var ties = Plan.Ties.breslow
        var targets: [String: String]
        guard let decodedTargets = try? JSONDecoder().decode([String: String].self, from: Data(try string("plexus.targets").utf8)) else {
            throw fail("metadata 'plexus.targets' is not a JSON object of strings")
        }
        targets = decodedTargets
        var baseline: BaselineHazard?
        if model.isSurvival {
            guard targets["time"] != nil, targets["event"] != nil else { throw fail("metadata 'plexus.targets' of a survival model needs time and event") }
            guard let t = Plan.Ties(rawValue: try string("plexus.ties")) else { throw fail("metadata 'plexus.ties' must be breslow or efron") }
            ties = t
            if metadata["plexus.baseline.times"] != nil || metadata["plexus.baseline.cumulative_hazard"] != nil {
                let times = try array("plexus.baseline.times", Double.self, limit: Self.maxBaselinePoints)
                let cumulative = try array("plexus.baseline.cumulative_hazard", Double.self, limit: Self.maxBaselinePoints)
                guard times.count == cumulative.count else { throw fail("the baseline has \(times.count) times and \(cumulative.count) values") }
                for i in times.indices {
                    guard times[i].isFinite, cumulative[i].isFinite, cumulative[i] >= 0 else { throw fail("baseline entry \(i) is not finite and ≥ 0") }
                    if i > 0 {
                        guard times[i] > times[i - 1], cumulative[i] >= cumulative[i - 1] else {
                            throw fail("baseline entry \(i): times must increase and the cumulative hazard must not decrease")
                        }
                    }
                }
                baseline = BaselineHazard(times: times, cumulative: cumulative)
            }
        } else {
            guard targets["label"] != nil else { throw fail("metadata 'plexus.targets' of a classifier needs label") }
        }
        self.model = model
        self.featureNames = features
        self.standardization = Standardization(mean: mean, scale: scale)
        self.hidden = hidden
        self.ties = ties
        self.targets = targets
        self.baseline = baseline
        self.baselineScope = baseline == nil ? nil : metadata["plexus.baseline.scope"]
        self.planHash = metadata["plexus.plan_hash"]
        self.version = metadata["plexus.version"]
        self.metadata = metadata
        self.privacy = try ModelPrivacy(metadata: metadata)
        self.parameters = []
        self.parameters = try Safetensors.decode(bytes, layout: layoutModel.layout).parameters
    }

    /// What the model says about raw rows (`features`: row-major, in ``featureNames`` order), in
    /// Float64 from the Float32 parameters: classifiers give the probability of class 1; survival
    /// models the log-risk η and, with a baseline, S(t) = exp(−H₀(t)·e^η) at each of `times`.
    public func predict(rawFeatures: [Double], rows: Int, times: [Double]) -> (scores: [Double], survival: [[Double]]) {
        let d = featureNames.count
        precondition(rawFeatures.count == rows * d, "rows × features values")
        let layout = layoutModel.layout
        func tensor(_ name: String) -> ArraySlice<Float> { parameters[layout[name]!.range] }
        var scores = [Double](repeating: 0, count: rows)
        var z = [Double](repeating: 0, count: d)
        for r in 0..<rows {
            for j in 0..<d { z[j] = (rawFeatures[r * d + j] - standardization.mean[j]) / standardization.scale[j] }
            var output: Double
            switch model {
            case .logistic, .cox:
                let w = tensor("weight")
                output = 0
                for (j, wj) in zip(0..<d, w) { output += Double(wj) * z[j] }
                if model == .logistic { output += Double(tensor("bias").first!) }
            case .mlp, .deepsurv:
                var a = z
                for (l, width) in hidden.enumerated() {
                    let w = Array(tensor("hidden\(l + 1).weight"))
                    let b = Array(tensor("hidden\(l + 1).bias"))
                    let fanIn = a.count
                    var next = [Double](repeating: 0, count: width)
                    for i in 0..<width {
                        var sum = Double(b[i])
                        for j in 0..<fanIn { sum += Double(w[i * fanIn + j]) * a[j] }
                        next[i] = max(sum, 0)
                    }
                    a = next
                }
                let w = Array(tensor("output.weight"))
                output = 0
                for j in 0..<a.count { output += Double(w[j]) * a[j] }
                if model == .mlp { output += Double(tensor("output.bias").first!) }
            }
            scores[r] = model.isSurvival ? output : 1 / (1 + exp(-output))
        }
        guard model.isSurvival, let baseline, !times.isEmpty else { return (scores, []) }
        let h = times.map { baseline.value(at: $0) }
        // Before the first event time H₀ = 0 and S = 1, even where e^η overflows (0·∞ is NaN).
        return (scores, scores.map { eta in h.map { $0 == 0 ? 1 : exp(-$0 * exp(eta)) } })
    }
}

/// What a model's training under `[plan.privacy]` spent, per site, as its file carries it
/// (``SavedModel``'s `privacy.*` keys): ε at δ for all of the plan's DP-SGD steps (a node writes
/// its model when its plan's last round is done, so this is the ε spent by the end of the run),
/// and the mechanism's parameters. ε is ``PlanPrivacy/epsilon``: what it covers is what that covers.
public struct ModelPrivacy: Sendable, Hashable {
    public var epsilon: Double
    public var delta: Double
    /// σ.
    public var noiseMultiplier: Double
    /// DP-SGD steps per site over the run.
    public var steps: Int
    /// q.
    public var sampling: Double
    /// C: per row, or per random stratum when ``stratumSize`` is set.
    public var clip: Double
    /// Cox, DeepSurv: the mean rows per random stratum; `nil` for per-row clipping.
    public var stratumSize: Int?

    public init(epsilon: Double, delta: Double, noiseMultiplier: Double, steps: Int, sampling: Double, clip: Double, stratumSize: Int?) {
        self.epsilon = epsilon
        self.delta = delta
        self.noiseMultiplier = noiseMultiplier
        self.steps = steps
        self.sampling = sampling
        self.clip = clip
        self.stratumSize = stratumSize
    }

    /// What `plan` spends by its end; `nil` without `[plan.privacy]` (or for a plan whose budget
    /// no noise multiplier reaches, which no node runs).
    public init?(plan: Plan) {
        guard plan.privacy != nil, let resolved = try? PlanPrivacy(plan: plan) else { return nil }
        self.init(
            epsilon: resolved.epsilon(afterRound: plan.rounds), delta: resolved.privacy.delta, noiseMultiplier: resolved.noiseMultiplier,
            steps: resolved.steps, sampling: resolved.privacy.sampling, clip: resolved.privacy.clip,
            stratumSize: resolved.stratified ? resolved.privacy.stratumSize : nil)
    }

    /// The `privacy.*` metadata entries (numbers as Swift prints them, which read back exactly;
    /// an infinite ε as `inf`).
    public var metadata: [String: String] {
        var m = [
            "privacy.epsilon": "\(epsilon)", "privacy.delta": "\(delta)", "privacy.noise_multiplier": "\(noiseMultiplier)",
            "privacy.steps": "\(steps)", "privacy.sampling": "\(sampling)", "privacy.clip": "\(clip)",
        ]
        if let stratumSize { m["privacy.stratum_size"] = "\(stratumSize)" }
        return m
    }

    /// Reads the entries back: `nil` when the file has none; an error when it has some but not
    /// all, or one that is not a number in its range.
    public init?(metadata: [String: String]) throws(Safetensors.FormatError) {
        let keys = ["privacy.epsilon", "privacy.delta", "privacy.noise_multiplier", "privacy.steps", "privacy.sampling", "privacy.clip"]
        guard metadata.keys.contains(where: { $0.hasPrefix("privacy.") }) else { return nil }
        func fail(_ message: String) -> Safetensors.FormatError { Safetensors.FormatError(description: message) }
        func number(_ key: String, _ valid: (Double) -> Bool, _ range: String) throws(Safetensors.FormatError) -> Double {
            guard let text = metadata[key] else { throw fail("metadata '\(key)' is missing (the file has other privacy entries: \(keys.joined(separator: ", ")) go together)") }
            guard text.utf8.count <= 64, let value = Double(text), valid(value) else { throw fail("metadata '\(key)' is '\(text.prefix(64))', expected a number \(range)") }
            return value
        }
        func count(_ key: String) throws(Safetensors.FormatError) -> Int {
            let value = try number(key, { $0 >= 0 && $0 <= Double(Int32.max) && $0 == $0.rounded() }, "in 0...\(Int32.max), whole")
            return Int(value)
        }
        self.init(
            epsilon: try number("privacy.epsilon", { $0 >= 0 }, "≥ 0 (inf allowed)"),
            delta: try number("privacy.delta", { $0 > 0 && $0 < 1 }, "in (0, 1)"),
            noiseMultiplier: try number("privacy.noise_multiplier", { $0.isFinite && $0 > 0 }, "finite and > 0"),
            steps: try count("privacy.steps"),
            sampling: try number("privacy.sampling", { $0 > 0 && $0 <= 1 }, "in (0, 1]"),
            clip: try number("privacy.clip", { $0.isFinite && $0 > 0 }, "finite and > 0"),
            stratumSize: metadata["privacy.stratum_size"] == nil ? nil : try count("privacy.stratum_size"))
    }
}

/// `plexus predict` as a library call: a saved model applied to the rows of a CSV file, its
/// feature columns matched by name.
public struct Predictions: Sendable {
    /// `row` (the 0-based data row, as split files count), then `probability` (classifiers) or
    /// `risk` (the log-risk η) and `survival_at_T` per requested time.
    public var header: [String]
    /// One entry per data row: its index, then the values of ``header``'s other columns.
    public var rows: [(row: Int, values: [Double])]

    /// - Throws: ``DataError`` naming the file, line and column of a missing column or a cell that
    ///   is not a finite number; a request for survival times from a model that cannot give them.
    public init(model: SavedModel, table: CSVTable, times: [Double]) throws(DataError) {
        let columns = try model.featureNames.map { (name: String) throws(DataError) -> Int in
            try table.columnIndex(name, role: "feature of the model")
        }
        if !times.isEmpty {
            guard model.model.isSurvival else {
                throw DataError(.badPlan, file: table.file, "--times needs a survival model; this one is \(model.model.rawValue)")
            }
            guard model.baseline != nil else {
                throw DataError(.badPlan, file: table.file, "the model carries no baseline hazard, so it predicts risks but no survival probabilities")
            }
        }
        let d = columns.count
        var features = [Double](repeating: 0, count: table.rows.count * d)
        for (r, row) in table.rows.enumerated() {
            for (j, c) in columns.enumerated() {
                let text = row[c].trimmingCharacters(in: .whitespaces)
                guard let value = Double(text), value.isFinite else {
                    throw DataError(
                        .notNumeric, file: table.file, line: table.lines[r], column: c + 1,
                        "value '\(row[c])' in feature column '\(table.header[c])' is not a finite number")
                }
                features[r * d + j] = value
            }
        }
        let (scores, survival) = model.predict(rawFeatures: features, rows: table.rows.count, times: times)
        header = ["row", model.model.isSurvival ? "risk" : "probability"] + times.map { "survival_at_\(Self.format($0))" }
        rows = scores.indices.map { r in (r, [scores[r]] + (survival.isEmpty ? [] : survival[r])) }
    }

    /// The table as CSV: every value in Swift's shortest round-trip form.
    public var csv: String {
        var out = header.joined(separator: ",") + "\n"
        for row in rows { out += ([String(row.row)] + row.values.map { "\($0)" }).joined(separator: ",") + "\n" }
        return out
    }

    /// `365` for whole numbers, else the shortest form.
    public static func format(_ t: Double) -> String {
        t == t.rounded() && abs(t) < 1e15 ? String(Int(t)) : "\(t)"
    }
}

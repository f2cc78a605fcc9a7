public import PlexusCore
import PlexusCodec
import TOMLKit

/// The keys of the `[plan]` table, their TOML types, defaults and bounds.
///
/// | key | type | default | bounds |
/// | --- | --- | --- | --- |
/// | `model` | string | required | `logistic`, `cox`, `mlp`, `deepsurv` |
/// | `features` | `"all"` or array of strings | `"all"` | a list is non-empty, no duplicates |
/// | `exclude` | array of strings | `[]` | |
/// | `label` | string | none | required by `logistic` and `mlp` |
/// | `time`, `event` | string | none | required by `cox` and `deepsurv` |
/// | `missing` | string | `"error"` | `error`, `drop-row` |
/// | `hidden` | array of integers | `[32]` | 1 or 2 layers, each 1–65536 |
/// | `rounds` | integer | required | 1–10 000 000 |
/// | `consensus_rounds` | integer | 0 | 0 to `rounds` − 1: the last ones take no local step |
/// | `local_steps` | integer | 1 | 1–1 000 000 |
/// | `learning_rate` | number | required | > 0, finite |
/// | `l2` | number | 0 | ≥ 0, finite |
/// | `optimizer` | string | `"sgd"` | `sgd`, `adam` |
/// | `momentum` | number | 0 | [0, 1) |
/// | `batch_size` | integer | full batch | ≥ 1 |
/// | `proximal` | number | 0 | ≥ 0, finite |
/// | `codec` | string | `"lossless"` | PlexusCodec's `CodecSpec` grammar; stored in canonical form |
/// | `mixing` | string | `"metropolis"` | `metropolis`, `explicit` |
/// | `consensus_step` | number | 1 | (0, 1] |
/// | `synchrony` | string | `"synchronous"` | `synchronous`, `asynchronous` |
/// | `round_deadline_ms` | integer | 10000 | 1–86 400 000 |
/// | `max_staleness` | integer | 5 | 0–1 000 000 |
/// | `seed` | integer | 1 | 0 – 2⁶³−1 |
/// | `max_sample_ratio` | number | 4 | 0 (no bound) or 1–1 000 000 |
/// | `clip_anchor` | number | 0 | 0 (off) or (0, 1000]: under `clipped`, τ ≤ this × the peer's own last local step |
/// | `ties` | string | `"breslow"` | `breslow`, `efron` (`cox`, `deepsurv`) |
/// | `aggregation` | string | `"mean"` | `mean`, `clipped`, `trimmed-mean:B` (B ≥ 1, 2B+1 ≤ every closed neighbourhood), `median` |
/// | `privacy` | table | none | ``PrivacyKeys`` |
public enum PlanKeys {
    /// Every key the `[plan]` table accepts, in documentation (and canonical encoding) order.
    public static let all: [String] = [
        "model", "features", "exclude", "label", "time", "event", "missing", "hidden", "rounds", "local_steps",
        "learning_rate", "l2", "optimizer", "momentum", "batch_size", "proximal", "codec", "mixing",
        "consensus_step", "synchrony", "round_deadline_ms", "max_staleness", "seed", "aggregation", "max_sample_ratio",
        "consensus_rounds", "clip_anchor",
        "ties",
        "privacy",
    ]

    public static let maximumRounds = 10_000_000
    public static let maximumLocalSteps = 1_000_000
    public static let maximumHiddenWidth = 65_536
    public static let maximumRoundDeadlineMilliseconds = 86_400_000
    public static let maximumStaleness = 1_000_000
    public static let maximumSampleRatio = 1_000_000.0
    public static let maximumClipAnchor = 1000.0

    /// `text` as an `aggregation` value, or the message the parser reports for it (for
    /// command-line overrides).
    public static func aggregation(_ text: String) -> Result<Plan.Aggregation, TopologyError> {
        switch Plan.Aggregation.parse(text) {
        case .success(let rule): return .success(rule)
        case .failure(let problem):
            return .failure(TopologyError(diagnostics: [Diagnostic(.error, Reader.aggregationProblem(text, problem), path: "--aggregation", at: .file)]))
        }
    }
}

/// The keys of the `[plan.privacy]` table (also written inline: `privacy = { … }`).
///
/// | key | type | bounds |
/// | --- | --- | --- |
/// | `delta` | number | required, in (0, 1) |
/// | `clip` | number | required, > 0, finite |
/// | `sampling` | number | required, in (0, 1] |
/// | `noise_multiplier` | number | > 0, ≤ 10 000; exactly one of it and `epsilon` |
/// | `epsilon` | number | > 0, ≤ 1 000 |
/// | `stratum_size` | integer | 8; 1–100 000 (Cox and DeepSurv: mean rows per random stratum) |
/// | `bounds` | table | none; `[plan.privacy.bounds]`: feature name = `[lower, upper]`, finite, lower < upper |
/// | `default_bound` | array | none; `[lower, upper]` of every feature `bounds` does not name |
/// | `statistics_noise_multiplier` | number | 5; > 0, ≤ 10 000 (σ_s of the statistics release; needs bounds) |
public enum PrivacyKeys {
    public static let all = ["delta", "clip", "sampling", "noise_multiplier", "epsilon", "stratum_size", "bounds", "default_bound", "statistics_noise_multiplier"]
    public static let maximumStratumSize = 100_000
    public static let maximumNoiseMultiplier = 10_000.0
    public static let maximumEpsilon = 1_000.0
}

extension Reader {
    /// Reads `[plan.privacy]`; nil (with every problem reported) when it is invalid.
    mutating func privacy(_ t: TableRef, plan: Plan) -> Plan.Privacy? {
        checkKeys(t, known: PrivacyKeys.all)
        let before = diagnostics.diagnostics.filter { $0.severity == .error }.count
        var delta = number(t, "delta", required: "a number in (0, 1), e.g. 1e-5")
        if let d = delta, !(d > 0 && d < 1) {
            error("delta must be in (0, 1), found \(d)", at: valuePosition(t, "delta"))
            delta = nil
        }
        var clip = number(t, "clip", required: "a number > 0, the bound on each row's gradient norm")
        if let c = clip, !(c.isFinite && c > 0) {
            error("clip must be a finite number > 0, found \(c)", at: valuePosition(t, "clip"))
            clip = nil
        }
        var sampling = number(t, "sampling", required: "a number in (0, 1], each row's probability of entering a batch")
        if let q = sampling, !(q > 0 && q <= 1) {
            error("sampling must be in (0, 1], found \(q)", at: valuePosition(t, "sampling"))
            sampling = nil
        }
        var noise: Plan.Privacy.Noise?
        let sigma = number(t, "noise_multiplier")
        let epsilon = number(t, "epsilon")
        switch (sigma, epsilon) {
        case (let s?, nil):
            if s > 0 && s <= PrivacyKeys.maximumNoiseMultiplier {
                noise = .multiplier(s)
            } else {
                error("noise_multiplier must be > 0 and at most \(Int(PrivacyKeys.maximumNoiseMultiplier)), found \(s)", at: valuePosition(t, "noise_multiplier"))
            }
        case (nil, let e?):
            if e > 0 && e <= PrivacyKeys.maximumEpsilon {
                noise = .epsilon(e)
            } else {
                error("epsilon must be > 0 and at most \(Int(PrivacyKeys.maximumEpsilon)), found \(e)", at: valuePosition(t, "epsilon"))
            }
        case (_?, _?):
            error("give either 'noise_multiplier' or 'epsilon' (the target from which σ is computed), not both", at: keyPosition(t, "epsilon"))
        case (nil, nil):
            if t.table["noise_multiplier"] == nil && t.table["epsilon"] == nil {
                error("\(t.displayName) needs 'epsilon' (the budget each site may spend, e.g. 8) or 'noise_multiplier' (σ)", at: headerPosition(t))
            }
        }
        var stratumSize = 8
        if let n = integer(t, "stratum_size") {
            if (1...PrivacyKeys.maximumStratumSize).contains(n) {
                stratumSize = n
                if !plan.model.isSurvival {
                    warning("'stratum_size' is used only by cox and deepsurv (random strata); model '\(plan.model.rawValue)' clips each row", at: keyPosition(t, "stratum_size"))
                }
            } else {
                error("stratum_size must be from 1 to \(PrivacyKeys.maximumStratumSize), found \(n)", at: valuePosition(t, "stratum_size"))
            }
        }
        var bounds: [Plan.FeatureBound] = []
        if let value = t.table["bounds"] {
            if let table = value.table {
                let ref = TableRef(table: table, section: t.section + ".bounds", displayName: "[\(t.section).bounds]", origin: valuePosition(t, "bounds"))
                bounds = featureBounds(ref)
                if bounds.isEmpty && table.keys.isEmpty {
                    error("\(ref.displayName) is empty: name each feature with its [lower, upper], or leave the table out", at: headerPosition(ref))
                }
            } else {
                wrongType(t, "bounds", expected: "a table of feature = [lower, upper]", found: value.type)
            }
        }
        var defaultBound: Plan.FeatureBound?
        if t.table["default_bound"] != nil {
            defaultBound = bound(t, "default_bound", label: "default_bound", name: "")
        }
        var statisticsSigma = Plan.Privacy.defaultStatisticsNoiseMultiplier
        if let s = number(t, "statistics_noise_multiplier") {
            if s > 0 && s <= PrivacyKeys.maximumNoiseMultiplier {
                statisticsSigma = s
                if t.table["bounds"] == nil && t.table["default_bound"] == nil {
                    warning("'statistics_noise_multiplier' is used only with [plan.privacy.bounds]; without bounds the statistics are released exactly", at: keyPosition(t, "statistics_noise_multiplier"))
                }
            } else {
                error("statistics_noise_multiplier must be > 0 and at most \(Int(PrivacyKeys.maximumNoiseMultiplier)), found \(s)", at: valuePosition(t, "statistics_noise_multiplier"))
            }
        }
        let after = diagnostics.diagnostics.filter { $0.severity == .error }.count
        guard let delta, let clip, let sampling, let noise, after == before else { return nil }
        return Plan.Privacy(
            delta: delta, clip: clip, sampling: sampling, noise: noise, stratumSize: stratumSize, bounds: bounds, statisticsNoiseMultiplier: statisticsSigma,
            defaultBound: defaultBound
        )
    }

    /// Reads `[plan.privacy.bounds]`: each key a feature, each value `[lower, upper]`.
    mutating func featureBounds(_ t: TableRef) -> [Plan.FeatureBound] {
        t.table.keys.sorted().compactMap { bound(t, $0, label: "bound '\($0)'", name: $0) }
    }

    /// `t[key]` as `[lower, upper]`, finite, lower < upper; nil after reporting what is wrong.
    mutating func bound(_ t: TableRef, _ key: String, label: String, name: String) -> Plan.FeatureBound? {
        guard let array = t.table[key]?.array else {
            error("\(label) must be [lower, upper], found \(Self.kind(t.table[key]!.type))", at: valuePosition(t, key))
            return nil
        }
        var values: [Double] = []
        for i in 0..<array.count {
            if let d = array[i].double { values.append(d) } else if let n = array[i].int { values.append(Double(n)) }
        }
        guard array.count == 2, values.count == 2 else {
            error("\(label) must be two numbers [lower, upper], found \(array.count) element\(array.count == 1 ? "" : "s")\(values.count == array.count ? "" : " that are not all numbers")", at: valuePosition(t, key))
            return nil
        }
        guard values.allSatisfy({ $0.isFinite && abs($0) <= 1e15 }), values[0] < values[1] else {
            error("\(label) must have finite lower < upper (|value| ≤ 10¹⁵), found [\(values[0]), \(values[1])]", at: valuePosition(t, key))
            return nil
        }
        return Plan.FeatureBound(name: name, lower: values[0], upper: values[1])
    }

    /// Reads `[plan]`, reporting every problem. Returns `nil` when a required key is missing or
    /// any plan key is invalid.
    mutating func plan(_ t: TableRef) -> Plan? {
        checkKeys(t, known: PlanKeys.all)
        let before = diagnostics.diagnostics.filter { $0.severity == .error }.count

        let model = choice(t, "model", Plan.Model.self, required: "logistic, cox, mlp or deepsurv")
        var rounds = integer(t, "rounds", required: "an integer ≥ 1")
        if let r = rounds, !(1...PlanKeys.maximumRounds).contains(r) {
            error("rounds must be from 1 to \(PlanKeys.maximumRounds), found \(r)", at: valuePosition(t, "rounds"))
            rounds = nil
        }
        var learningRate = number(t, "learning_rate", required: "a number > 0")
        if let lr = learningRate, !(lr.isFinite && lr > 0) {
            error("learning_rate must be a finite number > 0, found \(lr)", at: valuePosition(t, "learning_rate"))
            learningRate = nil
        }
        var plan = Plan(model: model ?? .logistic, rounds: rounds ?? 1, learningRate: learningRate ?? 1)

        if let v = t.table["features"] {
            if let s = v.string {
                if s == "all" {
                    plan.features = .all
                } else {
                    error("features must be \"all\" or an array of column names, found \"\(s)\"", at: valuePosition(t, "features"))
                }
            } else if let array = v.array {
                if let columns = strings(of: array, t, "features") {
                    if columns.isEmpty {
                        error("features must list at least one column (or be \"all\")", at: valuePosition(t, "features"))
                    }
                    checkColumns(columns, t, "features")
                    plan.features = .columns(columns)
                }
            } else {
                wrongType(t, "features", expected: "\"all\" or an array of strings", found: v.type)
            }
        }
        if let exclude = stringArray(t, "exclude") {
            checkColumns(exclude, t, "exclude")
            plan.exclude = exclude
        }
        for key in ["label", "time", "event"] {
            guard let column = string(t, key) else { continue }
            if column.isEmpty {
                error("'\(key)' must name a column, found an empty string", at: valuePosition(t, key))
                continue
            }
            switch key {
            case "label": plan.label = column
            case "time": plan.time = column
            default: plan.event = column
            }
        }
        if let missing = choice(t, "missing", Plan.MissingValues.self) { plan.missing = missing }
        if let ties = choice(t, "ties", Plan.Ties.self) { plan.ties = ties }
        if let hidden = integerArray(t, "hidden") {
            if hidden.isEmpty || hidden.count > 2 {
                error("hidden must list 1 or 2 layer widths, found \(hidden.count)", at: valuePosition(t, "hidden"))
            } else {
                var ok = true
                for (i, width) in hidden.enumerated() where !(1...PlanKeys.maximumHiddenWidth).contains(width) {
                    error("hidden layer width must be from 1 to \(PlanKeys.maximumHiddenWidth), found \(width)", at: elementPosition(t, "hidden", i))
                    ok = false
                }
                if ok { plan.hidden = hidden }
            }
        }
        if let n = integer(t, "consensus_rounds") {
            if let r = rounds, !(0..<r).contains(n) {
                error(
                    "consensus_rounds must be from 0 to \(r - 1) (fewer than rounds = \(r): at least one round trains), found \(n)",
                    at: valuePosition(t, "consensus_rounds")
                )
            } else if n < 0 {
                error("consensus_rounds must be ≥ 0, found \(n)", at: valuePosition(t, "consensus_rounds"))
            } else {
                plan.consensusRounds = n
            }
        }
        if let n = integer(t, "local_steps") {
            if (1...PlanKeys.maximumLocalSteps).contains(n) {
                plan.localSteps = n
            } else {
                error("local_steps must be from 1 to \(PlanKeys.maximumLocalSteps), found \(n)", at: valuePosition(t, "local_steps"))
            }
        }
        if let x = number(t, "l2") {
            if x.isFinite && x >= 0 { plan.l2 = x } else { error("l2 must be a finite number ≥ 0, found \(x)", at: valuePosition(t, "l2")) }
        }
        if let o = choice(t, "optimizer", Plan.Optimizer.self) { plan.optimizer = o }
        if let x = number(t, "momentum") {
            if x >= 0 && x < 1 { plan.momentum = x } else { error("momentum must be in [0, 1), found \(x)", at: valuePosition(t, "momentum")) }
        }
        if let n = integer(t, "batch_size") {
            if n >= 1 { plan.batchSize = n } else { error("batch_size must be ≥ 1, found \(n)", at: valuePosition(t, "batch_size")) }
        }
        if let x = number(t, "proximal") {
            if x.isFinite && x >= 0 {
                plan.proximal = x
            } else {
                error("proximal must be a finite number ≥ 0, found \(x)", at: valuePosition(t, "proximal"))
            }
        }
        if let codec = string(t, "codec") {
            do {
                plan.codec = try CodecSpec(parsing: codec).description
            } catch {
                let message = error.message.hasPrefix("unknown codec") ? error.message : "invalid codec '\(codec)': \(error.message)"
                self.error(message, at: valuePosition(t, "codec"))
            }
        }
        if let m = choice(t, "mixing", Plan.Mixing.self) { plan.mixing = m }
        if let x = number(t, "consensus_step") {
            if x > 0 && x <= 1 {
                plan.consensusStep = x
            } else {
                error("consensus_step must be in (0, 1], found \(x)", at: valuePosition(t, "consensus_step"))
            }
        }
        if let s = choice(t, "synchrony", Plan.Synchrony.self) { plan.synchrony = s }
        if let n = integer(t, "round_deadline_ms") {
            if (1...PlanKeys.maximumRoundDeadlineMilliseconds).contains(n) {
                plan.roundDeadlineMilliseconds = n
            } else {
                error("round_deadline_ms must be from 1 to \(PlanKeys.maximumRoundDeadlineMilliseconds), found \(n)", at: valuePosition(t, "round_deadline_ms"))
            }
        }
        if let n = integer(t, "max_staleness") {
            if (0...PlanKeys.maximumStaleness).contains(n) {
                plan.maxStaleness = n
            } else {
                error("max_staleness must be from 0 to \(PlanKeys.maximumStaleness), found \(n)", at: valuePosition(t, "max_staleness"))
            }
        }
        if let x = number(t, "max_sample_ratio") {
            if x == 0 || (x >= 1 && x <= PlanKeys.maximumSampleRatio) {
                plan.maxSampleRatio = x
            } else {
                error("max_sample_ratio must be 0 (no bound) or from 1 to 1000000 (a multiple of the median count), found \(x)", at: valuePosition(t, "max_sample_ratio"))
            }
        }
        if let x = number(t, "clip_anchor") {
            if x == 0 || (x > 0 && x <= PlanKeys.maximumClipAnchor) {
                plan.clipAnchor = x
            } else {
                error(
                    "clip_anchor must be 0 (no bound) or a number in (0, 1000] (a multiple of the peer's own last local step), found \(x)",
                    at: valuePosition(t, "clip_anchor")
                )
            }
        }
        if let n = integer(t, "seed") {
            if n >= 0 { plan.seed = UInt64(n) } else { error("seed must be ≥ 0, found \(n)", at: valuePosition(t, "seed")) }
        }

        if let text = string(t, "aggregation") {
            switch Plan.Aggregation.parse(text) {
            case .success(let rule): plan.aggregation = rule
            case .failure(let problem):
                error(Self.aggregationProblem(text, problem), at: valuePosition(t, "aggregation"))
            }
        }

        if let value = t.table["privacy"] {
            if let table = value.table {
                let ref = TableRef(table: table, section: t.section + ".privacy", displayName: "[\(t.section).privacy]", origin: valuePosition(t, "privacy"))
                plan.privacy = privacy(ref, plan: plan)
                if t.table["batch_size"] != nil {
                    warning("'batch_size' is not used under [plan.privacy]: each step's batch is a Poisson sample at rate 'sampling'", at: keyPosition(t, "batch_size"))
                }
            } else {
                wrongType(t, "privacy", expected: "a table ([plan.privacy])", found: value.type)
            }
        }

        if let model { checkTargets(plan, model: model, t) }
        let after = diagnostics.diagnostics.filter { $0.severity == .error }.count
        guard model != nil, rounds != nil, learningRate != nil, after == before else { return nil }
        return plan
    }

    /// The message for an `aggregation` value that is not a rule.
    static func aggregationProblem(_ text: String, _ problem: Plan.Aggregation.ParseProblem) -> String {
        switch problem {
        case .unknown:
            let name = String(text.prefix { $0 != ":" })
            let known = ["mean", "clipped", "trimmed-mean", "median"]
            return "unknown aggregation '\(text)'; expected \(list(Plan.Aggregation.names))\(didYouMean(name, among: known))"
        case .missingTrim:
            return "aggregation 'trimmed-mean' needs B, the number of values dropped at each end of every coordinate: write \"trimmed-mean:B\" with an integer B ≥ 1, e.g. \"trimmed-mean:1\""
        case .badTrim(let b):
            return "invalid aggregation '\(text)': B must be an integer ≥ 1, found '\(b)'"
        case .unexpectedParameter(let rule):
            return "aggregation '\(rule)' takes no parameter, found '\(text)'"
        }
    }

    private mutating func checkColumns(_ columns: [String], _ t: TableRef, _ key: String) {
        var seen: Set<String> = []
        for (i, column) in columns.enumerated() {
            if column.isEmpty {
                error("element \(i + 1) of '\(key)' is an empty column name", at: elementPosition(t, key, i))
            } else if !seen.insert(column).inserted {
                error("column '\(column)' is listed twice in '\(key)'", at: elementPosition(t, key, i))
            }
        }
    }

    /// The model's target columns: present when needed, unused ones flagged.
    private mutating func checkTargets(_ plan: Plan, model: Plan.Model, _ t: TableRef) {
        let modelAt = valuePosition(t, "model")
        if model.isSurvival {
            if plan.time == nil { error("model '\(model.rawValue)' needs 'time' (the survival time column)", at: modelAt) }
            if plan.event == nil { error("model '\(model.rawValue)' needs 'event' (the 0/1 event column)", at: modelAt) }
            if plan.label != nil { warning("'label' is not used by model '\(model.rawValue)'", at: keyPosition(t, "label")) }
        } else {
            if plan.label == nil { error("model '\(model.rawValue)' needs 'label' (the 0/1 label column)", at: modelAt) }
            for key in ["time", "event"] where t.table[key] != nil {
                warning("'\(key)' is not used by model '\(model.rawValue)'", at: keyPosition(t, key))
            }
        }
        if !model.isSurvival && t.table["ties"] != nil {
            warning("'ties' is used only by cox and deepsurv", at: keyPosition(t, "ties"))
        }
        if (model == .logistic || model == .cox) && t.table["hidden"] != nil {
            warning("'hidden' is used only by mlp and deepsurv", at: keyPosition(t, "hidden"))
        }
        if plan.optimizer == .adam && t.table["momentum"] != nil {
            warning("'momentum' is not used by optimizer 'adam'", at: keyPosition(t, "momentum"))
        }
        let targets = [("label", plan.label), ("time", plan.time), ("event", plan.event)].compactMap { k, v in v.map { (k, $0) } }
        if case .columns(let columns) = plan.features {
            for (i, column) in columns.enumerated() {
                if let (key, _) = targets.first(where: { $0.1 == column }) {
                    error("feature '\(column)' is also the \(key) column", at: elementPosition(t, "features", i))
                }
            }
            if !plan.exclude.isEmpty {
                warning("'exclude' has no effect when 'features' lists the columns", at: keyPosition(t, "exclude"))
            }
        }
    }
}

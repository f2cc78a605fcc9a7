/// The learning plan: what every peer of a network trains, and how.
///
/// The plan is the `[plan]` table of a topology file. It MUST be identical on every peer; its
/// hash (PlexusTopology's `PlanHash`, BLAKE2b-256 over a canonical encoding of this value) is
/// carried in every delta envelope and checked in every handshake.
///
/// This type only holds values. Reading it from TOML, checking ranges and reporting positions
/// is PlexusTopology's job; using it is PlexusLearning's and the engine's.
public struct Plan: Hashable, Sendable {
    public enum Model: String, CaseIterable, Sendable {
        /// Logistic regression with L2 (binary classification, needs `label`).
        case logistic
        /// Cox proportional hazards, Breslow ties, L2 (survival, needs `time` and `event`).
        case cox
        /// A multilayer perceptron classifier with ReLU hidden layers (needs `label`).
        case mlp
        /// DeepSurv: the MLP with the Cox partial likelihood (needs `time` and `event`).
        case deepsurv

        /// Whether the model predicts a survival risk rather than a class probability.
        public var isSurvival: Bool { self == .cox || self == .deepsurv }
    }

    public enum Features: Hashable, Sendable {
        /// Every column except the targets and ``Plan/exclude``.
        case all
        /// Exactly these columns, in this order.
        case columns([String])
    }

    public enum Optimizer: String, CaseIterable, Sendable {
        /// Stochastic gradient descent, with ``Plan/momentum`` (0 = plain SGD).
        case sgd
        /// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
        case adam
    }

    public enum Mixing: String, CaseIterable, Sendable {
        /// Metropolis–Hastings weights from the degrees: w_ij = 1 / (1 + max(d_i, d_j)).
        case metropolis
        /// The `weight` of each link, as written in the topology file.
        case explicit
    }

    public enum MissingValues: String, CaseIterable, Sendable {
        /// An empty feature cell is an error naming file, line and column.
        case error
        /// Rows with an empty feature cell are dropped and counted.
        case dropRow = "drop-row"
    }

    public enum Ties: String, CaseIterable, Sendable {
        /// Breslow: every event at a tied time sees the whole risk set.
        case breslow
        /// Efron: tied events share the risk set in equal steps (lifelines' and R's default).
        case efron
    }

    public enum Synchrony: String, CaseIterable, Sendable {
        /// A round ends when every neighbour's delta for it arrived or ``Plan/roundDeadlineMilliseconds`` passed.
        case synchronous
        /// No barrier: each peer advances on its own, using what has arrived.
        case asynchronous
    }

    /// How a peer mixes its neighbours' public copies into its model at the end of a round
    /// (PlexusGossip's `ConsensusRule`). Written in the plan as `"mean"`, `"clipped"`,
    /// `"trimmed-mean:B"` or `"median"` (``description`` and ``init(parsing:)``).
    public enum Aggregation: Hashable, Sendable, CustomStringConvertible {
        /// CHOCO-Gossip's weighted step toward the neighbours (the sample-weighted mean). The default.
        case mean
        /// Self-centred clipping (ClippedGossip): each neighbour's difference clipped to an adaptive radius.
        case clipped
        /// Coordinate-wise trimmed mean over the closed neighbourhood, dropping the B largest and
        /// the B smallest values of each coordinate. B MUST be ≥ 1.
        case trimmedMean(Int)
        /// Coordinate-wise median over the closed neighbourhood.
        case median

        /// The rule names, as the plan spells them (`trimmed-mean` takes `:B`).
        public static let names = ["mean", "clipped", "trimmed-mean:B", "median"]

        /// Whether the rule gives up the weighted mean for robustness.
        public var isRobust: Bool { self != .mean }

        public var description: String {
            switch self {
            case .mean: "mean"
            case .clipped: "clipped"
            case .trimmedMean(let b): "trimmed-mean:\(b)"
            case .median: "median"
            }
        }

        /// Why `text` is not a rule, or `nil` when it is; see ``init(parsing:)``.
        public enum ParseProblem: Error, Hashable, Sendable {
            /// Not one of ``names``.
            case unknown
            /// `trimmed-mean` without `:B`.
            case missingTrim
            /// `trimmed-mean:X` where X is not an integer ≥ 1.
            case badTrim(String)
            /// A parameter after a rule that takes none (`median:2`).
            case unexpectedParameter(rule: String)
        }

        /// The rule `text` names, exactly as ``description`` writes it.
        public static func parse(_ text: String) -> Result<Aggregation, ParseProblem> {
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let parameter = parts.count > 1 ? String(parts[1]) : nil
            switch name {
            case "mean", "clipped", "median":
                if parameter != nil { return .failure(.unexpectedParameter(rule: name)) }
                return .success(name == "mean" ? .mean : name == "clipped" ? .clipped : .median)
            case "trimmed-mean":
                guard let parameter else { return .failure(.missingTrim) }
                // Digits only: no sign, no spaces, no leading "+"; at most 9 digits.
                guard !parameter.isEmpty, parameter.count <= 9, parameter.allSatisfy({ $0.isASCII && $0.isNumber }),
                    let b = Int(parameter), b >= 1
                else { return .failure(.badTrim(parameter)) }
                return .success(.trimmedMean(b))
            default:
                return .failure(.unknown)
            }
        }

        /// The rule `text` names, or `nil`.
        public init?(parsing text: String) {
            guard case .success(let rule) = Self.parse(text) else { return nil }
            self = rule
        }
    }

    // MARK: Data

    public var model: Model
    /// The covariates. Default: ``Features/all``.
    public var features: Features = .all
    /// Columns left out of ``Features/all`` (ids, site names, split markers). Default: none.
    public var exclude: [String] = []
    /// The 0/1 label column, for ``Model/logistic`` and ``Model/mlp``.
    public var label: String?
    /// The survival time column (≥ 0), for ``Model/cox`` and ``Model/deepsurv``.
    public var time: String?
    /// The 0/1 event column (1 = event observed), for ``Model/cox`` and ``Model/deepsurv``.
    public var event: String?
    /// What to do with an empty cell. Default: ``MissingValues/error``.
    public var missing: MissingValues = .error

    // MARK: Model and optimisation

    /// How the Cox and DeepSurv partial likelihood treat tied event times. Default: ``Ties/breslow``.
    public var ties: Ties = .breslow
    /// Hidden layer widths for ``Model/mlp`` and ``Model/deepsurv``: one or two layers. Default: `[32]`.
    public var hidden: [Int] = [32]
    /// Rounds of the decentralized protocol. MUST be ≥ 1.
    public var rounds: Int
    /// The last this many of ``rounds`` take no local training step: the peers only gossip and
    /// mix, so the honest peers end at (near) one model rather than each a local step away from
    /// it. MUST be in 0..<``rounds``. Default: 0.
    public var consensusRounds: Int = 0
    /// Under `aggregation = "clipped"`: the clipping radius is at most this multiple κ of the
    /// norm of the peer's own last local training step, which no neighbour can inflate. 0 (the
    /// default): the radius is 2 × the median neighbour distance alone.
    public var clipAnchor: Double = 0
    /// Local optimisation steps per round. MUST be ≥ 1. Default: 1.
    public var localSteps: Int = 1
    /// Step size. MUST be > 0.
    public var learningRate: Double
    /// L2 penalty λ: the objective adds λ·½‖w‖² per sample (the intercept is not penalised). Default: 0.
    public var l2: Double = 0
    /// Default: ``Optimizer/sgd``.
    public var optimizer: Optimizer = .sgd
    /// SGD momentum in [0, 1). Default: 0.
    public var momentum: Double = 0
    /// Mini-batch size; `nil` (the default) means full batch.
    public var batchSize: Int?
    /// FedProx proximal coefficient μ ≥ 0: adds μ/2·‖w − w_ref‖² toward the consensus model. Default: 0.
    public var proximal: Double = 0

    // MARK: Gossip

    /// The delta codec, as PlexusCodec's `CodecSpec` parses it: `lossless`, `f16`, `bf16`,
    /// `int8`, `int8:CHUNK`, `topk:F`, `topk:F+f16`, … Default: `lossless`.
    public var codec: String = "lossless"
    /// Default: ``Mixing/metropolis``.
    public var mixing: Mixing = .metropolis
    /// How neighbours' copies are mixed in. Default: ``Aggregation/mean``.
    public var aggregation: Aggregation = .mean
    /// The consensus step size γ in (0, 1] of CHOCO-Gossip. Default: 1 (exact averaging with a lossless codec).
    public var consensusStep: Double = 1
    /// Default: ``Synchrony/synchronous``.
    public var synchrony: Synchrony = .synchronous
    /// How long a synchronous round waits for its neighbours, in milliseconds. Default: 10 000.
    public var roundDeadlineMilliseconds: Int = 10_000
    /// In asynchronous mode, how many rounds a neighbour's copy may lag before it is left out. Default: 5.
    public var maxStaleness: Int = 5
    /// The symmetric bound on sample counts: with sample weighting, a site counts at most this
    /// many times the network's median signed count (after the topology file's pins); 0 turns
    /// the bound off. Every peer applies it to the same signed counts, so the weights stay
    /// reversible (π_i p_ij = π_j p_ji) and an honest network whose counts are all under the
    /// bound keeps the exact sample-weighted mean. Default: 4.
    public var maxSampleRatio: Double = 4

    /// Seeds every random choice (initialisation, mini-batches, partitions). Default: 1.
    public var seed: UInt64 = 1

    /// Patient-level differential privacy for every site's training (the `[plan.privacy]` table);
    /// nil: none.
    public var privacy: Privacy?

    /// The `[plan.privacy]` table: DP-SGD's parameters and the (ε, δ) they are held to. A site's
    /// training is Poisson-subsampled at `sampling`, each row's gradient clipped to `clip`, and
    /// the sum noised with σ·clip, σ given (`noise_multiplier`) or found for a target ε
    /// (`epsilon`) over the plan's rounds × local steps.
    public struct Privacy: Hashable, Sendable {
        public enum Noise: Hashable, Sendable {
            /// σ as written.
            case multiplier(Double)
            /// The target ε; σ is the smallest that keeps the whole run within it.
            case epsilon(Double)
        }
        /// δ, in (0, 1).
        public var delta: Double
        /// C, the per-row gradient norm bound, > 0.
        public var clip: Double
        /// q, each row's probability of entering a step's batch, in (0, 1].
        public var sampling: Double
        public var noise: Noise
        /// s, the mean rows per random stratum (Cox and DeepSurv; unused by the classifiers). Default 8.
        public var stratumSize: Int
        /// `[plan.privacy.bounds]`: the declared range of each feature, sorted by name. With
        /// bounds the statistics round is released with the Gaussian mechanism (the rows clipped
        /// to them) and charged to the budget; without, it releases exact statistics and the
        /// (ε, δ) covers training only. The bounds must not come from the data.
        public var bounds: [FeatureBound]
        /// σ_s of the statistics release (sensitivity 1 after the bounds' normalization). Default 5.
        public var statisticsNoiseMultiplier: Double
        /// `default_bound`: the declared range of every feature ``bounds`` does not name (e.g.
        /// `[0, 1]` for one-hot columns). Its `name` is empty.
        public var defaultBound: FeatureBound?

        public static let defaultStatisticsNoiseMultiplier = 5.0

        public init(
            delta: Double, clip: Double, sampling: Double, noise: Noise, stratumSize: Int = 8, bounds: [FeatureBound] = [],
            statisticsNoiseMultiplier: Double = Privacy.defaultStatisticsNoiseMultiplier, defaultBound: FeatureBound? = nil
        ) {
            self.delta = delta
            self.clip = clip
            self.sampling = sampling
            self.noise = noise
            self.stratumSize = stratumSize
            self.bounds = bounds.sorted { $0.name < $1.name }
            self.statisticsNoiseMultiplier = statisticsNoiseMultiplier
            self.defaultBound = defaultBound.map { FeatureBound(name: "", lower: $0.lower, upper: $0.upper) }
        }

        /// Whether the statistics round is released privately (the plan declares bounds).
        public var releasesStatistics: Bool { !bounds.isEmpty || defaultBound != nil }

        /// The bounds of `features`, in their order; the names of features without a bound and
        /// of bounds that name no feature, when any.
        public func bounds(for features: [String]) -> Result<[FeatureBound], BoundsMismatch> {
            let byName = Dictionary(bounds.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let missing = defaultBound == nil ? features.filter { byName[$0] == nil } : []
            let known = Set(features)
            let unknown = bounds.map(\.name).filter { !known.contains($0) }
            guard missing.isEmpty && unknown.isEmpty else { return .failure(BoundsMismatch(missing: missing, unknown: unknown)) }
            return .success(features.map { name in
                byName[name] ?? FeatureBound(name: name, lower: defaultBound!.lower, upper: defaultBound!.upper)
            })
        }
    }

    /// A feature's declared range `[lower, upper]`, lower < upper, both finite.
    public struct FeatureBound: Hashable, Sendable {
        public var name: String
        public var lower: Double
        public var upper: Double

        public init(name: String, lower: Double, upper: Double) {
            self.name = name
            self.lower = lower
            self.upper = upper
        }
    }

    /// The features of a site that `[plan.privacy.bounds]` does not bound, and the bounds that
    /// name no feature.
    public struct BoundsMismatch: Error, Hashable, Sendable, CustomStringConvertible {
        public var missing: [String]
        public var unknown: [String]

        public init(missing: [String], unknown: [String]) {
            self.missing = missing
            self.unknown = unknown
        }

        public var description: String {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("no bound for \(missing.map { "'\($0)'" }.joined(separator: ", "))") }
            if !unknown.isEmpty { parts.append("a bound for \(unknown.map { "'\($0)'" }.joined(separator: ", ")), which \(unknown.count == 1 ? "is" : "are") not among the plan's features") }
            return "[plan.privacy.bounds]: " + parts.joined(separator: "; ") + " (every feature needs its declared [lower, upper])"
        }
    }

    public init(model: Model, rounds: Int, learningRate: Double) {
        self.model = model
        self.rounds = rounds
        self.learningRate = learningRate
    }
}

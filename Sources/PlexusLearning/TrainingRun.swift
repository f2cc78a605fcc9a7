#if canImport(Glibc)
import Glibc
#endif
import Foundation
public import PlexusCore

/// A model with its parameters and the standardization fitted on its training rows: everything
/// needed to score new rows.
public struct TrainedModel: Sendable {
    public let model: any Model
    public var parameters: [Float]
    public var standardization: Standardization

    public init(model: any Model, parameters: [Float], standardization: Standardization) {
        self.model = model
        self.parameters = parameters
        self.standardization = standardization
    }

    /// Metrics on raw (unstandardized) rows: the stored standardization is applied first.
    public func evaluate(on raw: Dataset) -> Evaluation {
        Evaluation(model: model, parameters: parameters, data: standardization.applied(to: raw))
    }
}

/// How ``Trainer/fit(_:plan:solver:seed:)`` optimises.
public enum SolverChoice: String, Sendable, CaseIterable, Codable {
    /// L-BFGS to convergence for the convex models (logistic, Cox), the plan's optimizer otherwise.
    case automatic = "auto"
    /// Full-batch L-BFGS to convergence (convex models only).
    case lbfgs
    /// The plan's optimizer for `rounds × localSteps` steps — the same budget the network spends.
    case plan
}

/// How a fit went.
public struct FitSummary: Sendable, Hashable, Codable {
    public var solver: String
    /// Optimizer steps (plan) or L-BFGS iterations.
    public var iterations: Int
    /// Final objective value (data loss + penalties) on the training rows.
    public var objective: Double
    /// L-BFGS only: whether ‖∇‖∞ reached the tolerance.
    public var converged: Bool?
}

public enum Trainer {
    /// The initial parameters every peer of a plan starts from: the model's initialisation drawn
    /// from the `"init"` stream of `seed`. Peers that use this with the plan's seed agree bit for bit.
    public static func initialParameters(for model: any Model, seed: UInt64) -> [Float] {
        var generator = Xoshiro256(seed: seed, stream: "init")
        return model.initialParameters(using: &generator)
    }

    /// Fits a model of `plan` to raw training rows: standardizes them with their own statistics,
    /// initialises under the seed, then optimises.
    public static func fit(
        _ raw: Dataset, plan: Plan, solver: SolverChoice = .automatic, seed: UInt64? = nil,
        standardization: Standardization? = nil
    ) -> (trained: TrainedModel, summary: FitSummary) {
        let standardization = standardization ?? Standardization(fitting: raw)
        let data = standardization.applied(to: raw)
        let model = makeModel(plan: plan, dimension: data.dimension)
        let seed = seed ?? plan.seed
        var parameters = initialParameters(for: model, seed: seed)
        let convex = plan.model == .logistic || plan.model == .cox
        let useLBFGS = solver == .lbfgs || (solver == .automatic && convex)
        let summary: FitSummary
        if useLBFGS {
            let result = Solver.lbfgs(objective: Objective(model: model, l2: plan.l2), data: data, initial: parameters)
            parameters = result.parameters
            summary = FitSummary(solver: "lbfgs", iterations: result.iterations, objective: result.objective, converged: result.converged)
        } else {
            var trainer = LocalTrainer(model: model, plan: plan, seed: seed)
            let steps = plan.rounds * plan.localSteps
            trainer.train(parameters: &parameters, on: data, steps: steps)
            var gradient: [Float] = []
            let objective = trainer.objective.valueAndGradient(parameters: parameters, batch: data, into: &gradient)
            summary = FitSummary(solver: plan.optimizer.rawValue, iterations: steps, objective: objective, converged: nil)
        }
        return (TrainedModel(model: model, parameters: parameters, standardization: standardization), summary)
    }
}

/// What `plexus train` does, as a library call: the options and the report.
public struct TrainingOptions: Sendable {
    public var dataPath: String
    public var plan: Plan
    /// Training rows: every filter must match (after the split, if any).
    public var filters: [RowFilter] = []
    /// Test rows: every filter must match (after the split's `test`, if any). Without a split and
    /// without test filters there is no test set.
    public var testFilters: [RowFilter] = []
    /// A protocol split file: train on `train` (or `hospitals[site]`), test on `test`.
    public var splitPath: String?
    /// 0-based site index into the split's `hospitals` (the isolated rows of the papers' table).
    public var site: Int?
    /// Overrides ``Plan/seed``.
    public var seed: UInt64?
    public var solver: SolverChoice = .automatic
    /// If set, ``Plan/l2`` becomes 1/(C·n) for the n training rows: scikit-learn's `C` (total, not mean, loss).
    public var sklearnC: Double?
    /// If set, the plan's optimizer runs this many steps instead of `rounds × localSteps`.
    public var steps: Int?
    /// If non-empty, the standardization is fitted on the rows matching these filters (e.g. the pooled
    /// `split=train` rows for an isolated site, as the tcga_brca reference does) instead of the training rows.
    public var standardizeFilters: [RowFilter] = []
    /// If set, the trained model is written here as safetensors with everything needed to
    /// predict (``SavedModel``).
    public var savePath: String?
    /// The plan's hash (hex), recorded in the saved model.
    public var planHash: String?
    /// Survival models: times at which to report the time-dependent AUC and the Brier score
    /// (increasing, > 0), on the test rows (the training rows without a test set).
    public var horizons: [Double] = []
    /// Survival models: bootstrap resamples for a 95% interval of the C-index on the test rows
    /// (the training rows without a test set); 0 = none. Seeded by the plan's seed.
    public var bootstrap = 0

    public init(dataPath: String, plan: Plan) {
        self.dataPath = dataPath
        self.plan = plan
    }
}

public struct TrainingReport: Sendable, Codable {
    public var data: String
    public var model: String
    public var features: [String]
    public var parameterCount: Int
    public var trainRows: Int
    public var testRows: Int?
    /// Rows dropped for missing values (`missing = "drop-row"`), train and test.
    public var droppedRows: Int
    public var seed: UInt64
    public var l2: Double
    public var fit: FitSummary
    public var seconds: Double
    public var train: Evaluation
    public var test: Evaluation?
    /// The parameters, by tensor name.
    public var parameters: [String: [Float]]
    public var standardization: Standardization
    /// Cox and logistic: hazard or odds ratios with standard errors, intervals and p-values, and
    /// the likelihood-ratio test (``Inference``); `nil` for the MLPs.
    public var inference: InferenceReport?
    /// Survival models with ``TrainingOptions/horizons``: Uno's C, AUC(t), Brier(t), IBS.
    public var timeDependent: TimeDependentReport?
    /// Survival models with ``TrainingOptions/bootstrap``: the C-index's percentile interval.
    public var concordanceInterval: BootstrapInterval?
}

/// Time-dependent survival metrics of a fit (``CensoringWeights``): the censoring distribution from
/// the training rows, survival probabilities from the Breslow baseline of the training rows.
/// `nil` entries could not be computed (no case or no control at a horizon, or G = 0).
public struct TimeDependentReport: Sendable, Hashable, Codable {
    /// `test` or `train`: the rows the metrics are computed on.
    public var rows: String
    public var horizons: [Double]
    public var uno: Double?
    public var auc: [Double]?
    public var meanAUC: Double?
    public var brier: [Double]?
    /// Over the horizons (at least two).
    public var integratedBrier: Double?
    /// Per horizon: predicted against Kaplan–Meier observed survival by risk decile (``Calibration``).
    public var calibration: [[CalibrationGroup]]

    public init(trained: TrainedModel, training: Dataset, evaluated: Dataset, rows: String, horizons: [Double]) {
        self.rows = rows
        self.horizons = horizons
        let baseline = SavedModel.breslow(trained, rawRows: training)
        let eta = trained.model.predict(parameters: trained.parameters, batch: trained.standardization.applied(to: evaluated)).map(Double.init)
        let h = horizons.map { baseline?.value(at: $0) ?? 0 }
        let survival = eta.map { e in h.map { $0 == 0 ? 1 : exp(-$0 * exp(e)) } }
        let weights = CensoringWeights(trainTimes: training.times, trainEvents: training.events)
        uno = weights.unoConcordance(times: evaluated.times, events: evaluated.events, scores: eta)
        let dynamic = weights.cumulativeDynamicAUC(times: evaluated.times, events: evaluated.events, scores: eta, at: horizons)
        auc = dynamic?.auc
        meanAUC = dynamic?.mean
        brier = weights.brierScores(times: evaluated.times, events: evaluated.events, survival: survival, at: horizons)
        integratedBrier = weights.integratedBrierScore(times: evaluated.times, events: evaluated.events, survival: survival, at: horizons)
        calibration = horizons.indices.map { k in
            Calibration.atHorizon(horizons[k], times: evaluated.times, events: evaluated.events, predicted: survival.map { $0[k] })
        }
    }
}

extension Trainer {
    /// Loads the data as the options say, fits, and evaluates on the training and test rows.
    public static func run(_ options: TrainingOptions) throws(DataError) -> TrainingReport {
        let table = try CSV.read(path: options.dataPath)
        var trainRows: [Int]?
        var testRows: [Int]?
        if let splitPath = options.splitPath {
            let split = try SplitFile.read(path: splitPath, rowCount: table.rows.count)
            if let site = options.site {
                guard split.hospitals.indices.contains(site) else {
                    throw DataError(.badSplit, file: splitPath, "--site \(site): the split has \(split.hospitals.count) sites (0-based)")
                }
                trainRows = split.hospitals[site]
            } else {
                trainRows = split.train
            }
            testRows = split.test
        } else if options.site != nil {
            throw DataError(.badSplit, file: options.dataPath, "--site needs --split")
        }
        var plan = options.plan
        if let seed = options.seed { plan.seed = seed }
        let training = try DatasetLoader.load(table, plan: plan, rows: trainRows, filters: options.filters)
        var testing: LoadedData?
        if testRows != nil || !options.testFilters.isEmpty {
            testing = try DatasetLoader.load(table, plan: plan, rows: testRows, filters: options.testFilters)
        }
        if let c = options.sklearnC {
            plan.l2 = 1 / (c * Double(training.dataset.count))
        }
        let clock = ContinuousClock()
        let start = clock.now
        var standardization: Standardization?
        if !options.standardizeFilters.isEmpty {
            let pooled = try DatasetLoader.load(table, plan: plan, filters: options.standardizeFilters)
            standardization = Standardization(fitting: pooled.dataset)
        }
        if let steps = options.steps {
            guard steps >= 1 else { throw DataError(.badPlan, file: options.dataPath, "--steps must be at least 1, found \(steps)") }
            plan.rounds = steps
            plan.localSteps = 1
        }
        var (trained, summary) = fit(training.dataset, plan: plan, solver: options.solver, standardization: standardization)
        // Inference at the fit; an L-BFGS fit (Float32) is first refined by Float64 Newton steps,
        // and the model keeps the refined parameters.
        var inference: InferenceReport?
        let standardized = trained.standardization.applied(to: training.dataset)
        if let result = Inference.report(for: trained, standardizedData: standardized, plan: plan, refine: summary.solver == "lbfgs") {
            inference = result.report
            if result.report.newtonSteps > 0 {
                trained.parameters = result.parameters
                var gradient: [Float] = []
                summary.objective = Objective(model: trained.model, l2: plan.l2).valueAndGradient(
                    parameters: result.parameters, batch: standardized, into: &gradient)
            }
        }
        let elapsed = clock.now - start
        if let savePath = options.savePath {
            // The Breslow baseline for Cox and DeepSurv comes from the training rows.
            let saved = SavedModel(
                trained: trained, plan: plan, featureNames: training.dataset.featureNames,
                baseline: SavedModel.breslow(trained, rawRows: training.dataset), baselineScope: "pooled",
                planHash: options.planHash)
            do {
                try Data(saved.encode()).write(to: URL(fileURLWithPath: savePath))
            } catch {
                throw DataError(.unreadable, file: savePath, "cannot write the model: \(error.localizedDescription)")
            }
        }
        var timeDependent: TimeDependentReport?
        if !options.horizons.isEmpty, trained.model.task == .survival {
            guard options.horizons.allSatisfy({ $0.isFinite && $0 > 0 }), zip(options.horizons, options.horizons.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw DataError(.badPlan, file: options.dataPath, "horizons must be increasing finite times > 0")
            }
            timeDependent = TimeDependentReport(
                trained: trained, training: training.dataset, evaluated: testing?.dataset ?? training.dataset,
                rows: testing == nil ? "train" : "test", horizons: options.horizons)
        }
        var concordanceInterval: BootstrapInterval?
        if options.bootstrap > 0, trained.model.task == .survival {
            let evaluated = testing?.dataset ?? training.dataset
            let risks = trained.model.predict(parameters: trained.parameters, batch: trained.standardization.applied(to: evaluated))
            concordanceInterval = BootstrapInterval.concordance(
                times: evaluated.times, events: evaluated.events, risks: risks.map(Double.init), resamples: options.bootstrap, seed: plan.seed)
        }
        var named: [String: [Float]] = [:]
        for tensor in trained.model.layout.tensors { named[tensor.name] = Array(trained.parameters[tensor.range]) }
        return TrainingReport(
            data: options.dataPath, model: plan.model.rawValue, features: training.dataset.featureNames,
            parameterCount: trained.model.layout.count, trainRows: training.dataset.count, testRows: testing?.dataset.count,
            droppedRows: training.droppedRows + (testing?.droppedRows ?? 0), seed: plan.seed, l2: plan.l2, fit: summary,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
            train: trained.evaluate(on: training.dataset), test: testing.map { trained.evaluate(on: $0.dataset) },
            parameters: named, standardization: trained.standardization, inference: inference, timeDependent: timeDependent,
            concordanceInterval: concordanceInterval)
    }
}

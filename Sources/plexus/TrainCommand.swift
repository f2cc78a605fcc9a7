import ArgumentParser
import Foundation
import PlexusCore
import PlexusLearning
import PlexusLog
import PlexusTopology

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train one model on one machine and print its metrics.",
        discussion: """
            The "centralized" and "isolated" rows of the papers' table, and the yardstick for the \
            decentralized network. The plan (a plan-only TOML file or a whole topology file; only \
            [plan] is read) names the model, the feature, label, time and event columns, and the \
            optimisation. Features are z-scored with the mean and population standard deviation \
            of the training rows; the same transform is applied to the test rows.

            Rows: --where keeps training rows whose column equals the value (repeatable: all must \
            match); --test-where selects test rows the same way. With --split (a protocol split \
            file) the model trains on its `train` rows — or on `hospitals[N]` with --site N \
            (0-based) — and is tested on its `test` rows; --where/--test-where then filter those.

            Cox and logistic fits then print hazard or odds ratios per unit of each covariate \
            with 95% Wald intervals from the observed information, p-values and the \
            likelihood-ratio test (in --json: `inference`); an L-BFGS fit is refined by Float64 \
            Newton steps first. --save writes a model `plexus predict` can apply.

            Solver: `auto` (default) solves the convex models (logistic, cox) to convergence with \
            full-batch L-BFGS, as scikit-learn and lifelines do, and runs the plan's optimizer \
            for rounds × local_steps steps for mlp and deepsurv; `plan` always uses the plan's \
            optimizer; `lbfgs` always uses L-BFGS.

            Examples (plans in Topologies/plans, data in Topologies/data):
              plexus train --data Topologies/data/wdbc.csv --plan Topologies/plans/wdbc-logistic.toml \\
                  --split Topologies/data/splits/wdbc_seed0.json --sklearn-c 1
              plexus train --data Topologies/data/gbsg2.csv --plan Topologies/plans/gbsg2-cox.toml \\
                  --split Topologies/data/splits/gbsg2_seed0.json --site 2 --ties efron
              plexus train --data Topologies/data/tcga_brca.csv --plan Topologies/plans/tcga-cox.toml \\
                  --where split=train --test-where split=test --json
            """
    )

    @Option(help: "The CSV file (RFC 4180, header row).", completion: .file(extensions: ["csv"]))
    var data: String

    @Option(help: "A TOML file with a [plan] table.", completion: .file(extensions: ["toml"]))
    var plan: String

    @Option(name: .customLong("where"), help: "Keep training rows with column=value (repeatable).")
    var filters: [String] = []

    @Option(name: .customLong("test-where"), help: "Test rows: column=value (repeatable).")
    var testFilters: [String] = []

    @Option(
        name: .customLong("standardize-where"),
        help: "Fit the standardization on rows with column=value (repeatable) instead of the training rows.")
    var standardizeFilters: [String] = []

    @Option(help: "A split file (JSON with test, train, hospitals row indices).", completion: .file(extensions: ["json"]))
    var split: String?

    @Option(help: "Train on the split's hospitals[N] (0-based) instead of its train rows.")
    var site: Int?

    @Option(help: "Seed for initialisation and mini-batches (overrides the plan's seed).")
    var seed: UInt64?

    @Option(help: "With --solver plan (or an MLP): run this many optimizer steps instead of rounds × local_steps.")
    var steps: Int?

    @Option(help: "auto, lbfgs or plan.")
    var solver: String = "auto"

    @Option(
        name: .customLong("sklearn-c"),
        help: "Set l2 = 1/(C·n) for the n training rows: scikit-learn's C (penalty on the summed loss).")
    var sklearnC: Double?

    @Option(help: "Cox tied event times: breslow or efron (lifelines uses efron). Overrides the plan.")
    var ties: String?

    @Option(
        help: "Write the trained model as safetensors with everything needed to predict (features, standardization, link, baseline hazard).",
        completion: .file())
    var save: String?

    @Option(help: "Survival models: times for Uno's C, the time-dependent AUC and the Brier score, e.g. 365,730,1095 (IBS over them).")
    var horizons: String?

    @Option(help: "Survival models: a 95% percentile bootstrap interval of the C-index from this many resamples (seeded by the plan).")
    var bootstrap: Int = 0

    @Flag(help: "Print the report as JSON (metrics, fit, parameters by tensor, standardization).")
    var json = false

    func validate() throws {
        guard SolverChoice(rawValue: solver) != nil else {
            throw ValidationError("--solver must be auto, lbfgs or plan, found '\(solver)'")
        }
        if let ties, Plan.Ties(rawValue: ties) == nil {
            throw ValidationError("--ties must be breslow or efron, found '\(ties)'")
        }
        if let sklearnC, !(sklearnC.isFinite && sklearnC > 0) {
            throw ValidationError("--sklearn-c must be a number > 0")
        }
        if site != nil && split == nil { throw ValidationError("--site needs --split") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        _ = try parsedHorizons()
        guard (0...100_000).contains(bootstrap) else { throw ValidationError("--bootstrap must be from 0 to 100000") }
    }

    func parsedHorizons() throws -> [Double] {
        guard let horizons else { return [] }
        let parts = horizons.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= 1000 else { throw ValidationError("--horizons takes at most 1000 times") }
        let times = try parts.map { part in
            guard let t = Double(part.trimmingCharacters(in: .whitespaces)), t.isFinite, t > 0 else {
                throw ValidationError("--horizons: '\(part)' is not a finite time > 0 (expected e.g. 365,730,1095)")
            }
            return t
        }
        guard zip(times, times.dropFirst()).allSatisfy({ $0 < $1 }) else { throw ValidationError("--horizons must increase") }
        return times
    }

    func run() throws {
        var loadedPlan: Plan
        do {
            loadedPlan = try PlanFile.load(path: plan)
        } catch {
            throw CLIError(error.description)
        }
        if let ties { loadedPlan.ties = Plan.Ties(rawValue: ties)! }
        if loadedPlan.privacy != nil {
            // A pooled fit that ignored the table would be reported as if it were private.
            throw CLIError("\(plan): [plan.privacy]: plexus train does not apply differential privacy yet (plexus run, simulate and evaluate do); remove the table for a non-private pooled fit")
        }
        var options = TrainingOptions(dataPath: data, plan: loadedPlan)
        options.splitPath = split
        options.site = site
        options.seed = seed
        options.solver = SolverChoice(rawValue: solver)!
        options.sklearnC = sklearnC
        options.savePath = save
        options.planHash = PlanHash.hex(PlanHash.hash(loadedPlan))
        options.steps = steps
        options.horizons = try parsedHorizons()
        options.bootstrap = bootstrap
        let report: TrainingReport
        do {
            options.filters = try filters.map { (text: String) throws(DataError) -> RowFilter in try RowFilter(parsing: text) }
            options.standardizeFilters = try standardizeFilters.map { (text: String) throws(DataError) -> RowFilter in
                try RowFilter(parsing: text)
            }
            options.testFilters = try testFilters.map { (text: String) throws(DataError) -> RowFilter in try RowFilter(parsing: text) }
            report = try Trainer.run(options)
        } catch {
            throw CLIError(error.description)
        }
        if json {
            print(try PlexusJSON.string(report, pretty: true))
        } else {
            print(TrainReportText.render(report), terminator: "")
        }
    }
}

/// The human-readable form of a ``TrainingReport``.
enum TrainReportText {
    static func render(_ r: TrainingReport) -> String {
        var out = "\(r.model) on \(r.data): \(r.trainRows) training rows"
        if let t = r.testRows { out += ", \(t) test rows" }
        out += ", \(r.features.count) features, \(r.parameterCount) parameters"
        if r.droppedRows > 0 { out += ", \(r.droppedRows) rows dropped (missing values)" }
        out += "\n"
        let converged = r.fit.converged.map { $0 ? ", converged" : ", NOT converged" } ?? ""
        out += "fit: \(r.fit.solver), \(r.fit.iterations) \(r.fit.solver == "lbfgs" ? "iterations" : "steps")\(converged), "
        out += "objective \(fixed(r.fit.objective, 6)), l2 \(r.l2), seed \(r.seed), \(fixed(r.seconds, 3)) s\n"
        let rows = [("train", r.train)] + (r.test.map { [("test", $0)] } ?? [])
        if r.train.classification != nil {
            out += pad("", 6) + pad("rows", 7) + pad("accuracy", 10) + pad("precision", 10) + pad("recall", 8)
                + pad("F1", 8) + pad("ROC AUC", 9) + "log-loss\n"
            for (name, e) in rows {
                guard let m = e.classification else { continue }
                out += pad(name, 6) + pad("\(m.count)", 7) + pad(fixed(m.accuracy, 4), 10) + pad(fixed(m.precision, 4), 10)
                out += pad(fixed(m.recall, 4), 8) + pad(fixed(m.f1, 4), 8) + pad(fixed(m.rocAUC, 4), 9) + fixed(m.logLoss, 4) + "\n"
            }
        } else {
            out += pad("", 6) + pad("rows", 7) + pad("events", 8) + pad("C-index", 9) + "loss\n"
            for (name, e) in rows {
                guard let m = e.survival else { continue }
                out += pad(name, 6) + pad("\(m.count)", 7) + pad("\(m.events)", 8) + pad(fixed(m.concordance, 4), 9)
                out += fixed(e.loss, 4) + "\n"
            }
        }
        if let b = r.concordanceInterval {
            out += "C-index on the \(r.testRows == nil ? "training" : "test") rows \(fixed(b.estimate, 4)), bootstrap 95% interval "
            out += "\(fixed(b.lower, 4))–\(fixed(b.upper, 4)) (\(b.resamples) resamples"
            out += b.skipped > 0 ? ", \(b.skipped) without a comparable pair left out)\n" : ")\n"
        }
        if let t = r.timeDependent { out += timeDependentText(t) }
        if let inference = r.inference { out += inferenceTable(inference) }
        return out
    }

    /// The table a paper prints: per covariate (per unit of the raw column) β, SE, the ratio with
    /// its 95% Wald interval and the p-value; then the likelihood-ratio test.
    static func inferenceTable(_ i: InferenceReport) -> String {
        let kind = i.model == "cox" ? "hazard ratios (\(i.ties ?? "breslow") ties)" : "odds ratios"
        var out = "\n\(kind) per unit of each covariate, 95% Wald intervals from the observed information"
        out += i.l2 > 0 ? " (penalised, l2 \(i.l2)):\n" : ":\n"
        let width = max(10, i.coefficients.map(\.name.count).max() ?? 0) + 2
        out += pad("covariate", width) + pad("coef", 12) + pad("SE", 12) + pad(i.ratioName, 12) + pad("95% CI", 24) + pad("z", 8) + "p\n"
        for c in i.coefficients {
            out += pad(c.name, width) + pad(significant(c.coefficient), 12) + pad(significant(c.standardError), 12)
            out += pad(significant(c.ratio), 12) + pad("\(significant(c.lower))–\(significant(c.upper))", 24)
            out += pad(fixed(c.z, 2), 8) + pValue(c.p) + "\n"
        }
        out += "likelihood-ratio test: χ² \(fixed(i.likelihoodRatio.statistic, 2)) on \(i.likelihoodRatio.degreesOfFreedom) df, p \(pValue(i.likelihoodRatio.p))"
        out += "; log-likelihood \(fixed(i.logLikelihood, 4)) (null \(fixed(i.nullLogLikelihood, 4)))\n"
        if i.newtonSteps > 0 || !i.converged {
            out += "Float64 Newton refinement: \(i.newtonSteps) step\(i.newtonSteps == 1 ? "" : "s"), gradient norm \(scientific(i.gradientNorm))"
            out += i.converged ? "\n" : " — NOT converged: the intervals describe the curvature here, not a sampling distribution\n"
        }
        return out
    }

    static func timeDependentText(_ t: TimeDependentReport) -> String {
        func value(_ x: Double?) -> String { x.map { fixed($0, 4) } ?? "n/a" }
        func times(_ xs: [Double]?) -> String {
            zip(t.horizons, xs.map { $0.map(Optional.some) } ?? t.horizons.map { _ in nil }).map { "\(Predictions.format($0.0)) \(value($0.1))" }
                .joined(separator: ", ")
        }
        var out = "time-dependent (\(t.rows) rows, censoring from the training rows): Uno's C \(value(t.uno))\n"
        out += "  AUC at \(times(t.auc)); mean \(value(t.meanAUC))\n"
        out += "  Brier at \(times(t.brier))"
        if t.horizons.count >= 2 { out += "; IBS \(value(t.integratedBrier))" }
        out += "\n"
        for (h, groups) in zip(t.horizons, t.calibration) where !groups.isEmpty {
            out += "  calibration at \(Predictions.format(h)), predicted/observed (Kaplan–Meier) survival by risk decile, highest risk first:\n    "
            out += groups.map { "\(fixed($0.predicted, 3))/\(fixed($0.observed, 3))" }.joined(separator: "  ") + "\n"
        }
        return out
    }

    /// Four significant digits, in scientific notation outside [1e-3, 1e5).
    static func significant(_ x: Double) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        let magnitude = abs(x)
        if magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e5) { return scientific(x) }
        let digits = magnitude == 0 ? 4 : max(0, 3 - Int(log10(magnitude).rounded(.down)))
        return fixed(x, digits)
    }

    static func scientific(_ x: Double) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        return String(format: "%.3e", x)
    }

    static func pValue(_ p: Double) -> String {
        guard p.isFinite else { return "nan" }
        return p < 1e-4 ? (p < 1e-300 ? "<1e-300" : scientific(p)) : fixed(p, 4)
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    static func fixed(_ x: Double, _ digits: Int) -> String { Format.fixed(x, decimals: digits) }
}

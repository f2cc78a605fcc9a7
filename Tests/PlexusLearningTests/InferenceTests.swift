import Foundation
import PlexusCore
import PlexusLearning
import Testing

/// Hazard and odds ratios of the pooled fit against lifelines and statsmodels
/// (Fixtures/inference.json, from Fixtures/make_inference_fixtures.py), and the per-site
/// information summaries that add up to the stratified one.
@Suite struct InferenceTests {
    struct Agreement: CustomStringConvertible {
        var ratio = 0.0
        var standardError = 0.0
        var interval = 0.0
        var p = 0.0
        var description: String {
            "max relative error: ratio \(ratio), SE \(standardError), interval \(interval), p \(p)"
        }
    }

    static func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-300) }

    /// Compares the report with a fixture entry, coefficient by name.
    func compare(_ report: InferenceReport, _ fixture: [String: Any], ratioKey: String, label: String) throws -> Agreement {
        let rows = try #require(fixture["coefficients"] as? [[String: Any]])
        #expect(rows.count == report.coefficients.count, "\(label): coefficient count")
        var worst = Agreement()
        for row in rows {
            let name = try #require(row["name"] as? String)
            let ours = try #require(report.coefficients.first { $0.name == name }, "\(label): no coefficient '\(name)'")
            let hr = double(row, ratioKey)
            let se = double(row, "se")
            let r = Self.relative(ours.ratio, hr)
            let s = Self.relative(ours.standardError, se)
            let i = max(Self.relative(ours.lower, double(row, "lower")), Self.relative(ours.upper, double(row, "upper")))
            // p-values: relative where they are not tiny.
            let pRef = double(row, "p")
            let p = abs(ours.p - pRef) / max(pRef, 1e-3)
            #expect(r <= 1e-3, "\(label) \(name): \(ratioKey) \(ours.ratio) vs \(hr)")
            #expect(s <= 0.01, "\(label) \(name): SE \(ours.standardError) vs \(se)")
            #expect(i <= 1e-3, "\(label) \(name): interval [\(ours.lower), \(ours.upper)]")
            #expect(p <= 1e-3, "\(label) \(name): p \(ours.p) vs \(pRef)")
            worst.ratio = max(worst.ratio, r)
            worst.standardError = max(worst.standardError, s)
            worst.interval = max(worst.interval, i)
            worst.p = max(worst.p, p)
        }
        let lrt = double(fixture, "lrt", "statistic")
        #expect(Self.relative(report.likelihoodRatio.statistic, lrt) <= 1e-6, "\(label): LRT \(report.likelihoodRatio.statistic) vs \(lrt)")
        #expect(report.likelihoodRatio.degreesOfFreedom == Int(double(fixture, "lrt", "df")))
        #expect(Self.relative(report.likelihoodRatio.p, double(fixture, "lrt", "p")) <= 1e-4, "\(label): LRT p")
        #expect(report.rows == Int(double(fixture, "rows")) && report.events == Int(double(fixture, "events")))
        #expect(report.converged, "\(label): gradient norm \(report.gradientNorm)")
        print("\(label): \(worst); LRT \(report.likelihoodRatio.statistic) (ref \(lrt)); Newton steps \(report.newtonSteps)")
        return worst
    }

    @Test(arguments: ["gbsg2", "tcga_brca"])
    func coxAgainstLifelines(dataset: String) throws {
        let fixtures = try TestData.json("inference.json")
        var plan = Plan.cox(l2: 0.01, ties: .efron)
        var options = TrainingOptions(dataPath: TestData.path("\(dataset).csv"), plan: plan)
        if dataset == "tcga_brca" {
            plan.exclude = ["pid", "center", "split"]
            options.plan = plan
            options.filters = [RowFilter(column: "split", value: "train")]
        }
        let report = try Trainer.run(options)
        let inference = try #require(report.inference)
        #expect(inference.ratioName == "HR" && inference.ties == "efron")
        _ = try compare(inference, try #require(fixtures[dataset] as? [String: Any]), ratioKey: "hr", label: "\(dataset) Cox")
    }

    @Test func logisticAgainstStatsmodels() throws {
        let fixtures = try TestData.json("inference.json")
        let options = TrainingOptions(dataPath: TestData.path("wdbc.csv"), plan: .logistic(l2: 0.0022))
        let report = try Trainer.run(options)
        let inference = try #require(report.inference)
        #expect(inference.ratioName == "OR" && inference.coefficients.last?.name == "(intercept)")
        _ = try compare(inference, try #require(fixtures["wdbc"] as? [String: Any]), ratioKey: "or", label: "wdbc logistic")
    }

    /// The pooled fit stratified by centre (the decentralized network's objective), from the sum
    /// of the six centres' summaries refined by Newton steps, against lifelines' `strata`.
    @Test func coxStratifiedByCentreAgainstLifelines() throws {
        let fixtures = try TestData.json("inference.json")
        let table = try TestData.table("tcga_brca.csv")
        var plan = Plan.cox(l2: 0.01, ties: .efron)
        plan.exclude = ["pid", "center", "split"]
        let train = RowFilter(column: "split", value: "train")
        let standardization = Standardization(fitting: try DatasetLoader.load(table, plan: plan, filters: [train]).dataset)
        let centres = ["canada", "europe", "midwest", "northeast", "south", "west"]
        let sites = try centres.map { centre in
            standardization.applied(
                to: try DatasetLoader.load(table, plan: plan, filters: [train, RowFilter(column: "center", value: centre)]).dataset)
        }
        let model = makeModel(plan: plan, dimension: sites[0].dimension)
        let start = TrainedModel(model: model, parameters: [Float](repeating: 0, count: model.layout.count), standardization: standardization)
        let (report, _) = try #require(Inference.stratified(for: start, standardizedSites: sites, plan: plan, refine: true))
        _ = try compare(report, try #require(fixtures["tcga_brca_by_centre"] as? [String: Any]), ratioKey: "hr", label: "tcga_brca Cox by centre")
    }

    /// The sum over the six TCGA centres of each centre's summary is the pooled summary of the
    /// partial likelihood stratified by centre — and not the unstratified one.
    @Test(arguments: [Plan.Ties.breslow, .efron])
    func siteSummariesAddUpToTheStratifiedOne(ties: Plan.Ties) throws {
        let table = try TestData.table("tcga_brca.csv")
        var plan = Plan.cox(l2: 0.01, ties: ties)
        plan.exclude = ["pid", "center", "split"]
        let pooledRaw = try DatasetLoader.load(table, plan: plan).dataset
        let standardization = Standardization(fitting: pooledRaw)
        let pooled = standardization.applied(to: pooledRaw)
        // A β that is not the optimum, with every coordinate non-zero.
        let beta = (0..<pooled.dimension).map { 0.3 * sin(Double($0) + 1) }
        let centreColumn = try #require(table.header.firstIndex(of: "center"))
        let strata = pooled.sourceRows.map { table.rows[$0][centreColumn] }
        let names = Array(Set(strata)).sorted()
        #expect(names.count == 6)
        let sites = try names.map { centre in
            let rows = try DatasetLoader.load(table, plan: plan, filters: [RowFilter(column: "center", value: centre)]).dataset
            return CoxInformation.site(standardization.applied(to: rows), beta: beta, ties: ties)
        }
        let sum = try #require(InformationSummary.sum(sites))
        let stratified = CoxInformation.stratified(pooled, strata: strata.map { names.firstIndex(of: $0)! }, beta: beta, ties: ties)
        let unstratified = CoxInformation.site(pooled, beta: beta, ties: ties)
        #expect(sum.rows == 1088 && sum.events == 151 && stratified.rows == sum.rows && stratified.events == sum.events)
        func worst(_ a: [Double], _ b: [Double]) -> Double {
            let scale = b.reduce(0) { max($0, abs($1)) }
            return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
        }
        #expect(Self.relative(sum.logLikelihood, stratified.logLikelihood) <= 1e-12)
        #expect(worst(sum.score, stratified.score) <= 1e-10)
        #expect(worst(sum.information, stratified.information) <= 1e-10)
        // Stratifying changes the risk sets, so the pooled unstratified information differs.
        #expect(worst(unstratified.information, stratified.information) > 1e-3)
        print("tcga \(ties): Σ sites vs stratified: information \(worst(sum.information, stratified.information)); unstratified differs by \(worst(unstratified.information, stratified.information))")
    }

    /// The Float64 score is the derivative of the log-likelihood, the information minus the
    /// derivative of the score (central differences), and the score is −n × the Float32 model's
    /// gradient — on gbsg2, which has tied event times.
    @Test(arguments: [Plan.Ties.breslow, .efron])
    func coxDerivativesByFiniteDifferences(ties: Plan.Ties) throws {
        let raw = try DatasetLoader.load(try TestData.table("gbsg2.csv"), plan: .cox(ties: ties)).dataset
        let data = Standardization(fitting: raw).applied(to: raw)
        #expect(Set(zip(data.times, data.events).filter { $0.1 != 0 }.map(\.0)).count < Int(data.events.reduce(0, +)), "gbsg2 has tied event times")
        let beta = (0..<data.dimension).map { 0.2 * cos(Double($0)) }
        let at = CoxInformation.site(data, beta: beta, ties: ties)
        let h = 1e-5
        let d = data.dimension
        for j in 0..<d {
            var plus = beta
            var minus = beta
            plus[j] += h
            minus[j] -= h
            let up = CoxInformation.site(data, beta: plus, ties: ties)
            let down = CoxInformation.site(data, beta: minus, ties: ties)
            let slope = (up.logLikelihood - down.logLikelihood) / (2 * h)
            #expect(abs(slope - at.score[j]) <= 1e-5 * max(1, abs(at.score[j])), "score \(j)")
            for k in 0..<d {
                let curvature = -(up.score[k] - down.score[k]) / (2 * h)
                #expect(abs(curvature - at.information[j * d + k]) <= 1e-5 * max(1, abs(at.information[j * d + k])), "information \(j),\(k)")
            }
        }
        let model = CoxRegression(dimension: d, ties: ties)
        var gradient: [Float] = []
        let loss = model.lossAndGradient(parameters: beta.map { Float($0) }, batch: data, into: &gradient)
        let n = Double(data.count)
        #expect(abs(-loss * n - at.logLikelihood) <= 1e-3, "log-likelihood \(at.logLikelihood) vs Float32 \(-loss * n)")
        for j in 0..<d { #expect(abs(-Double(gradient[j]) * n - at.score[j]) <= 1e-3 * max(1, abs(at.score[j])), "gradient \(j)") }
    }

    @Test func logisticSummariesAddUp() throws {
        let raw = try DatasetLoader.load(try TestData.table("wdbc.csv"), plan: .logistic()).dataset
        let data = Standardization(fitting: raw).applied(to: raw)
        let theta = (0...data.dimension).map { 0.1 * sin(Double($0)) }
        let whole = LogisticInformation.site(data, theta: theta)
        let parts = [0..<100, 100..<400, 400..<data.count].map { LogisticInformation.site(data.subset($0), theta: theta) }
        let sum = try #require(InformationSummary.sum(parts))
        #expect(sum.rows == whole.rows && sum.events == whole.events)
        #expect(abs(sum.logLikelihood - whole.logLikelihood) <= 1e-9 * abs(whole.logLikelihood))
        for (a, b) in zip(sum.information, whole.information) { #expect(abs(a - b) <= 1e-9 * max(1, abs(b))) }
    }

    @Test func chiSquareTail() {
        // χ²₁ at its 0.95 quantile; χ²₉ at 16.918977604620448 (0.95); a far tail in the
        // continued-fraction branch (scipy.stats.chi2.sf(672.4465594135366, 30)).
        #expect(abs(Inference.chiSquareSurvival(3.841458820694124, degreesOfFreedom: 1) - 0.05) <= 1e-12)
        #expect(abs(Inference.chiSquareSurvival(16.918977604620448, degreesOfFreedom: 9) - 0.05) <= 1e-12)
        #expect(Self.relative(Inference.chiSquareSurvival(672.4465594135366, degreesOfFreedom: 30), 2.696982899001621e-122) <= 1e-9)
        #expect(Inference.chiSquareSurvival(0, degreesOfFreedom: 3) == 1)
        #expect(Inference.chiSquareSurvival(.infinity, degreesOfFreedom: 3) == 0)
    }
}

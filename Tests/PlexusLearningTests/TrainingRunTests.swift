import Foundation
import PlexusCore
import PlexusLearning
import Testing

/// The library call behind `plexus train`.
@Suite struct TrainingRunTests {
    @Test func splitSiteAndScikitLearnC() throws {
        var options = TrainingOptions(dataPath: TestData.path("wdbc.csv"), plan: .logistic())
        options.splitPath = TestData.path("splits/wdbc_seed0.json")
        options.site = 1
        options.sklearnC = 1
        let report = try Trainer.run(options)
        #expect(report.trainRows == 136 && report.testRows == 114)
        #expect(abs(report.l2 - 1.0 / 136) < 1e-15)
        #expect(report.fit.solver == "lbfgs" && report.fit.converged == true)
        let acc = try #require(report.test?.classification?.accuracy)
        #expect(abs(acc - double(TestData.reference, "wdbc", "0", "isolated", "1", "acc")) <= 0.02)
        #expect(report.parameters["weight"]?.count == 30 && report.parameters["bias"]?.count == 1)
        // The report is JSON-encodable (the --json output).
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        #expect(try !encoder.encode(report).isEmpty)
    }

    @Test func filtersSelectTrainAndTestRows() throws {
        var plan = Plan.cox()
        plan.exclude = ["pid", "center", "split"]
        plan.rounds = 200
        plan.learningRate = 0.5
        var options = TrainingOptions(dataPath: TestData.path("tcga_brca.csv"), plan: plan)
        options.filters = [try RowFilter(parsing: "split=train"), try RowFilter(parsing: "center=canada")]
        options.testFilters = [try RowFilter(parsing: "split=test")]
        options.solver = .plan
        let report = try Trainer.run(options)
        #expect(report.trainRows == 40 && report.testRows == 222)
        #expect(report.fit.solver == "sgd" && report.fit.iterations == 200)
        #expect(report.test?.survival?.events == 32)
        options.steps = 50
        #expect(try Trainer.run(options).fit.iterations == 50)
    }

    @Test func badOptionsAreDataErrors() {
        var options = TrainingOptions(dataPath: TestData.path("wdbc.csv"), plan: .logistic())
        options.site = 0
        #expect(throws: DataError.self) { try Trainer.run(options) }
        options.splitPath = TestData.path("splits/wdbc_seed0.json")
        options.site = 3
        #expect(throws: DataError.self) { try Trainer.run(options) }
    }
}

import Foundation
import Testing

/// `plexus predict` on models `plexus train` wrote, real processes; and the README's numpy
/// snippet against it.
@Suite struct PredictTests {
    static let data = repositoryRoot + "/Topologies/data/"
    static let plans = repositoryRoot + "/Topologies/plans/"

    /// python3 with numpy, or nil. CI (`CI` or `PLEXUS_REQUIRE_NUMPY=1`) must have it (.ci/setup installs python3-numpy).
    static let python: String? = {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
        for candidate in path + ["/usr/bin/python3"] where FileManager.default.isExecutableFile(atPath: candidate) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: candidate)
            process.arguments = ["-c", "import numpy"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { continue }
            process.waitUntilExit()
            if process.terminationStatus == 0 { return candidate }
        }
        return nil
    }()
    static let numpyRequired =
        ProcessInfo.processInfo.environment["CI"] != nil || ProcessInfo.processInfo.environment["PLEXUS_REQUIRE_NUMPY"] == "1"

    func train(_ arguments: [String], into directory: String, _ name: String) throws -> String {
        let model = "\(directory)/\(name).safetensors"
        let result = try plexus(["train"] + arguments + ["--save", model], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        return model
    }

    /// The CSV `plexus predict` writes, as a header and rows of numbers.
    func table(_ text: String) -> (header: [String], rows: [[Double]]) {
        let lines = text.split(separator: "\n").map(String.init)
        let header = lines.first.map { $0.split(separator: ",").map(String.init) } ?? []
        return (header, lines.dropFirst().map { $0.split(separator: ",").compactMap { Double($0) } })
    }

    @Test func predictOnAModelFromTrain() throws {
        let directory = temporaryDirectory("predict")
        let model = try train(
            ["--data", Self.data + "gbsg2.csv", "--plan", Self.plans + "gbsg2-cox.toml", "--ties", "efron"], into: directory, "gbsg2")
        let out = directory + "/predictions.csv"
        let written = try plexus(["predict", "--model", model, "--data", Self.data + "gbsg2.csv", "--times", "365,730", "--out", out])
        #expect(written.status == 0, "\(written.stderr)")
        let printed = try plexus(["predict", "--model", model, "--data", Self.data + "gbsg2.csv", "--times", "365,730"])
        let file = try String(contentsOfFile: out, encoding: .utf8)
        #expect(printed.status == 0 && printed.stdout == file)
        let (header, rows) = table(printed.stdout)
        #expect(header == ["row", "risk", "survival_at_365", "survival_at_730"])
        #expect(rows.count == 686 && rows.allSatisfy { $0.count == 4 })
        #expect(rows.allSatisfy { $0[2] > 0 && $0[2] < 1 && $0[3] > 0 && $0[3] <= $0[2] })
        // Row 0 of gbsg2: lifelines' S(365), S(730) (Tests/PlexusLearningTests/Fixtures/inference.json).
        #expect(abs(rows[0][2] - 0.9229534517664248) <= 1e-6 && abs(rows[0][3] - 0.7576391059662451) <= 1e-6, "\(rows[0])")
        // A higher risk means a lower survival.
        let byRisk = rows.sorted { $0[1] < $1[1] }
        #expect(byRisk.first![3] > byRisk.last![3])
    }

    @Test func badInputIsAClearError() throws {
        let directory = temporaryDirectory("predict-errors")
        let cox = try train(["--data", Self.data + "gbsg2.csv", "--plan", Self.plans + "gbsg2-cox.toml"], into: directory, "cox")
        let logistic = try train(["--data", Self.data + "wdbc.csv", "--plan", Self.plans + "wdbc-logistic.toml"], into: directory, "logistic")
        let csv = try String(contentsOfFile: Self.data + "gbsg2.csv", encoding: .utf8)
        var lines = csv.split(separator: "\n").map(String.init)
        // Without the pnodes column.
        let column = lines[0].split(separator: ",").firstIndex(of: "pnodes")!
        let missing = directory + "/missing.csv"
        try lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).enumerated().filter { $0.offset != column }.map(\.element).joined(separator: ",") }
            .joined(separator: "\n").write(toFile: missing, atomically: true, encoding: .utf8)
        let noColumn = try plexus(["predict", "--model", cox, "--data", missing])
        #expect(noColumn.status != 0)
        #expect(noColumn.stderr.contains("\(missing):1:") && noColumn.stderr.contains("'pnodes'"), "\(noColumn.stderr)")
        // A cell that is not a number, on line 3.
        var fields = lines[2].split(separator: ",").map(String.init)
        fields[column] = "many"
        lines[2] = fields.joined(separator: ",")
        let bad = directory + "/bad.csv"
        try lines.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
        let badCell = try plexus(["predict", "--model", cox, "--data", bad])
        #expect(badCell.status != 0 && badCell.stderr.contains("\(bad):3:\(column + 1):") && badCell.stderr.contains("'many'"), "\(badCell.stderr)")
        // Survival times from a classifier; a time that is not one; a file that is not a model.
        let times = try plexus(["predict", "--model", logistic, "--data", Self.data + "wdbc.csv", "--times", "365"])
        #expect(times.status != 0 && times.stderr.contains("--times needs a survival model"), "\(times.stderr)")
        let badTime = try plexus(["predict", "--model", cox, "--data", Self.data + "gbsg2.csv", "--times", "365,soon"])
        #expect(badTime.status != 0 && badTime.stderr.contains("'soon'"), "\(badTime.stderr)")
        let notModel = try plexus(["predict", "--model", Self.data + "gbsg2.csv", "--data", Self.data + "gbsg2.csv"])
        #expect(notModel.status != 0 && notModel.stderr.contains("not a Plexus model"), "\(notModel.stderr)")
    }

    /// `plexus simulate --inference` on the TCGA network: the decentralized model's table from the
    /// summed site summaries, its convergence stated, then the stratified optimum's table.
    @Test func simulatePrintsTheDecentralizedTable() throws {
        let result = try plexus([
            "simulate", "--topology", repositoryRoot + "/Topologies/tcga-brca.toml", "--data", Self.data + "tcga_brca.csv",
            "--where", "split=train", "--test-where", "split=test", "--rounds", "50", "--inference",
        ], timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("final model, likelihood stratified by the 6 sites: gradient norm"), "\(result.stdout)")
        #expect(result.stdout.contains("(not converged)"))
        let rows = result.stdout.split(separator: "\n").filter { $0.hasPrefix("age_at_index ") }
        #expect(rows.count == 1, "\(result.stdout)")
        #expect(result.stdout.contains("likelihood-ratio test: χ² ") && result.stdout.contains(" on 39 df"))
    }

    /// The README's numpy snippet, extracted from README.md, reproduces `plexus predict` to 1e-6
    /// from the safetensors file alone: wdbc (logistic), gbsg2 (Cox, S at 365 and 730) and
    /// DeepSurv on gbsg2.
    @Test func readmeNumpySnippetAgrees() throws {
        guard let python = Self.python else {
            #expect(!Self.numpyRequired, "CI is set but python3 with numpy is missing (.ci/setup installs python3-numpy)")
            print("PredictTests.readmeNumpySnippetAgrees: SKIPPED — python3 with numpy not found")
            return
        }
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        let marker = try #require(readme.range(of: "<!-- predict.py: the snippet PredictTests runs -->\n```python\n"))
        let end = try #require(readme.range(of: "\n```", range: marker.upperBound..<readme.endIndex))
        let directory = temporaryDirectory("predict-numpy")
        let script = directory + "/predict.py"
        try String(readme[marker.upperBound..<end.lowerBound]).write(toFile: script, atomically: true, encoding: .utf8)
        let cases: [(name: String, train: [String], data: String, times: String?)] = [
            ("wdbc", ["--plan", Self.plans + "wdbc-logistic.toml"], "wdbc.csv", nil),
            ("gbsg2", ["--plan", Self.plans + "gbsg2-cox.toml", "--ties", "efron"], "gbsg2.csv", "365,730"),
            ("deepsurv", ["--plan", Self.plans + "gbsg2-deepsurv.toml"], "gbsg2.csv", "365,730"),
        ]
        for c in cases {
            let model = try train(["--data", Self.data + c.data] + c.train, into: directory, c.name)
            let ours = try plexus(["predict", "--model", model, "--data", Self.data + c.data] + (c.times.map { ["--times", $0] } ?? []))
            #expect(ours.status == 0, "\(c.name): \(ours.stderr)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [script, model, Self.data + c.data] + (c.times.map { [$0] } ?? [])
            let output = directory + "/\(c.name).numpy"
            _ = FileManager.default.createFile(atPath: output, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(c.name): the numpy snippet failed")
            let numpy = table("header\n" + (try String(contentsOfFile: output, encoding: .utf8))).rows
            let plexusRows = table(ours.stdout).rows
            #expect(numpy.count == plexusRows.count && !numpy.isEmpty, "\(c.name): \(numpy.count) vs \(plexusRows.count) rows")
            var worst = 0.0
            for (a, b) in zip(numpy, plexusRows) {
                #expect(a.count == b.count, "\(c.name): columns")
                for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(1, abs(y))) }
            }
            print("\(c.name): numpy snippet vs plexus predict, \(plexusRows.count) rows: max difference \(worst)")
            #expect(worst <= 1e-6, "\(c.name): \(worst)")
        }
    }
}

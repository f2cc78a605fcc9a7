import PlexusCore
import PlexusLearning
import Testing

private func parse(_ text: String) throws(DataError) -> CSVTable {
    try CSV.parse(Array(text.utf8), file: "t.csv")
}

private func error(_ body: () throws -> Void) -> DataError? {
    do {
        try body()
        return nil
    } catch let e as DataError {
        return e
    } catch {
        return nil
    }
}

@Suite struct CSVTests {
    @Test func rfc4180Quoting() throws {
        let text = "\u{FEFF}a,\"b, with comma\",\"c \"\"quoted\"\"\"\r\n1,\"2\",\"x\r\ny\"\r\n\"\",5,6"
        let table = try parse(text)
        #expect(table.header == ["a", "b, with comma", "c \"quoted\""])
        #expect(table.rows == [["1", "2", "x\r\ny"], ["", "5", "6"]])
        #expect(table.lines == [2, 4])
    }

    @Test func lfLineEndsBlankLinesAndNoFinalNewline() throws {
        let table = try parse("a,b\n1,2\n\n3,4")
        #expect(table.rows == [["1", "2"], ["3", "4"]])
        #expect(table.lines == [2, 4])
    }

    @Test func malformedInputsNameTheLine() {
        let cases: [(String, DataError.Code, Int?)] = [
            ("", .empty, nil),
            ("\u{FEFF}", .empty, nil),
            ("a,b\n1,2,3\n", .raggedRow, 2),
            ("a,b\n1\n", .raggedRow, 2),
            ("a,b\n\"1,2\n", .malformed, 2),
            ("a,b\n\"1\"x,2\n", .malformed, 2),
            ("a,b\n1\"2,3\n", .malformed, 2),
            ("a,a\n1,2\n", .duplicateColumn, 1),
        ]
        for (text, code, line) in cases {
            let e = error { _ = try parse(text) }
            #expect(e?.code == code, "\(text.debugDescription): \(String(describing: e))")
            #expect(e?.line == line, "\(text.debugDescription): \(String(describing: e))")
        }
    }

    @Test func invalidUTF8() {
        let e = error { _ = try CSV.parse([0x61, 0x0A, 0xFF, 0xFE], file: "t.csv") }
        #expect(e?.code == .malformed)
    }

    @Test func sizeBoundAndMissingFile() {
        let big = error { _ = try CSV.read(path: TestData.path("wdbc.csv"), maximumBytes: 1000) }
        #expect(big?.code == .tooLarge)
        let missing = error { _ = try CSV.read(path: "/nonexistent/x.csv") }
        #expect(missing?.code == .unreadable)
        #expect(missing?.description.hasPrefix("/nonexistent/x.csv: error: cannot open") == true)
    }

    @Test func realFilesParse() throws {
        let tcga = try TestData.table("tcga_brca.csv")
        #expect(tcga.rows.count == 1088)
        #expect(tcga.header.contains("primary_diagnosis_Infiltrating duct carcinoma, NOS"))
        #expect(try TestData.table("wdbc.csv").rows.count == 569)
        #expect(try TestData.table("gbsg2.csv").header.count == 11)
    }
}

@Suite struct DatasetLoaderTests {
    private func survivalPlan() -> Plan {
        var plan = Plan(model: .cox, rounds: 1, learningRate: 0.1)
        plan.time = "time"
        plan.event = "event"
        return plan
    }

    /// Two exports of the same rows with their columns in another order load to the same dataset,
    /// bit for bit: features are bound by name, never by position.
    @Test func columnOrderOfTheExportNeverMatters() throws {
        let a = try parse("id,x1,\"x 2\",zeta,time,event\nA,1,2,9,5,1\nB,3,4,8,6,0\nC,5,6,7,7,1\n")
        let b = try parse("event,zeta,time,\"x 2\",id,x1\n1,9,5,2,A,1\n0,8,6,4,B,3\n1,7,7,6,C,5\n")
        var plan = survivalPlan()
        plan.exclude = ["id"]
        let fromA = try DatasetLoader.load(a, plan: plan).dataset
        let fromB = try DatasetLoader.load(b, plan: plan).dataset
        #expect(fromA.featureNames == ["x 2", "x1", "zeta"])
        #expect(fromB.featureNames == fromA.featureNames)
        #expect(fromB.features == fromA.features)
        #expect(fromB.times == fromA.times)
        #expect(fromB.events == fromA.events)
        // An explicit list keeps the plan's order and ignores extra columns.
        plan.features = .columns(["zeta", "x1"])
        #expect(try DatasetLoader.load(b, plan: plan).dataset.featureNames == ["zeta", "x1"])
        #expect(try DatasetLoader.load(b, plan: plan).dataset.features == DatasetLoader.load(a, plan: plan).dataset.features)
    }

    @Test func featuresAllMinusTargetsAndExclude() throws {
        let table = try parse("id,x1,\"x 2\",time,event,site\nA,1,2,5,1,west\nB,3,4,6,0,east\nC,5,6,7,1,west\n")
        var plan = survivalPlan()
        plan.exclude = ["id", "site"]
        let loaded = try DatasetLoader.load(table, plan: plan, filters: [RowFilter(column: "site", value: "west")])
        // Features in the canonical order, by name (UTF-8 bytes: " " sorts before "1").
        #expect(loaded.dataset.featureNames == ["x 2", "x1"])
        // Survival rows are stored by decreasing time.
        #expect(loaded.dataset.features == [6, 5, 2, 1])
        #expect(loaded.dataset.times == [7, 5])
        #expect(loaded.dataset.events == [1, 1])
        #expect(loaded.dataset.sourceRows == [2, 0])
        #expect(loaded.dataset.descendingTimeOrder == [0, 1])
    }

    @Test func explicitColumnsAndRows() throws {
        let table = try parse("a,b,y\n1,2,0\n3,4,1\n5,6,1\n")
        var plan = Plan(model: .logistic, rounds: 1, learningRate: 0.1)
        plan.label = "y"
        plan.features = .columns(["b"])
        let loaded = try DatasetLoader.load(table, plan: plan, rows: [2, 0])
        #expect(loaded.dataset.features == [6, 2])
        #expect(loaded.dataset.labels == [1, 0])
    }

    @Test func errorsNameFileLineColumnAndValue() throws {
        var plan = Plan(model: .logistic, rounds: 1, learningRate: 0.1)
        plan.label = "diagnosis"
        let missing = error { _ = try DatasetLoader.load(try parse("a,diagnosis\n1,0\n"), plan: { var p = plan; p.label = "diagnosys"; return p }()) }
        #expect(missing?.code == .missingColumn)
        #expect(missing?.message.contains("did you mean 'diagnosis'?") == true)

        let text = error { _ = try DatasetLoader.load(try parse("a,diagnosis\n1,0\nabc,1\n"), plan: plan) }
        #expect(text?.code == .notNumeric)
        #expect(text?.description.hasPrefix("t.csv:3:1: error: value 'abc' in feature column 'a'") == true)

        let label = error { _ = try DatasetLoader.load(try parse("a,diagnosis\n1,0\n2,2\n"), plan: plan) }
        #expect(label?.code == .notBinary)
        #expect(label?.line == 3 && label?.column == 2)

        let empty = error { _ = try DatasetLoader.load(try parse("a,diagnosis\n,0\n2,1\n"), plan: plan) }
        #expect(empty?.code == .missingValue)

        let nan = error { _ = try DatasetLoader.load(try parse("a,diagnosis\nnan,0\n"), plan: plan) }
        #expect(nan?.code == .notNumeric)

        let negative = error {
            _ = try DatasetLoader.load(try parse("a,time,event\n1,-2,1\n"), plan: survivalPlan())
        }
        #expect(negative?.code == .negativeTime)
        let event = error {
            _ = try DatasetLoader.load(try parse("a,time,event\n1,2,yes\n"), plan: survivalPlan())
        }
        #expect(event?.code == .notNumeric)
        let noRows = error {
            _ = try DatasetLoader.load(try parse("a,time,event,s\n1,2,1,x\n"), plan: survivalPlan(), filters: [RowFilter(column: "s", value: "y")])
        }
        // `s` is text, but no row is selected, so the only problem is the empty selection.
        #expect(noRows?.code == .noRows)
        let filterColumn = error {
            _ = try DatasetLoader.load(try parse("a,time,event\n1,2,1\n"), plan: survivalPlan(), filters: [RowFilter(column: "centre", value: "y")])
        }
        #expect(filterColumn?.code == .missingColumn)
        let noLabel = error { _ = try DatasetLoader.load(try parse("a,b\n1,0\n"), plan: Plan(model: .mlp, rounds: 1, learningRate: 1)) }
        #expect(noLabel?.code == .badPlan)
    }

    @Test func dropRowCountsDroppedRows() throws {
        var plan = Plan(model: .logistic, rounds: 1, learningRate: 0.1)
        plan.label = "y"
        plan.missing = .dropRow
        let loaded = try DatasetLoader.load(try parse("a,y\n1,0\n,1\n3,\n4,1\n"), plan: plan)
        #expect(loaded.droppedRows == 2)
        #expect(loaded.dataset.features == [1, 4])
    }

    @Test func rowFilterParsing() throws {
        let f = try RowFilter(parsing: "split=train")
        #expect(f == RowFilter(column: "split", value: "train"))
        #expect(try RowFilter(parsing: "a=b=c").value == "b=c")
        #expect(error { _ = try RowFilter(parsing: "nocolumn") }?.code == .badFilter)
        #expect(error { _ = try RowFilter(parsing: "=x") }?.code == .badFilter)
    }

    @Test func standardizationUsesPopulationSD() throws {
        let data = Dataset(featureNames: ["a", "c"], features: [1, 7, 2, 7, 3, 7, 4, 7], labels: [0, 1, 0, 1])
        let s = Standardization(fitting: data)
        #expect(s.mean == [2.5, 7])
        #expect(abs(s.scale[0] - 1.25.squareRoot()) < 1e-12)
        #expect(s.scale[1] == 1)  // constant column
        let z = s.applied(to: data)
        #expect(abs(Double(z.features[0]) + 1.5 / 1.25.squareRoot()) < 1e-6)
        #expect(z.features[1] == 0)
        // Pooling per-site statistics gives the pooled standardization.
        let merged = FeatureStatistics(data.subset([0, 1])).merged(with: FeatureStatistics(data.subset([2, 3])))
        let pooled = Standardization(merged)
        #expect(zip(pooled.mean, s.mean).allSatisfy { abs($0 - $1) < 1e-12 })
        #expect(zip(pooled.scale, s.scale).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test func splitFiles() throws {
        let split = try TestData.split("wdbc", seed: 0)
        #expect(split.test.count == 114 && split.train.count == 455)
        #expect(split.hospitals.map(\.count) == [273, 136, 46])
        let e = error { _ = try SplitFile.read(path: TestData.path("splits/wdbc_seed0.json"), rowCount: 100) }
        #expect(e?.code == .badSplit)
    }
}

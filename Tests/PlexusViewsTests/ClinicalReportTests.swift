import Foundation
import PlexusLog
import PlexusViews
import Testing

/// The report's clinical sections: a forest plot from `plexus train --json`'s inference, and the
/// leave-one-centre-out table and interval plot from `plexus evaluate --loco --json`.
@Suite struct ClinicalReportTests {
    static let train = #"""
        {"data":"gbsg2.csv","inference":{"model":"cox","ratioName":"HR","ties":"efron","l2":0.01,"rows":686,"events":299,
         "coefficients":[{"name":"age","coefficient":-0.0086,"standardError":0.0089,"ratio":0.9914,"lower":0.9743,"upper":1.0089,"z":-0.96,"p":0.3347},
                         {"name":"tgrade=III","coefficient":0.692,"standardError":0.24,"ratio":1.998,"lower":1.243,"upper":3.210,"z":2.9,"p":0.004},
                         {"name":"pnodes","coefficient":0.049,"standardError":0.007,"ratio":1.050,"lower":1.035,"upper":1.065,"z":7.0,"p":0.0000002}]}}
        """#
    static let loco = #"""
        {"dataset":"tcga_brca.csv","topology":"tcga-brca","model":"cox","seed":1,"resamples":1000,"rows":[
         {"centre":"northeast","rows":311,"events":59,"pooled":{"concordance":0.796,"interval":{"estimate":0.796,"lower":0.729,"upper":0.855,"resamples":1000,"skipped":0}},
          "decentralized":{"concordance":0.804,"interval":{"estimate":0.804,"lower":0.739,"upper":0.861,"resamples":1000,"skipped":0}}},
         {"centre":"canada","rows":51,"events":3,"pooled":{"concordance":1.0},"decentralized":{"concordance":1.0},"note":"3 events"}]}
        """#

    @Test func theForestPlotHasARowPerCovariateOnALogAxis() throws {
        let ratios = try HazardRatios(json: Array(Self.train.utf8))
        #expect(ratios.coefficients.map(\.name) == ["age", "tgrade=III", "pnodes"])
        let html = HTMLReport.render(logs: sampleLogs(), hazardRatios: ratios)
        #expect(html.contains("<h2>Hazard ratios</h2>"))
        #expect(html.contains("HR (log scale)"))
        #expect(html.contains("1.998 (1.243–3.210), p 0.004") && html.contains("1.050 (1.035–1.065), p &lt; 0.001"))
        // One interval line and one point per covariate, and the line of no effect.
        let plot = ratios.plot().render()
        #expect(plot.components(separatedBy: "stroke=\"#1f77b4\" stroke-width=\"2\"").count - 1 == 3)
        #expect(plot.components(separatedBy: "<rect x=").count - 1 == 3)
        #expect(plot.contains("stroke-dasharray=\"4 3\""))
        // Ticks on the 1-2-5 values of the decades the intervals span (0.97 to 3.21).
        #expect(plot.contains(">1.00</text>") && plot.contains(">2.00</text>"), "\(plot)")
        // The inference object alone reads the same.
        let inner = String(Self.train[Self.train.range(of: "{\"model\"")!.lowerBound...].dropLast(1))
        #expect(try HazardRatios(json: Array(inner.utf8)).coefficients.count == 3)
        #expect(throws: (any Error).self) { try HazardRatios(json: Array("{\"data\":1}".utf8)) }
    }

    @Test func theLeaveOneCentreOutSectionShowsIntervalsAndPointsAlone() throws {
        let loco = try LeaveOneCentreOutResults(json: Array(Self.loco.utf8))
        let html = HTMLReport.render(logs: sampleLogs(), leaveOneCentreOut: loco)
        #expect(html.contains("<h2>Leave one centre out</h2>"))
        #expect(html.contains("<tr><td>northeast</td><td>311</td><td>59</td><td>0.796 (0.729–0.855)</td><td>0.804 (0.739–0.861)</td></tr>"))
        #expect(html.contains("<td>1.000 (too few events)</td>"))
        let plot = loco.plot().render()
        // Northeast's two scores have intervals; canada's two are hollow points only.
        #expect(plot.components(separatedBy: "stroke=\"#1f77b4\" stroke-width=\"2\"").count - 1 == 2)
        #expect(plot.components(separatedBy: "fill=\"#fff\" stroke=\"#1f77b4\"").count - 1 == 2)
        #expect(plot.contains("1.000, 3 events: no interval"))
        #expect(throws: (any Error).self) { try LeaveOneCentreOutResults(json: Array("[]".utf8)) }
    }
}

/// What a researcher hit with long runs and mismatched files: thinning, and a clear refusal of
/// an evaluation of another run.
@Suite struct ReportFixesTests {
    /// A 40,000-round run: each polyline keeps at most 2,000 points — the ends, and every bucket's
    /// lowest and highest — and the report stays small.
    @Test func aLongRunIsThinnedKeepingItsPeaks() {
        var points: [(x: Double, y: Double)] = (1...40_000).map { (Double($0), sin(Double($0) / 500)) }
        points[12_345].y = 9  // a spike the eye must still see
        let kept = LineChart.thinned(points, limit: 2000)
        #expect(kept.count <= 2000 && kept.count > 1000)
        #expect(kept.first!.x == 1 && kept.last!.x == 40_000)
        #expect(kept.contains { $0.y == 9 })
        #expect(zip(kept, kept.dropFirst()).allSatisfy { $0.x < $1.x })
        let logs = sampleLogs(rounds: 40_000)
        let html = HTMLReport.render(logs: logs)
        #expect(html.utf8.count < 1_500_000, "\(html.utf8.count) bytes")
    }

    @Test func anEvaluationOfAnotherMetricIsRefused() {
        let logs = sampleLogs()
        let accuracy = EvaluationReference(metric: "accuracy", centralized: 0.97, decentralized: 0.96, isolated: [])
        #expect(HTMLReport.mismatch(accuracy, logs: logs)?.contains("the evaluation's metric is accuracy but the logs record C-index") == true)
        let cindex = EvaluationReference(metric: "c_index", centralized: 0.84, decentralized: 0.84, isolated: [])
        #expect(HTMLReport.mismatch(cindex, logs: logs) == nil)
    }
}

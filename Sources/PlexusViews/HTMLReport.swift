#if canImport(Glibc)
import Glibc
#endif
public import PlexusLog

/// Reference numbers for the report's metric chart: the papers' table, from `plexus evaluate --json`.
public struct EvaluationReference: Sendable {
    public var metric: String
    public var centralized: Double?
    public var decentralized: Double?
    public var isolated: [(site: String, value: Double)]
    /// Under `[plan.privacy]`: the ε per site the decentralized row's models spent.
    public var decentralizedEpsilon: Double?

    public init(metric: String, centralized: Double?, decentralized: Double?, isolated: [(site: String, value: Double)]) {
        self.metric = metric
        self.centralized = centralized
        self.decentralized = decentralized
        self.isolated = isolated
    }

    /// The reference lines of the table `plexus evaluate --json` writes.
    public init(_ evaluation: EvaluationRecord) {
        metric = evaluation.metric
        var isolated: [(String, Double)] = []
        for row in evaluation.rows {
            guard let mean = row.mean else { continue }
            switch row.setting {
            case "centralized": centralized = mean
            case "decentralized":
                decentralized = mean
                decentralizedEpsilon = row.epsilon.flatMap { $0.isFinite ? $0 : nil }
            case "isolated": isolated.append((row.site ?? "?", mean))
            default: break
            }
        }
        self.isolated = isolated
    }

    /// Reads the JSON that `plexus evaluate --json` writes.
    public init(json: [UInt8]) throws(ConvergenceLogReader.Error) {
        let record: EvaluationRecord
        do {
            record = try PlexusJSON.decode(EvaluationRecord.self, from: json)
        } catch {
            throw ConvergenceLogReader.Error(description: "not an evaluation result: \(error.description)")
        }
        self.init(record)
    }
}

/// The self-contained HTML report: inline SVG charts and a table, no scripts, no network.
public enum HTMLReport {
    /// The metric shown: the first of these the logs carry, on the common test set if there
    /// is one, else on the peers' own validation data.
    static let preferredMetrics = ["c_index", "auc", "accuracy", "f1"]

    public static func metric(in logs: [PeerLog]) -> (scope: String, name: String)? {
        for scope in ["test", "validation"] {
            for name in preferredMetrics {
                if logs.contains(where: { $0.rounds.contains { (scope == "test" ? $0.test : $0.validation)[name] != nil } }) {
                    return (scope, name)
                }
            }
        }
        return nil
    }

    public static func render(
        logs: [PeerLog], evaluation: EvaluationReference? = nil, title: String = "Plexus convergence report",
        hazardRatios: HazardRatios? = nil, leaveOneCentreOut: LeaveOneCentreOutResults? = nil
    ) -> String {
        var charts: [String] = []
        if let (scope, name) = metric(in: logs) {
            var chart = LineChart(
                title: "\(displayName(name)) per peer (\(scope == "test" ? "common test set" : "own validation data"))",
                xLabel: "round", yLabel: displayName(name),
                series: logs.map { log in
                    LineChart.Series(name: log.peer, points: log.rounds.compactMap { r in
                        (scope == "test" ? r.test : r.validation)[name].map { (Double(r.round), $0) }
                    })
                }
            )
            if let evaluation, evaluation.metric == name {
                if let c = evaluation.centralized { chart.references.append(.init(name: "centralized \(fmt(c, 3))", y: c)) }
                for iso in evaluation.isolated { chart.references.append(.init(name: "isolated \(iso.site) \(fmt(iso.value, 3))", y: iso.value)) }
            }
            charts.append(chart.render())
        }
        // The training loss: a learning curve even for a run without a test set.
        let losses = logs.map { log in
            LineChart.Series(name: log.peer, points: log.rounds.compactMap { r in r.loss.flatMap { $0.isFinite ? (Double(r.round), $0) : nil } })
        }
        if losses.contains(where: { !$0.points.isEmpty }) {
            charts.append(LineChart(title: "Training loss per peer (its own rows)", xLabel: "round", yLabel: "loss", series: losses).render())
        }
        var distance = LineChart(
            title: "Consensus distance ‖x − mean of neighbours' copies‖ (log scale)", xLabel: "round", yLabel: "distance",
            series: logs.map { log in
                LineChart.Series(name: log.peer, points: log.rounds.compactMap { r in r.consensusDistance.map { (Double(r.round), $0) } })
            }
        )
        distance.logarithmic = true
        charts.append(distance.render())
        charts.append(LineChart(
            title: "Cumulative bytes sent on the wire", xLabel: "round", yLabel: "bytes",
            series: logs.map { log in
                var total = 0.0
                return LineChart.Series(name: log.peer, points: log.rounds.map { r in
                    total += Double(r.bytesSent)
                    return (Double(r.round), total)
                })
            }
        ).render())
        charts.append(LineChart(
            title: "Compression ratio (float32 bytes ÷ envelope bytes)", xLabel: "round", yLabel: "ratio",
            series: logs.map { log in
                LineChart.Series(name: log.peer, points: log.rounds.compactMap { r in
                    r.compressionRatio.flatMap { $0 > 0 ? (Double(r.round), $0) : nil }
                })
            }
        ).render())
        if let chart = privacyChart(logs) { charts.append(chart) }
        charts.append(topologyDrawing(logs))

        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; background: #fafafa; }
            h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
            .chart { display: block; margin: 12px 0; border: 1px solid #ddd; }
            table { border-collapse: collapse; font-size: 13px; background: #fff; }
            th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            .note { color: #555; font-size: 13px; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            <p class="note">\(logs.count) peers, \(logs.map { $0.rounds.count }.max() ?? 0) rounds logged\(skippedNote(logs)).</p>

            """
        html += "<h2>Final metrics per peer</h2>\n" + finalTable(logs) + "\n"
        if let evaluation { html += "<h2>Evaluation</h2>\n" + evaluationTable(evaluation) + "\n" }
        if let hazardRatios {
            html += "<h2>\(hazardRatios.ratioName == "HR" ? "Hazard" : "Odds") ratios</h2>\n" + hazardRatios.plot().render() + "\n"
        }
        if let leaveOneCentreOut {
            html += "<h2>Leave one centre out</h2>\n" + leaveOneCentreOut.table() + "\n" + leaveOneCentreOut.plot().render() + "\n"
        }
        html += "<h2>Charts</h2>\n" + charts.joined(separator: "\n") + "\n</body></html>\n"
        return html
    }

    /// Why `evaluation` is not the evaluation of the run in `logs` (its metric is not the one the
    /// logs record), or nil when it fits.
    public static func mismatch(_ evaluation: EvaluationReference, logs: [PeerLog]) -> String? {
        guard let (_, name) = metric(in: logs) else { return nil }
        guard evaluation.metric == name else {
            return "the evaluation's metric is \(displayName(evaluation.metric)) but the logs record \(displayName(name)): is it the evaluation of this run (same dataset and model)?"
        }
        return nil
    }

    static func displayName(_ metric: String) -> String {
        switch metric {
        case "c_index": "C-index"
        case "auc": "ROC AUC"
        case "accuracy": "accuracy"
        case "f1": "F1"
        default: metric
        }
    }

    static func skippedNote(_ logs: [PeerLog]) -> String {
        let skipped = logs.map(\.skippedLines).reduce(0, +)
        return skipped == 0 ? "" : "; \(skipped) corrupt or truncated log line\(skipped == 1 ? "" : "s") skipped"
    }

    /// The last (ε, δ) a peer's log states (`privacy` on its round lines, under `[plan.privacy]`).
    static func lastPrivacy(_ log: PeerLog) -> RoundRecord.PrivacySpent? {
        log.rounds.last(where: { $0.privacy != nil })?.privacy
    }

    /// The δ of the logs' privacy records, as a label: one value, or the range when peers differ.
    static func deltaLabel(_ logs: [PeerLog]) -> String {
        let deltas = logs.flatMap { $0.rounds.compactMap { $0.privacy?.delta } }
        guard let lo = deltas.min(), let hi = deltas.max() else { return "" }
        return lo == hi ? "δ = \(lo)" : "δ \(lo)–\(hi)"
    }

    /// ε spent per peer over the rounds, when any log carries privacy records; `nil` otherwise.
    static func privacyChart(_ logs: [PeerLog]) -> String? {
        guard logs.contains(where: { lastPrivacy($0) != nil }) else { return nil }
        return LineChart(
            title: "Privacy spent: ε per site (\(deltaLabel(logs)))", xLabel: "round", yLabel: "ε",
            series: logs.map { log in
                LineChart.Series(name: log.peer, points: log.rounds.compactMap { r in r.privacy.map { (Double(r.round), $0.epsilon) } })
            }
        ).render()
    }

    static func finalTable(_ logs: [PeerLog]) -> String {
        let metrics = HTMLReport.preferredMetrics
        let privacy = logs.contains { lastPrivacy($0) != nil }
        var rows = "<table class=\"final\"><tr><th>peer</th><th>rounds</th><th>loss</th>"
        for m in metrics where logs.contains(where: { $0.rounds.last.map { ($0.test[m] ?? $0.validation[m]) != nil } ?? false }) {
            rows += "<th>\(displayName(m))</th>"
        }
        rows += "<th>consensus distance</th><th>bytes sent</th><th>rejected</th>"
        rows += privacy ? "<th>ε spent (\(escape(deltaLabel(logs))))</th></tr>\n" : "</tr>\n"
        for log in logs {
            guard let last = log.rounds.last else {
                rows += "<tr><td>\(escape(log.peer))</td><td>0</td><td colspan=\"5\">no rounds logged</td></tr>\n"
                continue
            }
            rows += "<tr><td>\(escape(log.peer))</td><td>\(last.round)</td><td>\(last.loss.map { fmt($0, 4) } ?? "–")</td>"
            for m in metrics where logs.contains(where: { $0.rounds.last.map { ($0.test[m] ?? $0.validation[m]) != nil } ?? false }) {
                rows += "<td>\((last.test[m] ?? last.validation[m]).map { fmt($0, 4) } ?? "–")</td>"
            }
            let bytes = log.rounds.map(\.bytesSent).reduce(0, +)
            let rejected = log.rounds.flatMap { $0.rejected.values }.reduce(0, +)
            rows += "<td>\(last.consensusDistance.map { label($0) } ?? "–")</td><td>\(bytes)</td><td>\(rejected)</td>"
            if privacy { rows += "<td class=\"epsilon\">\(lastPrivacy(log).map { fmt($0.epsilon, 3) } ?? "–")</td>" }
            rows += "</tr>\n"
        }
        return rows + "</table>"
    }

    static func evaluationTable(_ e: EvaluationReference) -> String {
        var rows = "<table class=\"evaluation\"><tr><th>setting</th><th>\(displayName(e.metric))</th></tr>\n"
        if let c = e.centralized { rows += "<tr><td>centralized (pooled data)</td><td>\(fmt(c, 4))</td></tr>\n" }
        if let d = e.decentralized {
            let spent = e.decentralizedEpsilon.map { ", ε = \(fmt($0, 3)) per site" } ?? ""
            rows += "<tr><td>decentralized (Plexus\(spent))</td><td>\(fmt(d, 4))</td></tr>\n"
        }
        for iso in e.isolated { rows += "<tr><td>isolated \(escape(iso.site))</td><td>\(fmt(iso.value, 4))</td></tr>\n" }
        return rows + "</table>"
    }

    /// Peers on a circle, links from the neighbours each peer's rounds name.
    static func topologyDrawing(_ logs: [PeerLog]) -> String {
        let peers = logs.map(\.peer)
        let size = 360.0, center = 180.0, radius = 130.0
        var position: [String: (Double, Double)] = [:]
        for (i, p) in peers.enumerated() {
            let angle = 2 * Double.pi * Double(i) / Double(max(peers.count, 1)) - Double.pi / 2
            position[p] = (center + radius * cos(angle), center + radius * sin(angle))
        }
        var edges = Set<[String]>()
        for log in logs {
            for other in log.rounds.last?.staleness.keys ?? [:].keys where position[other] != nil {
                edges.insert([log.peer, other].sorted())
            }
        }
        var svg = ##"<svg xmlns="http://www.w3.org/2000/svg" class="chart topology" width="\##(fmt(size + 200))" height="\##(fmt(size))" role="img" aria-label="topology"><rect width="100%" height="100%" fill="#ffffff"/>"##
        svg += ##"<text class="title" x="12" y="20" font-size="15" font-weight="bold" fill="#222">Topology (\##(peers.count) peers, \##(edges.count) links)</text>"##
        for edge in edges.sorted(by: { $0.joined() < $1.joined() }) {
            let (x1, y1) = position[edge[0]]!, (x2, y2) = position[edge[1]]!
            svg += ##"<line class="link" x1="\##(fmt(x1))" y1="\##(fmt(y1))" x2="\##(fmt(x2))" y2="\##(fmt(y2))" stroke="#999" stroke-width="1.5"/>"##
        }
        for (i, p) in peers.enumerated() {
            let (x, y) = position[p]!
            let color = LineChart.palette[i % LineChart.palette.count]
            svg += ##"<circle class="peer" cx="\##(fmt(x))" cy="\##(fmt(y))" r="9" fill="\##(color)"/><text x="\##(fmt(x + 12))" y="\##(fmt(y + 4))" font-size="12" fill="#222">\##(escape(p))</text>"##
        }
        return svg + "</svg>"
    }
}

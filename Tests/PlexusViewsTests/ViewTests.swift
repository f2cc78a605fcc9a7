import Foundation
import PlexusLog
import PlexusViews
import Testing

/// Convergence logs for three peers on a triangle, as the engine writes them.
func sampleLogs(rounds: Int = 20, corruptTail: Bool = false) -> [PeerLog] {
    ["hospital-a", "hospital-b", "hospital-c"].enumerated().map { i, peer in
        var text = #"{"schema":"plexus.convergence","version":1,"peer":"\#(peer)","network":"t","plan_hash":"00","model":"cox","codec":"lossless","parameters":10,"samples":100}"# + "\n"
        let others = ["hospital-a", "hospital-b", "hospital-c"].filter { $0 != peer }
        for r in 1...rounds {
            let metric = 0.6 + 0.2 * (1 - 1 / Double(r)) + 0.01 * Double(i)
            text += #"{"type":"round","time":\#(1000 + r),"peer":"\#(peer)","round":\#(r),"loss":\#(1.0 / Double(r)),"test":{"c_index":\#(metric)},"consensus_distance":\#(1.0 / Double(r * r)),"consensus_distance_relative":0.1,"bytes_sent":\#(1000 + r),"bytes_received":2000,"compression_ratio":1.2,"accepted":2,"rejected":{"gap":\#(r == 3 ? 1 : 0)},"staleness":{"\#(others[0])":0,"\#(others[1])":0},"seconds":{"train":0.01,"encode":0.001,"apply":0.001}}"# + "\n"
        }
        text += #"{"type":"event","time":1030,"peer":"\#(peer)","round":3,"event":"rejected","from":"\#(others[0])","reason":"gap","message":"x"}"# + "\n"
        if corruptTail { text += #"{"type":"round","time":1099,"peer":"\#(peer)","rou"# }
        return ConvergenceLogReader.parse(text, peer: peer)
    }
}

@Suite struct ViewTests {
    @Test func readerSkipsAndCountsCorruptLines() {
        let logs = sampleLogs(corruptTail: true)
        #expect(logs.allSatisfy { $0.rounds.count == 20 && $0.events.count == 1 && $0.skippedLines == 1 })
        let garbage = ConvergenceLogReader.parse("not json\n{\"type\":\"round\"}\n{\"type\":\"unknown\"}\n\u{0}\u{1}\n", peer: "x")
        #expect(garbage.skippedLines == 4 && garbage.rounds.isEmpty)
    }

    @Test func reportHasEverySeriesAxisLabelAndLegend() {
        let evaluation = EvaluationReference(metric: "c_index", centralized: 0.843, decentralized: 0.84, isolated: [("west", 0.671), ("south", 0.747)])
        let html = HTMLReport.render(logs: sampleLogs(), evaluation: evaluation)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") || html.components(separatedBy: "http://").dropFirst().allSatisfy { $0.hasPrefix("www.w3.org/2000/svg") })
        // Five line charts (the metric, the training loss, distance, bytes, compression) with one
        // polyline per peer, plus the topology drawing.
        #expect(html.components(separatedBy: "<polyline class=\"series\"").count - 1 == 5 * 3)
        #expect(html.contains("Training loss per peer (its own rows)"))
        // Each reference line is labelled at its end, with its own dash pattern.
        #expect(html.contains(">isolated west 0.671</text>") && html.contains("class=\"reference-label\""))
        #expect(html.contains("stroke-dasharray=\"6 4\"") && html.contains("stroke-dasharray=\"2 3\"") && html.contains("stroke-dasharray=\"8 3 2 3\""))
        #expect(html.components(separatedBy: "class=\"reference\"").count - 1 == 3)  // centralized + 2 isolated
        #expect(html.contains("C-index per peer (common test set)"))
        #expect(html.contains(">round</text>"))
        #expect(html.contains("centralized 0.843"))
        #expect(html.components(separatedBy: "<circle class=\"peer\"").count - 1 == 3)
        #expect(html.components(separatedBy: "<line class=\"link\"").count - 1 == 3)
        #expect(html.contains("<g class=\"legend\">"))
        // The final table: one row per peer with its last C-index.
        #expect(html.contains("<td>hospital-b</td><td>20</td>"))
        // No privacy records: no ε chart, no ε column.
        #expect(!html.contains("Privacy spent") && !html.contains("ε"))
    }

    /// Logs with `privacy` on their round lines: a chart of ε over the rounds, one series per
    /// peer with every round's value, and each peer's last ε in the final table.
    @Test func reportChartsThePrivacySpent() throws {
        var logs = sampleLogs()
        func spent(_ peer: Int, _ round: Int) -> Double { Double(peer + 1) * 0.25 * Double(round).squareRoot() }
        for i in logs.indices {
            for k in logs[i].rounds.indices { logs[i].rounds[k].privacy = .init(epsilon: spent(i, logs[i].rounds[k].round), delta: 1e-5) }
        }
        // One peer stops logging ε after round 10: its last stated value is what the table shows.
        for k in 10..<20 { logs[2].rounds[k].privacy = nil }
        let html = HTMLReport.render(logs: logs)
        #expect(html.contains("Privacy spent: ε per site (δ = 1e-05)"))
        // The five line charts of every report, and the ε chart.
        #expect(html.components(separatedBy: "<polyline class=\"series\"").count - 1 == 6 * 3)
        let chart = try #require(html.components(separatedBy: "<svg").first { $0.contains("Privacy spent") })
        let points = chart.components(separatedBy: "<polyline").dropFirst().map { polyline in
            polyline.components(separatedBy: "points=\"")[1].prefix { $0 != "\"" }.split(separator: " ").count
        }
        #expect(points == [20, 20, 10], "\(points)")
        // The y axis spans the largest ε (hospital-b's 0.5·√20 ≈ 2.236): a tick label at 2.
        #expect(chart.contains(">2</text>") && chart.contains(">ε</text>"))
        #expect(html.contains("<th>ε spent (δ = 1e-05)</th>"))
        let cells = html.components(separatedBy: "<td class=\"epsilon\">").dropFirst().map { $0.prefix { $0 != "<" } }
        #expect(cells == ["1.118", "2.236", "2.372"], "\(cells)")  // 0.25·√20, 0.5·√20, 0.75·√10
        // The evaluation table names the decentralized row's ε (`plexus evaluate --json`'s `epsilon`).
        let record = EvaluationRecord(
            dataset: "wdbc.csv", topology: "t", model: "logistic", codec: "lossless", metric: "accuracy", seeds: [0], decentralizedBytes: [1],
            rows: [
                .init(setting: "centralized", site: nil, mean: 0.97, sd: 0, perSeed: [], epsilon: .infinity),
                .init(setting: "decentralized", site: nil, mean: 0.96, sd: 0, perSeed: [], epsilon: 2.5),
            ])
        let evaluated = HTMLReport.render(logs: logs, evaluation: EvaluationReference(record))
        #expect(evaluated.contains("<td>decentralized (Plexus, ε = 2.500 per site)</td>") && evaluated.contains("<td>centralized (pooled data)</td>"))
    }

    @Test func watchFitsEightyColumns() {
        let lines = WatchView.render(logs: sampleLogs(), now: 1025, directory: "/var/log/plexus/a-very-long-directory-name-for-the-logs-of-this-network")
        #expect(lines.count == 2 + 3)
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(lines.map(\.count))")
        #expect(lines[2].hasPrefix("hospital-a"))
        #expect(lines[2].contains("20"))
        #expect(lines[2].contains("▁") || lines[2].contains("█"))
        #expect(WatchView.sparkline([1, 2, 3, 4, 5, 6, 7, 8], width: 8) == "▁▂▃▄▅▆▇█")
        #expect(WatchView.plainLines(logs: sampleLogs()).first == "hospital-a round=20 loss=0.05 c_index=0.79 distance=0.0025")
    }

    /// Quarantined neighbours are listed under the peer's row until a `released` event.
    @Test func watchShowsQuarantinedNeighbours() {
        var logs = sampleLogs()
        func event(_ kind: String, _ neighbour: String, round: Int) -> EventRecord {
            EventRecord(time: 1040, peer: "hospital-a", round: round, event: kind, neighbour: neighbour, cause: kind == "quarantined" ? "distance" : nil)
        }
        logs[0].events += [event("quarantined", "hospital-c", round: 4), event("quarantined", "hospital-b", round: 5), event("released", "hospital-b", round: 16)]
        #expect(logs[0].quarantined.map(\.neighbour) == ["hospital-c"])
        let lines = WatchView.render(logs: logs, now: 1025, directory: "/logs")
        #expect(lines.count == 2 + 3 + 1)
        #expect(lines[3] == "  quarantined: hospital-c (distance, round 4)", "\(lines)")
        #expect(lines.allSatisfy { $0.count <= 80 })
        #expect(WatchView.plainLines(logs: logs).first?.hasSuffix(" quarantined=hospital-c") == true)
    }

    /// Under `[plan.privacy]` the ε a peer has spent, from its last round line, under its row.
    @Test func watchShowsThePrivacySpent() {
        var logs = sampleLogs()
        logs[1].rounds[logs[1].rounds.count - 1].privacy = .init(epsilon: 3.14159, delta: 1e-5)
        let lines = WatchView.render(logs: logs, now: 1025, directory: "/logs")
        #expect(lines.count == 2 + 3 + 1)
        #expect(lines[4] == "  privacy: ε 3.1416 spent (δ 1e-5)", "\(lines)")
        #expect(lines.allSatisfy { $0.count <= 80 })
        #expect(WatchView.plainLines(logs: logs)[1].hasSuffix(" epsilon=3.1416"))
        #expect(!WatchView.plainLines(logs: logs)[0].contains("epsilon"))
    }

    /// The operator's screen: round of the plan's rounds, ✓ for a finished peer, ! and a line
    /// for one whose log stopped (here 100 s without a line where rounds take 1 s), the slowest
    /// round and an ETA in the header.
    @Test func watchShowsProgressFinishedAndStalledPeers() throws {
        var logs = sampleLogs()
        logs[0].header?.rounds = 40
        logs[1].header?.rounds = 40
        logs[2].header?.rounds = 20
        #expect(WatchView.progress(logs[2], now: 1130) == .finished)
        #expect(WatchView.progress(logs[0], now: 1031) == .running)
        #expect(WatchView.progress(logs[0], now: 1130) == .stalled(seconds: 100))
        #expect(WatchView.eta(logs) == 20)
        let lines = WatchView.render(logs: logs, now: 1130, directory: "/logs")
        #expect(lines[0] == "plexus watch /logs — 3 peers, round ≥ 20 of 40, 1 finished, ETA 20s", "\(lines[0])")
        let a = try #require(lines.firstIndex { $0.hasPrefix("hospital-a") })
        #expect(lines[a].contains("20/40 !"), "\(lines[a])")
        #expect(lines[a + 1] == "  stalled: no new line for 1m40s; its rounds took 1 s — is the node running?", "\(lines)")
        let c = try #require(lines.firstIndex { $0.hasPrefix("hospital-c") })
        #expect(lines[c].contains("20/20 ✓"), "\(lines[c])")
        #expect(lines.allSatisfy { $0.count <= 80 }, "\(lines.map(\.count))")
        #expect(WatchView.plainLines(logs: logs).last?.hasSuffix(" finished") == true)
        let done = WatchView.render(logs: [logs[2]], now: 1130, directory: "/logs")
        #expect(done[0].contains("1 peers, all finished (20 rounds)"), "\(done[0])")
    }

    /// Ids are never cut: the id column widens; on a narrow terminal the trend and the distance
    /// and rate columns give way, and an id too long even then gets its own line.
    @Test func watchNeverCutsIdsAndFitsNarrowTerminals() {
        var logs = sampleLogs()
        let long = "university-hospital-of-somewhere-far-away-01"  // 44 characters
        logs[1].peer = long
        let wide = WatchView.render(logs: logs, now: 1025, directory: "/logs", width: 120)
        #expect(wide.contains { $0.hasPrefix(long + " ") }, "\(wide)")
        #expect(wide.allSatisfy { $0.count <= 120 })
        for width in [80, 60, 50, 40] {
            let lines = WatchView.render(logs: logs, now: 1025, directory: "/logs", width: width)
            #expect(lines.contains { $0.hasPrefix(long) }, "width \(width): \(lines)")
            // Only an id longer than the terminal itself is wider (the terminal wraps it; it is not cut).
            #expect(lines.allSatisfy { $0.count <= width || $0 == long }, "width \(width): \(lines.map(\.count))")
            #expect(lines.contains { $0.hasPrefix("hospital-a") || $0 == "hospital-a" })
        }
        let narrow = WatchView.render(logs: logs, now: 1025, directory: "/logs", width: 50)
        #expect(narrow.contains(long), "an id too long for the row gets its own line: \(narrow)")
        #expect(!narrow[1].contains("dist") && !narrow[1].contains("B/s"))
    }

    /// Numbers from a log file are hostile too: a header claiming Int.max rounds, rounds of −5
    /// and −4 and a round 1e300 s long render (an ETA of `?`) instead of trapping on
    /// Int.max − (−4).
    @Test func hostileNumbersInALogRenderWithoutTrapping() throws {
        let text = #"{"schema":"plexus.convergence","version":1,"peer":"x","network":"t","plan_hash":"00","model":"cox","codec":"lossless","parameters":1,"samples":1,"rounds":9223372036854775807}"# + "\n"
            + #"{"type":"round","time":1,"peer":"x","round":-5,"loss":1,"consensus_distance":0,"consensus_distance_relative":0,"bytes_sent":0,"bytes_received":0,"compression_ratio":1,"accepted":0,"rejected":{},"staleness":{},"seconds":{"train":0,"encode":0,"apply":0}}"# + "\n"
            + #"{"type":"round","time":1e300,"peer":"x","round":-4,"loss":1,"consensus_distance":0,"consensus_distance_relative":0,"bytes_sent":0,"bytes_received":0,"compression_ratio":1,"accepted":0,"rejected":{},"staleness":{},"seconds":{"train":0,"encode":0,"apply":0}}"# + "\n"
        let log = ConvergenceLogReader.parse(text, peer: "x")
        try #require(log.rounds.count == 2 && log.header?.rounds == Int.max)
        let lines = WatchView.render(logs: [log], now: 1000, directory: "/logs")
        #expect(lines[0].contains("round ≥ -4 of 9223372036854775807, ETA ?"), "\(lines[0])")
        #expect(WatchView.duration(.infinity) == "?" && WatchView.duration(.nan) == "?")
        #expect(WatchView.duration(-1e300) == "0s" && WatchView.duration(1e300) == "11574074d01h")
        #expect(WatchView.duration(93_784) == "1d02h" && WatchView.duration(3725) == "1h02m" && WatchView.duration(185) == "3m05s")
    }
}

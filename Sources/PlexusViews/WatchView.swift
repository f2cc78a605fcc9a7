public import PlexusLog

/// The `plexus watch` screen: one row per peer, fitting 80 columns.
public enum WatchView {
    static let sparks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// A sparkline of the whole series in at most `width` characters (evenly sampled, the last
    /// value always shown), scaled to its own range.
    public static func sparkline(_ values: [Double], width: Int) -> String {
        let finite = values.filter(\.isFinite)
        guard width > 0 else { return "" }
        let recent: [Double] = finite.count <= width
            ? finite
            : (0..<width).map { finite[($0 * (finite.count - 1)) / max(width - 1, 1)] }
        guard let lo = recent.min(), let hi = recent.max() else { return "" }
        return String(recent.map { v in
            hi > lo ? sparks[min(7, Int((v - lo) / (hi - lo) * 7.999))] : sparks[3]
        })
    }

    /// The screen's lines for `logs` at wall-clock time `now` (Unix seconds).
    public static func render(logs: [PeerLog], now: Double, directory: String) -> [String] {
        let metric = HTMLReport.metric(in: logs)
        let metricTitle = metric.map { HTMLReport.displayName($0.name) } ?? "metric"
        var lines = [
            clip("plexus watch \(directory) — \(logs.count) peers — q or Ctrl-C to quit", 80),
            pad("peer", 11) + lpad("round", 6) + lpad("loss", 9) + lpad(String(metricTitle.prefix(7)), 8)
                + lpad("dist", 9) + lpad("B/s", 8) + lpad("age", 6) + lpad("rej", 5) + "  " + "trend",
        ]
        for log in logs {
            let last = log.rounds.last
            let values = metric.map { m in log.rounds.compactMap { (m.scope == "test" ? $0.test : $0.validation)[m.name] } } ?? []
            var rate = "–"
            if log.rounds.count >= 2 {
                let a = log.rounds[log.rounds.count - 2], b = log.rounds[log.rounds.count - 1]
                let dt = b.time - a.time
                if dt > 0 { rate = compact(Double(b.bytesSent + b.bytesReceived) / dt) }
            }
            let lastTime = max(last?.time ?? 0, log.events.last?.time ?? 0)
            let age = lastTime > 0 ? compact(max(0, now - lastTime)) + "s" : "–"
            let rejected = log.rounds.flatMap { $0.rejected.values }.reduce(0, +)
            var row = pad(String(log.peer.prefix(10)), 11)
            row += lpad(last.map { String($0.round) } ?? "–", 6)
            row += lpad(last?.loss.map { short($0) } ?? "–", 9)
            row += lpad(values.last.map { short($0) } ?? "–", 8)
            row += lpad(last?.consensusDistance.map { short($0) } ?? "–", 9)
            row += lpad(rate, 8) + lpad(age, 6) + lpad(String(rejected), 5) + "  "
            row += sparkline(values, width: 80 - row.count)
            lines.append(clip(row, 80))
            let quarantined = log.quarantined
            if !quarantined.isEmpty {
                let names = quarantined.map { "\($0.neighbour) (\($0.cause), round \($0.round))" }.joined(separator: ", ")
                lines.append(clip("  quarantined: " + names, 80))
            }
        }
        let skipped = logs.map(\.skippedLines).reduce(0, +)
        if skipped > 0 { lines.append("\(skipped) corrupt or truncated line\(skipped == 1 ? "" : "s") skipped") }
        return lines
    }

    /// One plain line per peer, for output that is not a terminal.
    public static func plainLines(logs: [PeerLog]) -> [String] {
        logs.compactMap { log in
            guard let last = log.rounds.last else { return nil }
            let metric = HTMLReport.metric(in: [log])
            let value = metric.flatMap { m in (m.scope == "test" ? last.test : last.validation)[m.name].map { "\(m.name)=\(short($0))" } } ?? ""
            let quarantined = log.quarantined.map(\.neighbour)
            return "\(log.peer) round=\(last.round) loss=\(last.loss.map { short($0) } ?? "-") \(value) distance=\(last.consensusDistance.map { short($0) } ?? "-")"
                + (quarantined.isEmpty ? "" : " quarantined=" + quarantined.joined(separator: ","))
        }
    }

    static func short(_ v: Double) -> String {
        guard v.isFinite else { return "nan" }
        let a = abs(v)
        if a != 0 && (a < 1e-3 || a >= 1e5) { return label(v) }
        return trimmed(v, a >= 100 ? 1 : 4)
    }

    static func compact(_ v: Double) -> String {
        if v >= 1e9 { return fmt(v / 1e9, 1) + "G" }
        if v >= 1e6 { return fmt(v / 1e6, 1) + "M" }
        if v >= 1e3 { return fmt(v / 1e3, 1) + "k" }
        return fmt(v, v < 10 ? 1 : 0)
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
    static func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(n)) }
}

public import PlexusLog

/// The `plexus watch` screen: one row per peer, fitting the terminal (80 columns by default).
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

    /// What the screen says about one peer's progress.
    public enum Progress: Equatable, Sendable {
        /// No round yet.
        case starting
        case running
        /// Its last round is the plan's last.
        case finished
        /// No line for `seconds`, far longer than its rounds take: the node may be stuck or gone.
        case stalled(seconds: Double)
    }

    /// A log stalls when its last line is older than this many typical rounds, and at least
    /// ``stallFloor`` seconds old.
    public static let stallRounds = 10.0
    public static let stallFloor = 30.0

    /// The median of the last (up to) 10 round durations, in seconds; nil with fewer than 2 rounds
    /// or without wall-clock times (the simulator's deterministic logs).
    public static func typicalRound(_ log: PeerLog) -> Double? {
        let times = log.rounds.suffix(11).map(\.time)
        guard times.count >= 2, times.first! > 0 else { return nil }
        let gaps = zip(times, times.dropFirst()).map { $1 - $0 }.sorted()
        return gaps[gaps.count / 2]
    }

    public static func progress(_ log: PeerLog, now: Double) -> Progress {
        guard let last = log.rounds.last else { return .starting }
        if let rounds = log.header?.rounds, last.round >= rounds { return .finished }
        let lastTime = max(last.time, log.events.last?.time ?? 0)
        guard lastTime > 0 else { return .running }
        let age = now - lastTime
        let limit = max(stallFloor, stallRounds * (typicalRound(log) ?? 0))
        return age > limit ? .stalled(seconds: age) : .running
    }

    /// Seconds until the slowest running peer's last round, from its typical round; nil when unknown.
    public static func eta(_ logs: [PeerLog]) -> Double? {
        var longest: Double?
        for log in logs {
            guard let rounds = log.header?.rounds, let round = log.rounds.last?.round, round < rounds, let typical = typicalRound(log) else { continue }
            // In Double: both counts come from a file, and their difference may not fit an Int.
            longest = max(longest ?? 0, (Double(rounds) - Double(round)) * typical)
        }
        return longest
    }

    /// The screen's lines for `logs` at wall-clock time `now` (Unix seconds), at most `width`
    /// columns wide (at least 40). Peer ids are never cut: the id column is as wide as the
    /// longest id, the trend and then the distance and rate columns give way on a narrow
    /// terminal, and an id too long even for that gets a line of its own.
    public static func render(logs: [PeerLog], now: Double, directory: String, width: Int = 80) -> [String] {
        let width = max(width, 40)
        let metric = HTMLReport.metric(in: logs)
        let metricTitle = metric.map { HTMLReport.displayName($0.name) } ?? "metric"
        let finished = logs.filter { progress($0, now: now) == .finished }.count
        var summary = "\(logs.count) peers"
        if let rounds = logs.compactMap({ $0.header?.rounds }).max() {
            let slowest = logs.map { $0.rounds.last?.round ?? 0 }.min() ?? 0
            summary += finished == logs.count && !logs.isEmpty
                ? ", all finished (\(rounds) rounds)"
                : ", round ≥ \(slowest) of \(rounds)\(finished > 0 ? ", \(finished) finished" : "")\(eta(logs).map { ", ETA " + duration($0) } ?? "")"
        }
        let idWidth = max(4, logs.map(\.peer.count).max() ?? 4)
        // Columns: round (r/N and a marker), loss, metric, [dist, B/s], age, rej, [trend].
        let roundWidth = max(6, (logs.compactMap { $0.header?.rounds }.max().map { 2 * String($0).count + 3 }) ?? 6)
        let full = idWidth + 1 + roundWidth + 9 + 8 + 9 + 8 + 6 + 5
        let compactColumns = full + 12 > width  // no room for a trend of 10: drop dist and B/s
        let ownLine = idWidth + 1 + roundWidth + 9 + 8 + 6 + 5 > width
        var header = (ownLine ? "" : pad("peer", idWidth + 1)) + lpad("round", roundWidth) + lpad("loss", 9) + lpad(String(metricTitle.prefix(7)), 8)
        if !compactColumns { header += lpad("dist", 9) + lpad("B/s", 8) }
        header += lpad("age", 6) + lpad("rej", 5)
        if header.count + 8 <= width { header += "  trend" }
        // The title: the directory and the summary, and the key hint if it fits.
        var title = "plexus watch \(directory) — \(summary)"
        if title.count + 22 <= width { title += " — q or Ctrl-C to quit" }
        var lines = [clip(title, width), header]
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
            let state = progress(log, now: now)
            var round = last.map { String($0.round) } ?? "–"
            if let rounds = log.header?.rounds { round += "/\(rounds)" }
            switch state {
            case .finished: round += " ✓"
            case .stalled: round += " !"
            default: round += "  "
            }
            if ownLine { lines.append(log.peer) }
            var row = ownLine ? "" : pad(log.peer, idWidth + 1)
            row += lpad(round, roundWidth)
            row += lpad(last?.loss.map { short($0) } ?? "–", 9)
            row += lpad(values.last.map { short($0) } ?? "–", 8)
            if !compactColumns { row += lpad(last?.consensusDistance.map { short($0) } ?? "–", 9) + lpad(rate, 8) }
            row += lpad(age, 6) + lpad(String(rejected), 5)
            if row.count + 3 < width { row += "  " + sparkline(values, width: width - row.count - 2) }
            lines.append(row)
            if case .stalled(let seconds) = state {
                let typical = typicalRound(log).map { "; its rounds took \(trimmed($0, 2)) s" } ?? ""
                lines.append(clip("  stalled: no new line for \(duration(seconds))\(typical) — is the node running?", width))
            }
            let quarantined = log.quarantined
            if !quarantined.isEmpty {
                let names = quarantined.map { "\($0.neighbour) (\($0.cause), round \($0.round))" }.joined(separator: ", ")
                lines.append("  quarantined: " + names)
            }
            if let privacy = last?.privacy {
                lines.append(clip("  privacy: ε \(short(privacy.epsilon)) spent (δ \(label(privacy.delta)))", width))
            }
        }
        let skipped = logs.map(\.skippedLines).reduce(0, +)
        if skipped > 0 { lines.append("\(skipped) corrupt or truncated line\(skipped == 1 ? "" : "s") skipped") }
        return lines
    }

    /// `2d03h`, `1h02m`, `3m05s`, `42s`; `?` for a non-finite value. Times come from files and
    /// sockets: the value is clamped before it becomes an integer, so none can trap.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(min(max(seconds, 0), 1e12).rounded())
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + two(s % 60) + "s" }
        if s < 86_400 { return "\(s / 3600)h" + two(s / 60 % 60) + "m" }
        return "\(s / 86_400)d" + two(s / 3600 % 24) + "h"
    }

    /// One plain line per peer, for output that is not a terminal.
    public static func plainLines(logs: [PeerLog]) -> [String] {
        logs.compactMap { log in
            guard let last = log.rounds.last else { return nil }
            let metric = HTMLReport.metric(in: [log])
            let value = metric.flatMap { m in (m.scope == "test" ? last.test : last.validation)[m.name].map { "\(m.name)=\(short($0))" } } ?? ""
            let quarantined = log.quarantined.map(\.neighbour)
            let of = log.header?.rounds.map { "/\($0)" } ?? ""
            var parts = ["\(log.peer) round=\(last.round)\(of)", "loss=\(last.loss.map { short($0) } ?? "-")"]
            if !value.isEmpty { parts.append(value) }
            parts.append("distance=\(last.consensusDistance.map { short($0) } ?? "-")")
            if !quarantined.isEmpty { parts.append("quarantined=" + quarantined.joined(separator: ",")) }
            if let privacy = last.privacy { parts.append("epsilon=\(short(privacy.epsilon))") }
            if log.header?.rounds.map({ last.round >= $0 }) == true { parts.append("finished") }
            return parts.joined(separator: " ")
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

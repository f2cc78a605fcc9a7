import ArgumentParser
import Foundation
import PlexusCore
import PlexusLog
import PlexusNode
import PlexusViews

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running node: its round, its statistics round and every neighbour's session.",
        discussion: """
            Asks the node through its control socket, a Unix socket only the node's user can \
            open (mode 0600, never on the network): <state-dir>/<peer>.sock, or without a state \
            directory $XDG_RUNTIME_DIR/plexus/<peer>.sock (else /tmp/plexus-<uid>/<peer>.sock). \
            Exits 1 when no node answers there.

            Examples:
              plexus status --state-dir /var/lib/plexus/hospital-a --peer hospital-a
              plexus status --socket /var/lib/plexus/hospital-a/hospital-a.sock --json
            """
    )

    @Option(help: "The node's --state-dir.", completion: .directory)
    var stateDir: String?

    @Option(help: "The node's peer id.")
    var peer: String?

    @Option(help: "The control socket's path (instead of --state-dir and --peer).", completion: .file())
    var socket: String?

    @Flag(help: "Print the status as JSON.")
    var json = false

    func run() throws {
        let path: String
        if let socket {
            path = socket
        } else {
            guard let peer else { throw ValidationError("give --peer (and the node's --state-dir), or --socket PATH") }
            guard let id = PeerID(peer) else { throw ValidationError("--peer: \(PeerID.problem(with: peer) ?? "invalid")") }
            path = ControlProtocol.path(stateDirectory: stateDir, peer: id)
        }
        let status: NodeStatus
        do { status = try ControlProtocol.query(path: path) } catch { throw CLIError(error.description) }
        if json {
            print(try PlexusJSON.string(status, pretty: true))
        } else {
            print(Self.text(status, now: Date()), terminator: "")
        }
    }

    /// The `wg show`-like text: the node, then one block per neighbour. Ids are never cut.
    static func text(_ s: NodeStatus, now: Date) -> String {
        var out = "peer \(s.peer): network '\(s.network)', plexus \(s.version), up \(WatchView.duration(s.uptimeSeconds))\n"
        switch s.phase {
        case "statistics": out += "  phase: statistics round, \(s.statisticsReceived) of \(s.statisticsExpected) sites in; training has not started\n"
        case "finished": out += "  phase: finished, \(s.planRounds) of \(s.planRounds) rounds\n"
        default: out += "  phase: training, round \(s.round) of \(s.planRounds) (\(percent(s.round, s.planRounds)))\n"
        }
        if s.phase != "statistics" { out += "  statistics: complete, \(s.statisticsExpected) sites\n" }
        out += "  topology: file fingerprint \(s.topologyFingerprint), plan \(s.planHash)\n"
        let up = s.neighbours.filter(\.sessionUp).count
        out += "  neighbours: \(up) of \(s.neighbours.count) sessions up\n"
        for n in s.neighbours {
            out += "\nneighbour \(n.id)\n"
            if let since = n.since {
                out += "  session: \(n.sessionUp ? "up" : "down") since \(clock(since)) (\(WatchView.duration(now.timeIntervalSince1970 - since)) ago)"
                out += n.lastHandshake.map { "; last handshake \(clock($0))\n" } ?? "\n"
            } else {
                out += "  session: down (never opened)\n"
            }
            out += "  transfer: \(bytes(n.bytesReceived)) received, \(bytes(n.bytesSent)) sent\n"
            var facts: [String] = []
            if let staleness = n.staleness { facts.append("staleness \(staleness) round\(staleness == 1 ? "" : "s")") }
            facts.append(n.sameTopology.map { $0 ? "same topology file" : "ANOTHER topology file" } ?? "topology file not announced yet")
            facts.append(n.quarantined ? "QUARANTINED (out of the consensus step)" : "not quarantined")
            out += "  " + facts.joined(separator: "; ") + "\n"
        }
        return out
    }

    /// In Double: both numbers come from the socket, and a × 100 may not fit an Int.
    static func percent(_ a: Int, _ b: Int) -> String { b > 0 ? "\(Int((100 * Double(a) / Double(b)).clamped(-1e6, 1e6)))%" : "–" }

    static func clock(_ unix: Double) -> String {
        guard unix.isFinite, abs(unix) < 1e11 else { return "?" }
        var t = time_t(unix)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d UTC", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    static func bytes(_ n: Int) -> String {
        if n < 1024 { return "\(n) B" }
        if n < 1 << 20 { return String(format: "%.1f KiB", Double(n) / 1024) }
        if n < 1 << 30 { return String(format: "%.1f MiB", Double(n) / 1048576) }
        return String(format: "%.2f GiB", Double(n) / 1073741824)
    }
}

extension Double {
    func clamped(_ low: Double, _ high: Double) -> Double { Swift.min(Swift.max(self, low), high) }
}

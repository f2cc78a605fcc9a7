import ArgumentParser
import Foundation
import PlexusLog
import PlexusViews

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML report of convergence logs: SVG plots, no scripts, no network.",
        discussion: """
            Charts: the validation metric per peer over rounds (with the centralized and isolated \
            reference lines of --evaluation, the JSON of `plexus evaluate --json`), consensus \
            distance (log scale), cumulative bytes on the wire, compression ratio, a drawing of the \
            topology, and a table of final metrics per peer. Corrupt or truncated log lines are \
            skipped and counted.

            Example:
              plexus evaluate … --json > evaluation.json
              plexus report logs --evaluation evaluation.json --out report.html
            """
    )

    @Argument(help: "The directory of <peer>.jsonl convergence logs.", completion: .directory)
    var logDirectory: String

    @Option(help: "The papers' table from `plexus evaluate --json`, for reference lines.", completion: .file(extensions: ["json"]))
    var evaluation: String?

    @Option(help: "`plexus train --json` of a Cox or logistic fit: a forest plot of its ratios and intervals.", completion: .file(extensions: ["json"]))
    var inference: String?

    @Option(help: "`plexus evaluate --loco --json`: the held-out table and its interval plot.", completion: .file(extensions: ["json"]))
    var loco: String?

    @Option(name: .shortAndLong, help: "The HTML file to write.", completion: .file(extensions: ["html"]))
    var out: String

    @Option(help: "The report's title.")
    var title: String = "Plexus convergence report"

    func run() throws {
        let logs: [PeerLog]
        do { logs = try ConvergenceLogReader.read(directory: logDirectory) } catch { throw CLIError(error.description) }
        var reference: EvaluationReference?
        if let evaluation {
            guard let data = FileManager.default.contents(atPath: evaluation), data.count <= 16 << 20 else {
                throw CLIError("\(evaluation): cannot read the evaluation file (or it is larger than 16 MiB)")
            }
            do {
                reference = try EvaluationReference(json: Array(data))
            } catch {
                throw CLIError("\(evaluation): \(error)")
            }
            if let reference, let problem = HTMLReport.mismatch(reference, logs: logs) { throw CLIError("\(evaluation): \(problem)") }
        }
        func read(_ path: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path), data.count <= 16 << 20 else {
                throw CLIError("\(path): cannot read the file (or it is larger than 16 MiB)")
            }
            return Array(data)
        }
        var ratios: HazardRatios?
        if let inference {
            do { ratios = try HazardRatios(json: try read(inference)) } catch let error as CLIError { throw error } catch { throw CLIError("\(inference): \(error)") }
        }
        var held: LeaveOneCentreOutResults?
        if let loco {
            do { held = try LeaveOneCentreOutResults(json: try read(loco)) } catch let error as CLIError { throw error } catch { throw CLIError("\(loco): \(error)") }
        }
        let html = HTMLReport.render(logs: logs, evaluation: reference, title: title, hazardRatios: ratios, leaveOneCentreOut: held)
        do {
            try html.write(toFile: out, atomically: true, encoding: .utf8)
        } catch {
            throw CLIError("\(out): cannot write the report: \(error.localizedDescription)")
        }
        let skipped = logs.map(\.skippedLines).reduce(0, +)
        print("wrote \(out): \(logs.count) peers, \(logs.map(\.rounds.count).max() ?? 0) rounds\(skipped > 0 ? ", \(skipped) corrupt lines skipped" : "")")
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow convergence logs live: one row per peer, with a sparkline of its metric.",
        discussion: """
            Rows: round of the plan's rounds (✓ finished, ! stalled: no new line for ten typical \
            rounds and at least 30 s), training loss, the validation metric, consensus distance, \
            bytes per second, age of the last line, rejected messages, and a sparkline of the \
            metric; the header gives the slowest peer's round and an ETA. Fits the terminal's \
            width (peer ids are never cut; narrow terminals lose the trend, then the distance and \
            rate columns). Waits for logs to appear in the directory. When standard output is not \
            a terminal, prints one plain line per peer every --interval seconds instead. q or \
            Ctrl-C exits.
            """
    )

    @Argument(help: "The directory of <peer>.jsonl convergence logs.", completion: .directory)
    var logDirectory: String

    @Option(help: "Seconds between updates.")
    var interval: Double = 0.5

    @Flag(help: "Print the current state once and exit.")
    var once = false

    func validate() throws {
        guard interval >= 0.05 && interval <= 3600 else { throw ValidationError("--interval must be from 0.05 to 3600 seconds") }
    }

    func run() throws {
        var logs: [PeerLog] = []
        // --once reports what is there (or why nothing is); otherwise wait for the first log.
        if once {
            do { logs = try ConvergenceLogReader.read(directory: logDirectory) } catch { throw CLIError(error.description) }
        }
        let terminal = StandardStream.output.isTerminal && !once
        let keyboard = terminal ? RawKeyboard() : nil
        defer { keyboard?.restore() }
        if terminal { StandardStream.output.write("\u{1B}[?25l") }
        defer { if terminal { StandardStream.output.write("\u{1B}[?25h\n") } }
        while true {
            // Pick up peers whose files appeared since, and what every file gained.
            if let paths = try? ConvergenceLogReader.logFiles(in: logDirectory) {
                for path in paths where !logs.contains(where: { $0.path == path }) {
                    logs.append(PeerLog(peer: String(path.split(separator: "/").last!.dropLast(6)), path: path))
                }
            }
            for i in logs.indices { ConvergenceLogReader.update(&logs[i]) }
            let now = Date().timeIntervalSince1970
            if logs.isEmpty {
                let waiting = "plexus watch: waiting for convergence logs (*.jsonl) in \(logDirectory)…"
                StandardStream.output.write(terminal ? "\u{1B}[H\u{1B}[2J" + waiting + "\r\n" : waiting + "\n")
            } else if terminal {
                let lines = WatchView.render(logs: logs, now: now, directory: logDirectory, width: Self.terminalWidth())
                StandardStream.output.write("\u{1B}[H\u{1B}[2J" + lines.joined(separator: "\r\n") + "\r\n")
            } else {
                StandardStream.output.write(WatchView.plainLines(logs: logs).map { $0 + "\n" }.joined())
            }
            if once { return }
            let deadline = Date().addingTimeInterval(interval)
            while Date() < deadline {
                if let key = keyboard?.poll(timeoutMilliseconds: 50), key == UInt8(ascii: "q") || key == 3 { return }
                if keyboard == nil { usleep(50_000) }
            }
        }
    }
}

extension Watch {
    /// The terminal's width in columns (80 when it cannot be read).
    static func terminalWidth() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}

/// The terminal in raw mode for single key presses (Ctrl-C arrives as byte 3, so the terminal
/// is restored on the way out); restored on exit.
final class RawKeyboard {
    private var original = termios()
    private var active = false

    init() {
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { return }
        var raw = original
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        active = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0
    }

    func poll(timeoutMilliseconds: Int32) -> UInt8? {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&descriptor, 1, timeoutMilliseconds) > 0 else { return nil }
        var byte: UInt8 = 0
        return Glibc.read(STDIN_FILENO, &byte, 1) == 1 ? byte : nil
    }

    func restore() {
        if active { tcsetattr(STDIN_FILENO, TCSANOW, &original) }
    }
}

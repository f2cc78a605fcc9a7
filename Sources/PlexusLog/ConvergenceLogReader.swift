#if canImport(Glibc)
import Glibc
#endif

/// Everything one peer's file says.
public struct PeerLog: Sendable {
    public var peer: String
    public var path: String
    public var header: LogHeader?
    public var rounds: [RoundRecord] = []
    public var events: [EventRecord] = []
    /// Lines that were not valid JSON or not a record (a node killed mid-write leaves one), or
    /// longer than ``ConvergenceLog/maximumLineBytes``.
    public var skippedLines = 0
    /// Bytes of the file consumed so far (for following a growing file).
    public var offset = 0
    /// Inside an overlong line that ``ConvergenceLogReader/update(_:)`` is skipping to its end.
    var skippingLongLine = false

    /// An empty log for the file at `path`, to be filled by ``ConvergenceLogReader/update(_:)``.
    public init(peer: String, path: String) {
        self.peer = peer
        self.path = path
    }

    /// The neighbours this peer has quarantined now (a `quarantined` event not followed by a
    /// `released` one), in id order, with the round and the cause of their quarantine.
    public var quarantined: [(neighbour: String, round: Int, cause: String)] {
        var open: [String: (round: Int, cause: String)] = [:]
        for event in events {
            guard let neighbour = event.neighbour else { continue }
            if event.event == "quarantined" { open[neighbour] = (event.round, event.cause ?? "?") }
            if event.event == "released" { open[neighbour] = nil }
        }
        return open.keys.sorted().map { ($0, open[$0]!.round, open[$0]!.cause) }
    }
}

/// Reads convergence logs, skipping (and counting) corrupt or truncated lines.
public enum ConvergenceLogReader {
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The `*.jsonl` files in `directory`, sorted by name.
    public static func logFiles(in directory: String) throws(Error) -> [String] {
        guard let dir = opendir(directory) else {
            throw Error(description: "\(directory): cannot open the log directory: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".jsonl") && !name.hasPrefix(".") { names.append(name) }
        }
        guard !names.isEmpty else {
            throw Error(description: "\(directory): no convergence logs (*.jsonl) in this directory")
        }
        return names.sorted().map { directory + "/" + $0 }
    }

    /// Reads every log in `directory`.
    public static func read(directory: String) throws(Error) -> [PeerLog] {
        try logFiles(in: directory).map { path in
            var log = PeerLog(peer: peerName(path), path: path)
            update(&log)
            return log
        }
    }

    /// Reads what was appended to `log.path` since the last call: complete lines only, so a
    /// line being written is picked up whole next time. At most 64 MiB per call. A line longer
    /// than ``ConvergenceLog/maximumLineBytes`` is skipped to its newline (and counted once),
    /// never buffered whole.
    public static func update(_ log: inout PeerLog) {
        let fd = open(log.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard lseek(fd, off_t(log.offset), SEEK_SET) >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var pending: [UInt8] = []
        var consumed = 0
        while consumed < 64 << 20 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            consumed += n
            pending.append(contentsOf: buffer[0..<n])
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                if log.skippingLongLine {
                    log.skippingLongLine = false
                } else {
                    ingest(pending[start..<newline], into: &log)
                }
                log.offset += newline - start + 1
                start = newline + 1
            }
            pending.removeFirst(start)
            if pending.count > ConvergenceLog.maximumLineBytes {
                // An overlong line: count it now, drop what is buffered, skip to its newline.
                if !log.skippingLongLine { log.skippedLines += 1 }
                log.skippingLongLine = true
                log.offset += pending.count
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Parses lines (as from a file) into a log, for tests and tools.
    public static func parse(_ text: String, peer: String) -> PeerLog {
        var log = PeerLog(peer: peer, path: "")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            ingest(Array(line.utf8)[...], into: &log)
        }
        return log
    }

    static func peerName(_ path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return String(file.dropLast(".jsonl".count))
    }

    private static func ingest(_ line: ArraySlice<UInt8>, into log: inout PeerLog) {
        guard !line.isEmpty else { return }
        guard let record = try? ConvergenceLog.decodeLine(line) else {
            log.skippedLines += 1
            return
        }
        switch record {
        case .header(let header):
            log.header = header
            if !header.peer.isEmpty { log.peer = header.peer }
        case .round(let round): log.rounds.append(round)
        case .event(let event): log.events.append(event)
        }
    }
}

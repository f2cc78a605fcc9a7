#if canImport(Glibc)
import Glibc
#endif

/// One round line, read back.
public struct RoundRecord: Sendable, Hashable {
    public var round: Int
    public var time: Double
    public var loss: Double?
    public var validation: [String: Double]
    public var test: [String: Double]
    public var consensusDistance: Double?
    public var relativeConsensusDistance: Double?
    public var bytesSent: Int
    public var bytesReceived: Int
    public var compressionRatio: Double?
    public var accepted: Int
    public var rejected: [String: Int]
    /// Neighbour id → rounds its copy lagged.
    public var staleness: [String: Int]
}

/// One event line, read back.
public struct EventRecord: Sendable, Hashable {
    public var time: Double
    public var round: Int
    public var event: String
    /// The other peer, when the event names one (`from`, `to` or `with`).
    public var other: String?
    public var reason: String?
}

/// Everything one peer's file says.
public struct PeerLog: Sendable {
    public var peer: String
    public var path: String
    public var header: JSONValue?
    public var rounds: [RoundRecord] = []
    public var events: [EventRecord] = []
    /// Lines that were not valid JSON or not a record (a node killed mid-write leaves one).
    public var skippedLines = 0
    /// Bytes of the file consumed so far (for following a growing file).
    public var offset = 0

    /// An empty log for the file at `path`, to be filled by ``ConvergenceLogReader/update(_:)``.
    public init(peer: String, path: String) {
        self.peer = peer
        self.path = path
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
    /// line being written is picked up whole next time. At most 64 MiB per call.
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
                ingest(Array(pending[start..<newline]), into: &log)
                log.offset += newline - start + 1
                start = newline + 1
            }
            pending.removeFirst(start)
        }
    }

    /// Parses lines (as from a file) into a log, for tests and tools.
    public static func parse(_ text: String, peer: String) -> PeerLog {
        var log = PeerLog(peer: peer, path: "")
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            ingest(Array(line.utf8), into: &log)
        }
        return log
    }

    static func peerName(_ path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return String(file.dropLast(".jsonl".count))
    }

    private static func ingest(_ line: [UInt8], into log: inout PeerLog) {
        guard !line.isEmpty else { return }
        guard let value = try? JSONParser.parse(line) else {
            log.skippedLines += 1
            return
        }
        if value["schema"]?.stringValue == ConvergenceLog.schema {
            log.header = value
            if let peer = value["peer"]?.stringValue { log.peer = peer }
            return
        }
        switch value["type"]?.stringValue {
        case "round":
            guard let round = value["round"]?.intValue else {
                log.skippedLines += 1
                return
            }
            log.rounds.append(RoundRecord(
                round: round,
                time: value["time"]?.doubleValue ?? 0,
                loss: value["loss"]?.doubleValue,
                validation: numbers(value["validation"]),
                test: numbers(value["test"]),
                consensusDistance: value["consensus_distance"]?.doubleValue,
                relativeConsensusDistance: value["consensus_distance_relative"]?.doubleValue,
                bytesSent: value["bytes_sent"]?.intValue ?? 0,
                bytesReceived: value["bytes_received"]?.intValue ?? 0,
                compressionRatio: value["compression_ratio"]?.doubleValue,
                accepted: value["accepted"]?.intValue ?? 0,
                rejected: numbers(value["rejected"]).mapValues { Int($0) },
                staleness: numbers(value["staleness"]).mapValues { Int($0) }
            ))
        case "event":
            guard let event = value["event"]?.stringValue else {
                log.skippedLines += 1
                return
            }
            log.events.append(EventRecord(
                time: value["time"]?.doubleValue ?? 0,
                round: value["round"]?.intValue ?? 0,
                event: event,
                other: value["from"]?.stringValue ?? value["to"]?.stringValue ?? value["with"]?.stringValue,
                reason: value["reason"]?.stringValue
            ))
        default:
            log.skippedLines += 1
        }
    }

    private static func numbers(_ value: JSONValue?) -> [String: Double] {
        guard case .object(let members)? = value else { return [:] }
        var out: [String: Double] = [:]
        for (k, v) in members { if let d = v.doubleValue { out[k] = d } }
        return out
    }
}

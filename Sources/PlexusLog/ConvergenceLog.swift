#if canImport(Glibc)
import Glibc
#endif
public import PlexusCore
public import PlexusGossip

/// The convergence log: one JSON-lines file per peer, `<log-dir>/<peer>.jsonl`.
///
/// Schema version 1 (the record types in `LogRecords.swift`; README, "Convergence logs"):
/// - the first line of a file: a ``LogHeader``, `{"schema":"plexus.convergence","version":1,…}`
/// - one ``RoundRecord`` line, `{"type":"round",…}`, per completed round
/// - one ``EventRecord`` line, `{"type":"event",…}`, per notable event (a message rejected, a
///   keyframe sent or requested, a deadline missed, a session opened or closed)
///
/// Lines are encoded by ``PlexusJSON`` (sorted keys; non-finite numbers are `null`). Fields named
/// `time` (wall-clock Unix seconds) and the `seconds` object (phase times) are the only ones that
/// differ between two runs with the same seed.
public enum ConvergenceLog {
    public static let schema = "plexus.convergence"
    public static let version = 1
    /// The longest line written or read, newline excluded: 1 MiB. The writer replaces a longer
    /// record by a `line_too_long` event; the reader skips (and counts) a longer line.
    public static let maximumLineBytes = 1 << 20

    /// The first line of a peer's file.
    public static func header(peer: PeerID, network: String, planHash: String, model: String, codec: String, parameters: Int, samples: Int, rounds: Int? = nil) -> LogHeader {
        LogHeader(peer: peer.rawValue, network: network, planHash: planHash, model: model, codec: codec, parameters: parameters, samples: samples, rounds: rounds)
    }

    /// A round line. `validation` holds the metrics on the peer's own holdout; `test` on a
    /// common test set, when one is given. `virtualTime` is the simulator's clock (seconds).
    public static func round(
        _ report: RoundReport,
        time: Double,
        virtualTime: Double? = nil,
        validation: [(String, Double)] = [],
        test: [(String, Double)] = [],
        privacy: RoundRecord.PrivacySpent? = nil
    ) -> LogRecord {
        .round(RoundRecord(
            time: time, virtualTime: virtualTime, peer: report.peer.rawValue, round: report.round, loss: report.trainingLoss,
            validation: Dictionary(finite: validation), test: Dictionary(finite: test),
            consensusDistance: report.consensusDistance, relativeConsensusDistance: report.relativeConsensusDistance,
            bytesSent: report.bytesSent, bytesReceived: report.bytesReceived, compressionRatio: report.compressionRatio,
            accepted: report.accepted,
            rejected: Dictionary(report.rejected.map { ($0.key.rawValue, $0.value) }, uniquingKeysWith: +),
            staleness: Dictionary(report.staleness.map { ($0.key.rawValue, $0.value) }, uniquingKeysWith: max),
            seconds: PhaseSeconds(train: report.trainSeconds, encode: report.encodeSeconds, apply: report.applySeconds),
            privacy: privacy
        ))
    }

    /// An event line.
    public static func event(_ event: GossipEvent, peer: PeerID, round: Int, time: Double, virtualTime: Double? = nil) -> LogRecord {
        var record = EventRecord(time: time, virtualTime: virtualTime, peer: peer.rawValue, round: round, event: "")
        switch event {
        case .rejected(let from, let reason, let message):
            record.event = "rejected"
            record.from = from.rawValue
            record.reason = reason.rawValue
            record.message = message
        case .keyframeSent(let to, let version):
            record.event = "keyframe_sent"
            record.to = to.rawValue
            record.version = Int(clamping: version)
        case .keyframeRequested(let from, let held):
            record.event = "keyframe_requested"
            record.from = from.rawValue
            record.heldVersion = Int(clamping: held)
        case .deadlineMissed(let r, let missing):
            record.event = "deadline_missed"
            record.missedRound = r
            record.missing = missing.map(\.rawValue)
        case .awaitingFirstSession(let neighbour):
            record.event = "awaiting_first_session"
            record.neighbour = neighbour.rawValue
        case .quarantined(let neighbour, let why):
            record.event = "quarantined"
            record.neighbour = neighbour.rawValue
            record.cause = why.cause.rawValue
            record.score = why.score
            record.message = why.description
        case .released(let neighbour):
            record.event = "released"
            record.neighbour = neighbour.rawValue
        }
        return .event(record)
    }

    /// A session event from the network shell.
    public static func session(_ kind: String, peer: PeerID, other: String, reason: String?, round: Int, time: Double) -> LogRecord {
        .event(EventRecord(time: time, peer: peer.rawValue, round: round, event: kind, with: other, reason: reason))
    }

    /// `record` as one line's bytes, without the newline.
    public static func encodeLine(_ record: LogRecord) throws(PlexusJSON.Error) -> [UInt8] {
        try PlexusJSON.encode(record, pretty: false, nonFiniteAsNull: false)
    }

    /// The record on one line (without its newline); an error for a malformed line or one longer
    /// than ``maximumLineBytes``.
    public static func decodeLine(_ line: some Collection<UInt8>) throws(PlexusJSON.Error) -> LogRecord {
        guard line.count <= maximumLineBytes else {
            throw PlexusJSON.Error(description: "a line of \(line.count) bytes, longer than \(maximumLineBytes)")
        }
        return try PlexusJSON.decode(LogRecord.self, from: Array(line))
    }
}

/// Appends lines to one peer's log file. Each line goes out in one `write(2)`, so a crash
/// leaves whole lines (or one torn last line, which readers skip and count).
public final class ConvergenceLogWriter {
    private let fd: Int32
    public let path: String

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens (creating, or appending to after a restart) `<directory>/<peer>.jsonl`; writes
    /// `header` first when the file is new or empty.
    public init(directory: String, peer: PeerID, header: LogHeader) throws(Error) {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw Error(description: "\(directory): cannot create the log directory: \(String(cString: strerror(errno)))")
        }
        path = directory + "/" + peer.rawValue + ".jsonl"
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Error(description: "\(path): cannot open the log file: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size == 0 { write(.header(header)) }
    }

    deinit { close(fd) }

    /// Appends `record` as one line. A record whose line would be longer than
    /// ``ConvergenceLog/maximumLineBytes`` is replaced by a `line_too_long` event naming its size.
    public func write(_ record: LogRecord) {
        guard var line = try? ConvergenceLog.encodeLine(record) else { return }
        if line.count > ConvergenceLog.maximumLineBytes {
            let (time, round): (Double, Int) =
                switch record {
                case .header: (0, 0)
                case .round(let r): (r.time, r.round)
                case .event(let e): (e.time, e.round)
                }
            let replacement = EventRecord(
                time: time, peer: record.peer, round: round, event: "line_too_long",
                reason: "a line of \(line.count) bytes (limit \(ConvergenceLog.maximumLineBytes)) was not written")
            guard let short = try? ConvergenceLog.encodeLine(.event(replacement)) else { return }
            line = short
        }
        line.append(0x0A)
        line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

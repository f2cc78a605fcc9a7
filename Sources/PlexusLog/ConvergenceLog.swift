#if canImport(Glibc)
import Glibc
#endif
public import PlexusCore
public import PlexusGossip

/// The convergence log: one JSON-lines file per peer, `<log-dir>/<peer>.jsonl`.
///
/// Schema version 1 (documented in README, "Convergence logs"):
/// - the first line of a file: `{"schema":"plexus.convergence","version":1,"peer":…,…}`
/// - one `{"type":"round",…}` line per completed round
/// - one `{"type":"event",…}` line per notable event (a message rejected, a keyframe sent or
///   requested, a deadline missed, a session opened or closed)
///
/// Fields named `time` (wall-clock Unix seconds) and the `seconds` object (phase times) are the
/// only ones that differ between two runs with the same seed.
public enum ConvergenceLog {
    public static let schema = "plexus.convergence"
    public static let version = 1

    /// The first line of a peer's file.
    public static func header(peer: PeerID, network: String, planHash: String, model: String, codec: String, parameters: Int, samples: Int) -> JSONValue {
        .object([
            ("schema", .string(schema)), ("version", .integer(version)), ("peer", .string(peer.rawValue)),
            ("network", .string(network)), ("plan_hash", .string(planHash)), ("model", .string(model)),
            ("codec", .string(codec)), ("parameters", .integer(parameters)), ("samples", .integer(samples)),
        ])
    }

    /// A round line. `validation` holds the metrics on the peer's own holdout; `test` on a
    /// common test set, when one is given. `virtualTime` is the simulator's clock (seconds).
    public static func round(
        _ report: RoundReport,
        time: Double,
        virtualTime: Double? = nil,
        validation: [(String, Double)] = [],
        test: [(String, Double)] = []
    ) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string("round")), ("time", .number(time)),
        ]
        if let virtualTime { members.append(("virtual_time", .number(virtualTime))) }
        members += [
            ("peer", .string(report.peer.rawValue)), ("round", .integer(report.round)),
            ("loss", .number(report.trainingLoss)),
        ]
        if !validation.isEmpty { members.append(("validation", .object(validation.map { ($0.0, .number($0.1)) }))) }
        if !test.isEmpty { members.append(("test", .object(test.map { ($0.0, .number($0.1)) }))) }
        members += [
            ("consensus_distance", .number(report.consensusDistance)),
            ("consensus_distance_relative", .number(report.relativeConsensusDistance)),
            ("bytes_sent", .integer(report.bytesSent)), ("bytes_received", .integer(report.bytesReceived)),
            ("compression_ratio", .number(report.compressionRatio)),
            ("accepted", .integer(report.accepted)),
            ("rejected", .object(report.rejected.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, .integer($0.value)) })),
            ("staleness", .object(report.staleness.sorted { $0.key < $1.key }.map { ($0.key.rawValue, .integer($0.value)) })),
            ("seconds", .object([
                ("train", .number(report.trainSeconds)), ("encode", .number(report.encodeSeconds)),
                ("apply", .number(report.applySeconds)),
            ])),
        ]
        return .object(members)
    }

    /// An event line.
    public static func event(_ event: GossipEvent, peer: PeerID, round: Int, time: Double, virtualTime: Double? = nil) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", .string("event")), ("time", .number(time))]
        if let virtualTime { members.append(("virtual_time", .number(virtualTime))) }
        members += [("peer", .string(peer.rawValue)), ("round", .integer(round))]
        switch event {
        case .rejected(let from, let reason, let message):
            members += [("event", .string("rejected")), ("from", .string(from.rawValue)), ("reason", .string(reason.rawValue)), ("message", .string(message))]
        case .keyframeSent(let to, let version):
            members += [("event", .string("keyframe_sent")), ("to", .string(to.rawValue)), ("version", .integer(Int(clamping: version)))]
        case .keyframeRequested(let from, let held):
            members += [("event", .string("keyframe_requested")), ("from", .string(from.rawValue)), ("held_version", .integer(Int(clamping: held)))]
        case .deadlineMissed(let r, let missing):
            members += [("event", .string("deadline_missed")), ("missed_round", .integer(r)), ("missing", .array(missing.map { .string($0.rawValue) }))]
        case .awaitingFirstSession(let neighbour):
            members += [("event", .string("awaiting_first_session")), ("neighbour", .string(neighbour.rawValue))]
        }
        return .object(members)
    }

    /// A session event from the network shell.
    public static func session(_ kind: String, peer: PeerID, other: String, reason: String?, round: Int, time: Double) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string("event")), ("time", .number(time)), ("peer", .string(peer.rawValue)), ("round", .integer(round)),
            ("event", .string(kind)), ("with", .string(other)),
        ]
        if let reason { members.append(("reason", .string(reason))) }
        return .object(members)
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
    public init(directory: String, peer: PeerID, header: JSONValue) throws(Error) {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw Error(description: "\(directory): cannot create the log directory: \(String(cString: strerror(errno)))")
        }
        path = directory + "/" + peer.rawValue + ".jsonl"
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Error(description: "\(path): cannot open the log file: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size == 0 { write(header) }
    }

    deinit { close(fd) }

    public func write(_ record: JSONValue) {
        var line = record.serialized()
        line += "\n"
        line.withUTF8 { bytes in
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

import Foundation
import PlexusCore
import PlexusGossip
import PlexusLog
import Testing

let me = PeerID("hospital-a")!
let other = PeerID("hospital-b")!

func sampleRound(round: Int = 3) -> RoundRecord {
    RoundRecord(
        time: 1700000000.25, virtualTime: 1.5, peer: me.rawValue, round: round, loss: 0.125,
        validation: ["auc": 0.75], test: ["accuracy": 0.5, "c_index": 0.625],
        consensusDistance: 0.01, relativeConsensusDistance: 1e-05, bytesSent: 1000, bytesReceived: 2000, compressionRatio: 3.5,
        accepted: 2, rejected: ["gap": 1, "badSignature": 2], staleness: [other.rawValue: 1],
        seconds: PhaseSeconds(train: 0.01, encode: 0.002, apply: 0.003)
    )
}

/// One of every line kind the writer writes.
func everyKind() -> [LogRecord] {
    [
        .header(ConvergenceLog.header(peer: me, network: "net", planHash: "ab12", model: "cox", codec: "topk:0.1", parameters: 10, samples: 100)),
        .round(sampleRound()),
        .round(RoundRecord(time: 0, peer: me.rawValue, round: 1, loss: nil, consensusDistance: nil, relativeConsensusDistance: nil, bytesSent: 0, bytesReceived: 0, compressionRatio: nil, accepted: 0)),
        ConvergenceLog.event(.rejected(from: other, reason: .gap, message: "round 9 ahead of 3 \"quoted\"\n"), peer: me, round: 3, time: 2, virtualTime: 0.5),
        ConvergenceLog.event(.keyframeSent(to: other, version: 7), peer: me, round: 3, time: 2),
        ConvergenceLog.event(.keyframeRequested(from: other, heldVersion: .max), peer: me, round: 3, time: 2),
        ConvergenceLog.event(.deadlineMissed(round: 2, missing: [other, me]), peer: me, round: 3, time: 2),
        ConvergenceLog.event(.awaitingFirstSession(other), peer: me, round: 0, time: 2),
        ConvergenceLog.event(.quarantined(other, why: PeerScoring.Why(cause: .distance, score: 17, rejections: 1, cuts: 0, largestDistanceRatio: 3e38)), peer: me, round: 4, time: 2),
        ConvergenceLog.event(.released(other), peer: me, round: 15, time: 2),
        ConvergenceLog.session("session_opened", peer: me, other: other.rawValue, reason: nil, round: 3, time: 2),
        ConvergenceLog.session("failed", peer: me, other: "", reason: "a/b: error", round: 3, time: 2),
    ]
}

func temporaryDirectory(_ name: String) -> String {
    NSTemporaryDirectory() + "plexus-log-\(name)-\(UUID().uuidString)"
}

@Suite struct LogSchemaTests {
    @Test func everyRecordKindRoundTrips() throws {
        for record in everyKind() {
            let line = try ConvergenceLog.encodeLine(record)
            #expect(!line.contains(0x0A))
            #expect(try ConvergenceLog.decodeLine(line) == record, "\(String(decoding: line, as: UTF8.self))")
        }
    }

    @Test func linesAreByteStableWithSortedKeys() throws {
        let round = String(decoding: try ConvergenceLog.encodeLine(.round(sampleRound())), as: UTF8.self)
        #expect(round == #"{"accepted":2,"bytes_received":2000,"bytes_sent":1000,"compression_ratio":3.5,"consensus_distance":0.01,"consensus_distance_relative":1e-05,"loss":0.125,"peer":"hospital-a","rejected":{"badSignature":2,"gap":1},"round":3,"seconds":{"apply":0.003,"encode":0.002,"train":0.01},"staleness":{"hospital-b":1},"test":{"accuracy":0.5,"c_index":0.625},"time":1700000000.25,"type":"round","validation":{"auc":0.75},"virtual_time":1.5}"#)
        let header = String(decoding: try ConvergenceLog.encodeLine(everyKind()[0]), as: UTF8.self)
        #expect(header == #"{"codec":"topk:0.1","model":"cox","network":"net","parameters":10,"peer":"hospital-a","plan_hash":"ab12","samples":100,"schema":"plexus.convergence","version":1}"#)
        let event = String(decoding: try ConvergenceLog.encodeLine(everyKind()[3]), as: UTF8.self)
        #expect(event == #"{"event":"rejected","from":"hospital-b","message":"round 9 ahead of 3 \"quoted\"\n","peer":"hospital-a","reason":"gap","round":3,"time":2,"type":"event","virtual_time":0.5}"#)
        // The same record always prints the same bytes.
        #expect(try ConvergenceLog.encodeLine(.round(sampleRound())) == ConvergenceLog.encodeLine(.round(sampleRound())))
    }

    @Test func writtenLinesReadBackEqual() throws {
        let directory = temporaryDirectory("roundtrip")
        let records = everyKind()
        guard case .header(let header) = records[0] else { Issue.record("no header"); return }
        do {
            let writer = try ConvergenceLogWriter(directory: directory, peer: me, header: header)
            for record in records.dropFirst() { writer.write(record) }
        }
        // Reopening (a restart) appends, without a second header.
        do {
            let writer = try ConvergenceLogWriter(directory: directory, peer: me, header: header)
            writer.write(.round(sampleRound(round: 4)))
        }
        let logs = try ConvergenceLogReader.read(directory: directory)
        #expect(logs.count == 1)
        let log = logs[0]
        #expect(log.header == header && log.peer == me.rawValue && log.skippedLines == 0)
        let rounds = records.compactMap { if case .round(let r) = $0 { r } else { nil } } + [sampleRound(round: 4)]
        let events = records.compactMap { if case .event(let e) = $0 { e } else { nil } }
        #expect(log.rounds == rounds)
        #expect(log.events == events)
        #expect(log.events.map(\.other) == [other.rawValue, other.rawValue, other.rawValue, nil, nil, nil, nil, other.rawValue, ""])
        #expect(log.events.compactMap(\.neighbour) == [other.rawValue, other.rawValue, other.rawValue])
        #expect(log.quarantined.isEmpty, "quarantined, then released")
        let text = try String(contentsOfFile: directory + "/hospital-a.jsonl", encoding: .utf8)
        #expect(text.split(separator: "\n").count == records.count + 1)
        #expect(text.components(separatedBy: "\"type\":\"round\"").count - 1 == 3)
    }

    @Test func nonFiniteNumbersAreNullAndReadBackAsNoValue() throws {
        // Records never hold a non-finite number: their initializers make it nil or drop it.
        let round = RoundRecord(
            time: .nan, peer: "p", round: 1, loss: .nan, validation: ["auc": .nan, "f1": 0.5], test: ["c_index": .infinity],
            consensusDistance: -.infinity, relativeConsensusDistance: 0, bytesSent: 0, bytesReceived: 0, compressionRatio: .nan, accepted: 0,
            seconds: PhaseSeconds(train: .nan, encode: 0, apply: 0))
        #expect(round.loss == nil && round.consensusDistance == nil && round.compressionRatio == nil && round.time == 0)
        #expect(round.validation == ["f1": 0.5] && round.test.isEmpty && round.seconds?.train == nil)
        let line = String(decoding: try ConvergenceLog.encodeLine(.round(round)), as: UTF8.self)
        #expect(line.contains(#""loss":null"#) && line.contains(#""consensus_distance":null"#) && line.contains(#""train":null"#))
        #expect(try ConvergenceLog.decodeLine(Array(line.utf8)) == .round(round))
        // A NaN set afterwards is still written as null, and read back as no value.
        var mutated = round
        mutated.loss = .nan
        mutated.validation["auc"] = .nan
        let again = try ConvergenceLog.decodeLine(ConvergenceLog.encodeLine(.round(mutated)))
        #expect(again == .round(round))
        // Every other JSON output: the same convention.
        struct Report: Encodable { var a: Double; var b: [Double]; var c: [String: Double]; var s: String }
        let text = try PlexusJSON.string(Report(a: .nan, b: [1, .infinity, -.infinity, 0.1], c: ["x": .nan], s: "nan"))
        #expect(text == #"{"a":null,"b":[1,null,null,0.1],"c":{"x":null},"s":"nan"}"#)
        let pretty = try PlexusJSON.string(Report(a: 2, b: [], c: [:], s: "a/b"), pretty: true)
        #expect(pretty.contains("\"s\" : \"a/b\"") && pretty.contains("\n"))
    }

    /// A round's `privacy` object (`[plan.privacy]`): written, read back, a malformed or
    /// non-finite one dropped without losing the line.
    @Test func privacySpentRoundTripsAndIsTolerant() throws {
        let round = RoundRecord(
            time: 1, peer: "p", round: 3, loss: 0.5, consensusDistance: nil, relativeConsensusDistance: nil, bytesSent: 0, bytesReceived: 0,
            compressionRatio: nil, accepted: 0, privacy: .init(epsilon: 2.5, delta: 1e-5))
        let line = String(decoding: try ConvergenceLog.encodeLine(.round(round)), as: UTF8.self)
        #expect(line.contains(#""privacy":{"#) && line.contains(#""epsilon":2.5"#), "\(line)")
        #expect(try ConvergenceLog.decodeLine(Array(line.utf8)) == .round(round))
        let plain = RoundRecord(
            time: 1, peer: "p", round: 3, loss: 0.5, consensusDistance: nil, relativeConsensusDistance: nil, bytesSent: 0, bytesReceived: 0,
            compressionRatio: nil, accepted: 0)
        #expect(!String(decoding: try ConvergenceLog.encodeLine(.round(plain)), as: UTF8.self).contains("privacy"))
        #expect(RoundRecord(time: 1, peer: "p", round: 3, loss: 0.5, consensusDistance: nil, relativeConsensusDistance: nil, bytesSent: 0,
                            bytesReceived: 0, compressionRatio: nil, accepted: 0, privacy: .init(epsilon: .infinity, delta: 1e-5)).privacy == nil)
        for bad in [#""privacy":"high""#, #""privacy":{"epsilon":"x","delta":1}"#, #""privacy":{"delta":1e-5}"#] {
            let object = try #require(line.range(of: #""privacy":\{[^}]*\}"#, options: .regularExpression))
            let text = line.replacingCharacters(in: object, with: bad)
            #expect(text != line)
            guard case .round(let back) = try ConvergenceLog.decodeLine(Array(text.utf8)) else { Issue.record("not a round: \(text)"); continue }
            #expect(back.privacy == nil && back.round == 3, "\(text)")
        }
    }

    @Test func evaluationTableRoundTripsWithNulls() throws {
        let table = EvaluationRecord(
            dataset: "d", topology: "t", model: "cox", codec: "lossless", metric: "c_index", seeds: [0, 1], decentralizedBytes: [10, 20],
            rows: [
                .init(setting: "centralized", site: nil, mean: 0.8, sd: 0.01, perSeed: [["c_index": 0.8, "auc": nil]]),
                .init(setting: "isolated", site: "west", mean: .nan, sd: .nan, perSeed: [["c_index": .nan]]),
            ])
        let bytes = try PlexusJSON.encode(table)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""site":null"#) && text.contains(#""mean":null"#) && text.contains(#""auc":null"#))
        #expect(try PlexusJSON.decode(EvaluationRecord.self, from: bytes) == table)
        #expect(table.rows[1].mean == nil && table.rows[1].perSeed == [["c_index": nil]])
    }

    @Test func readsLogsOfThePreviousWriter() {
        // The previous hand-written serializer's key order, null for NaN, and a torn tail.
        let text = """
            {"schema":"plexus.convergence","version":1,"peer":"hospital-a","network":"t","plan_hash":"00","model":"cox","codec":"lossless","parameters":10,"samples":100}
            {"type":"round","time":1001,"virtual_time":0.5,"peer":"hospital-a","round":1,"loss":null,"test":{"c_index":0.6,"auc":null},"consensus_distance":1,"consensus_distance_relative":0.1,"bytes_sent":1001,"bytes_received":2000,"compression_ratio":1.2,"accepted":2,"rejected":{"gap":0},"staleness":{"hospital-b":0},"seconds":{"train":0.01,"encode":0.001,"apply":0.001}}
            {"type":"event","time":1030,"peer":"hospital-a","round":3,"event":"rejected","from":"hospital-b","reason":"gap","message":"x"}
            {"type":"event","time":1031,"peer":"hospital-a","round":3,"event":"session_closed","with":"hospital-b","reason":"eof"}
            {"type":"round","time":1099,"peer":"hospital-a","rou
            """
        let log = ConvergenceLogReader.parse(text, peer: "x")
        #expect(log.peer == "hospital-a" && log.header?.samples == 100 && log.header?.planHash == "00")
        #expect(log.skippedLines == 1)
        #expect(log.rounds == [RoundRecord(
            time: 1001, virtualTime: 0.5, peer: "hospital-a", round: 1, loss: nil, test: ["c_index": 0.6],
            consensusDistance: 1, relativeConsensusDistance: 0.1, bytesSent: 1001, bytesReceived: 2000, compressionRatio: 1.2,
            accepted: 2, rejected: ["gap": 0], staleness: ["hospital-b": 0], seconds: PhaseSeconds(train: 0.01, encode: 0.001, apply: 0.001))])
        #expect(log.events.map(\.event) == ["rejected", "session_closed"])
        #expect(log.events.map(\.other) == ["hospital-b", "hospital-b"])
        #expect(log.events[0].message == "x" && log.events[1].reason == "eof")
    }

    @Test(arguments: [
        "not json", "{", #"{"type":"round"}"#, #"{"type":"unknown","round":1}"#, #"{"round":1}"#, #"{"type":"event","round":1}"#,
        #"{"type":"round","round":"3"}"#, #"{"type":"round","round":1,"loss":"low"}"#, #"{"type":"round","round":1.5}"#,
        #"{"type":"event","event":"x","missing":"p"}"#, #"{"schema":"other","version":1}"#, "[1,2]", "\"round\"", "1e999",
        #"{"type":"round","round":1} trailing"#, "\u{0}\u{1}", String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
    ])
    func malformedLinesAreSkippedAndCounted(line: String) {
        let log = ConvergenceLogReader.parse(line + "\n" + #"{"type":"round","round":2}"# + "\n", peer: "p")
        #expect(log.skippedLines == 1, "\(line)")
        #expect(log.rounds.map(\.round) == [2])
        #expect(throws: PlexusJSON.Error.self) { try ConvergenceLog.decodeLine(Array(line.utf8)) }
    }

    @Test func overlongLinesAreSkippedNotBuffered() throws {
        let directory = temporaryDirectory("oversize")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/p.jsonl"
        let good = Array(#"{"type":"round","round":1}"#.utf8) + [10]
        let long = Array(#"{"type":"event","event":"x","message":""#.utf8) + [UInt8](repeating: 0x61, count: ConvergenceLog.maximumLineBytes + 10) + Array(#""}"#.utf8)
        // A long line still being written: counted once, skipped across calls, never buffered whole.
        try Data(good + long.prefix(ConvergenceLog.maximumLineBytes + 5)).write(to: URL(fileURLWithPath: path))
        var log = PeerLog(peer: "p", path: path)
        ConvergenceLogReader.update(&log)
        #expect(log.rounds.count == 1 && log.skippedLines == 1)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(long.dropFirst(ConvergenceLog.maximumLineBytes + 5) + [10] + good))
        try handle.close()
        ConvergenceLogReader.update(&log)
        #expect(log.rounds.count == 2 && log.skippedLines == 1 && log.events.isEmpty)
        #expect(log.offset == good.count * 2 + long.count + 1)
        // The same file read whole, and as text.
        #expect(try ConvergenceLogReader.read(directory: directory).first.map { ($0.rounds.count, $0.skippedLines) } ?? (0, 0) == (2, 1))
        #expect(ConvergenceLogReader.parse(String(decoding: good + long + [10] + good, as: UTF8.self), peer: "p").skippedLines == 1)
    }

    @Test func theWriterReplacesAnOverlongRecord() throws {
        let directory = temporaryDirectory("writer-oversize")
        let writer = try ConvergenceLogWriter(directory: directory, peer: me, header: ConvergenceLog.header(
            peer: me, network: "n", planHash: "00", model: "m", codec: "c", parameters: 1, samples: 1))
        let huge = String(repeating: "x", count: ConvergenceLog.maximumLineBytes)
        writer.write(ConvergenceLog.event(.rejected(from: other, reason: .gap, message: huge), peer: me, round: 5, time: 9))
        writer.write(.round(sampleRound()))
        let log = try ConvergenceLogReader.read(directory: directory)[0]
        #expect(log.skippedLines == 0 && log.rounds == [sampleRound()])
        #expect(log.events.count == 1)
        #expect(log.events.first?.event == "line_too_long" && log.events.first?.round == 5 && log.events.first?.time == 9)
        #expect(log.events.first?.reason?.contains("limit \(ConvergenceLog.maximumLineBytes)") == true)
    }
}

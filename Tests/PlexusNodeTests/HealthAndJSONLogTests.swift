import Foundation
import Logging
import PlexusCore
import PlexusLog
import PlexusNode
import Synchronization
import Testing

/// `/readyz`'s states, and the JSON operator log's lines.
@Suite struct HealthAndJSONLogTests {
    let a = PeerID("hospital-a")!
    let b = PeerID("hospital-b")!
    let c = PeerID("hospital-c")!

    @Test func readinessStates() {
        let metrics = NodeMetrics(peer: a, planRounds: 40, topologyFingerprint: "0123abcd", neighbours: [b, c], processMetrics: false)
        let deadline = Duration.seconds(10)
        let t0 = ContinuousClock.now
        #expect(metrics.readiness(roundDeadline: deadline, now: t0) == .init(ready: false, reason: "not training yet: the statistics round has not completed"))
        metrics.trainingStarted(at: t0)
        #expect(metrics.readiness(roundDeadline: deadline, now: t0) == .init(ready: false, reason: "no neighbour session is up (0 of 2)"))
        metrics.sessionOpened()
        #expect(metrics.readiness(roundDeadline: deadline, now: t0 + .seconds(1)) == .init(ready: true, reason: "training: round 0 of 40, 1 of 2 neighbour sessions up"))
        metrics.sessionOpened()
        metrics.roundCompleted(.init(round: 7, trainingLoss: 0.5, consensusDistance: 0.1, bytesSent: 10, bytesReceived: 10), unixTime: 0, at: t0 + .seconds(2))
        #expect(metrics.readiness(roundDeadline: deadline, now: t0 + .seconds(22)) == .init(ready: true, reason: "training: round 7 of 40, 2 of 2 neighbour sessions up"))
        // Two deadlines without a round: stalled, though the sessions are up.
        #expect(metrics.readiness(roundDeadline: deadline, now: t0 + .milliseconds(22_500)) == .init(ready: false, reason: "no round completed for 20.5 s (the round deadline is 10.0 s)"))
        metrics.sessionClosed()
        metrics.sessionClosed()
        #expect(metrics.readiness(roundDeadline: deadline, now: t0 + .seconds(3)).reason == "no neighbour session is up (0 of 2)")
        metrics.finished()
        #expect(metrics.readiness(roundDeadline: deadline, now: t0 + .seconds(100)) == .init(ready: true, reason: "finished: the plan's 40 rounds are done"))
    }

    func capture(_ body: (inout Logger) -> Void) -> [[String: Any]] {
        let lines = Mutex<[[UInt8]]>([])
        var logger = Logger(label: "test") { _ in JSONLogHandler { bytes in lines.withLock { $0.append(bytes) } } }
        logger.logLevel = .info
        body(&logger)
        return lines.withLock { $0 }.map { bytes in
            #expect(bytes.last == UInt8(ascii: "\n") && bytes.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") }, "one line per event")
            #expect(bytes.count <= JSONLogHandler.maximumLineBytes)
            return (try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]) ?? [:]
        }
    }

    @Test func oneObjectPerEventWithStableKeys() throws {
        let lines = capture { logger in
            logger[metadataKey: "node"] = "hospital-a"
            logger.warning("Sample count bounded", metadata: ["peer": "hospital-c", "used": "1092"])
            logger.debug("not at info level")
            logger.info("no metadata")
        }
        try #require(lines.count == 2)
        #expect(Set(lines[0].keys) == ["time", "level", "message", "node", "metadata"])
        #expect(lines[0]["level"] as? String == "warning")
        #expect(lines[0]["message"] as? String == "Sample count bounded")
        #expect(lines[0]["node"] as? String == "hospital-a")
        #expect(lines[0]["metadata"] as? [String: String] == ["peer": "hospital-c", "used": "1092"])
        #expect(lines[1]["metadata"] as? [String: String] == [:])
        let time = try #require(lines[0]["time"] as? String)
        #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(10).hasPrefix("T"), "\(time)")
    }

    @Test func longValuesAreCutAndLinesStayBounded() throws {
        let long = String(repeating: "é", count: 5000)  // 10 000 bytes
        let lines = capture { logger in
            logger.error("\(long)", metadata: ["detail": "\(long)", "quote": "a \"quoted\"\nline"])
            var many: Logger.Metadata = [:]
            for i in 0..<40 { many["key\(i)"] = "\(long)" }
            logger.error("many", metadata: many)
        }
        try #require(lines.count == 2)
        let message = try #require(lines[0]["message"] as? String)
        #expect(message.hasSuffix("…") && message.utf8.count <= 2048)
        #expect((lines[0]["metadata"] as? [String: String])?["quote"] == "a \"quoted\"\nline")
        #expect((lines[1]["metadata"] as? [String: String]) == ["truncated": "40 metadata values over 16384 bytes"])
    }
}

/// The control socket's framing, by its test vectors and its refusals.
@Suite struct ControlProtocolTests {
    static let sample = NodeStatus(
        peer: "hospital-a", network: "consortium-3", version: "0.1.0", topologyFingerprint: "0123456789abcdef", planHash: "fbd9368b5210d2c8",
        phase: "training", round: 7, planRounds: 60, statisticsReceived: 3, statisticsExpected: 3, uptimeSeconds: 12.5,
        neighbours: [.init(id: "hospital-b", sessionUp: true, since: 1.5, lastHandshake: 1.5, bytesSent: 10, bytesReceived: 20, staleness: 0, sameTopology: true, quarantined: false)]
    )

    @Test func theVectors() async throws {
        #expect(ControlProtocol.statusRequest == [0x50, 0x58, 0x53, 0x54, 0x01, 0x01])
        let refusal = try #require(await ControlProtocol.answer([0x50, 0x58, 0x53, 0x54, 0x02, 0x01]) { Self.sample })
        #expect(refusal == [0x50, 0x58, 0x53, 0x54, 0x01, 0x01, 0x00, 0x00, 0x00, 0x1C] + Array("unsupported version 2 (1 is)".utf8))
        let answer = try #require(await ControlProtocol.answer(ControlProtocol.statusRequest) { Self.sample })
        #expect(Array(answer.prefix(6)) == [0x50, 0x58, 0x53, 0x54, 0x01, 0x00])
        #expect(try ControlProtocol.decode(answer) == Self.sample)
        // Fewer than 6 bytes of a request: keep reading; anything else is refused at once.
        #expect(await ControlProtocol.answer([0x50, 0x58]) { Self.sample } == nil)
        #expect(await ControlProtocol.answer([0x47, 0x45, 0x54]) { Self.sample }?[5] == ControlProtocol.Result.unknownCommand.rawValue)
        #expect(await ControlProtocol.answer([0x50, 0x58, 0x53, 0x54, 0x01, 0x09]) { Self.sample }?[5] == ControlProtocol.Result.unknownCommand.rawValue)
    }

    @Test func malformedResponsesAreRefused() async throws {
        let good = try #require(await ControlProtocol.answer(ControlProtocol.statusRequest) { Self.sample })
        func refused(_ bytes: [UInt8]) -> String? {
            do { _ = try ControlProtocol.decode(bytes); return nil } catch { return error.description }
        }
        #expect(refused(Array(good.prefix(9))) == "not a Plexus control socket (bad magic)")
        #expect(refused([0x51] + good.dropFirst()) == "not a Plexus control socket (bad magic)")
        #expect(refused(Array(good.dropLast())).map { $0.hasPrefix("a response of") } == true)
        var huge = Array(good.prefix(10))
        huge[6] = 0x7F  // announces 2 GiB
        #expect(refused(huge).map { $0.hasPrefix("a response of 10 bytes announcing") } == true)
        var future = good
        future[4] = 2
        #expect(refused(future) == "the node speaks control version 2; this plexus speaks 1")
        let notJSON = ControlProtocol.response(.ok, body: Array("{\"peer\":".utf8))
        #expect(refused(notJSON).map { $0.hasPrefix("malformed status") } == true)
        var formatTwo = Self.sample
        formatTwo.format = 2
        let body = try PlexusJSON.encode(formatTwo)
        #expect(refused(ControlProtocol.response(.ok, body: body)) == "status format 2 is not known to this plexus")
    }
}

import Foundation
import PlexusCore
import PlexusLog
import PlexusTestKit
import PlexusTopology
import Testing

/// Two `plexus run` nodes (wdbc logistic, full mesh of 2), each in its own network namespace,
/// joined by ``LinkEmulator`` — packets, not bytes, so both kernels' TCP stacks (retransmits,
/// RTO backoff, SYN retries, RSTs from half-dead connections) are in the loop. Needs root and
/// /dev/net/tun: where those are missing the test fails with the emulator's message.
@Suite(.serialized) struct PartitionTests {
    let data = repositoryRoot + "/Topologies/data/wdbc.csv"
    let split = repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json"
    static let deadlineMilliseconds = 1000
    static let port = 7400
    /// Every link, both directions, before and after the partition.
    static let link = LinkEmulator.Conditions(delay: .milliseconds(5), loss: 0.01)

    /// Issue 11's partition case: 5 ms delay and 1 % loss on each direction, round deadline
    /// 1000 ms; train, cut the link both ways for 20 s, heal; within 5 s of healing the rounds are
    /// back at their normal pace.
    ///
    /// "Normal pace", precisely: 10 consecutive rounds each completed with every neighbour's copy
    /// up to date (staleness 0) and each within max(3 × the pre-partition median round time,
    /// 100 ms) of the previous one — far below the 1000 ms at which rounds go on while partitioned.
    /// The recovery time is from healing to the end of the first of those 10 rounds.
    ///
    /// While partitioned: the round goes on once per deadline with stale copies (each logs
    /// `deadline_missed` naming the other peer), and the session is closed by the 3 s idle timeout.
    ///
    /// Measured on the 2-core development machine (2026-12-01, other engineers' builds running):
    /// pre-partition median round 7–25 ms; 18–19 rounds (and `deadline_missed`) per node while
    /// partitioned; session closed by `idleTimeout` 3.0–4.0 s after the cut, reopened 0.06–2.6 s
    /// after healing; back to normal pace (both nodes within 0.02 s of each other) after healing:
    /// 0.13, 1.73, 2.13, 1.63, 0.87, 1.74 s (this version, the emulator timing the heal), and
    /// 2.36, 2.70, 2.15, 1.65, 2.01, 1.88, 2.20, 1.65 s before (the test sleeping 20 s itself).
    /// 27–38 s per run.
    @Test func roundsReturnToNormalPaceWithin5sOfHealingA20sPartition() async throws {
        let lab = try LinkEmulator(nodes: 2, conditions: Self.link, seed: 11)
        defer { lab.shutdown() }
        let directory = temporaryDirectory("partition")
        let generated = try generateFullMesh(peers: 2, basePort: Self.port, directory: directory, out: directory + "/generated.toml")
        var plan = generated.plan
        plan.rounds = 1_000_000  // stopped by SIGTERM
        plan.roundDeadlineMilliseconds = Self.deadlineMilliseconds
        let peers = generated.peers.enumerated().map { i, peer in
            Topology.Peer(id: peer.id, endpoint: Endpoint(host: lab.address(i), port: Self.port), publicKey: peer.publicKey)
        }
        let topology = Topology(networkName: "partition", plan: plan, peers: peers, links: generated.links)
        let path = directory + "/network.toml"
        try TopologyWriter.toml(topology).write(toFile: path, atomically: true, encoding: .utf8)
        let ids = peers.map(\.id)

        let nodes = try (0..<2).map { i in
            try Background([
                "run", "--topology", path, "--peer", ids[i].rawValue, "--key", "\(directory)/keys/\(ids[i]).key", "--data", data,
                "--state-dir", "\(directory)/state", "--log-dir", "\(directory)/logs", "--log-level", "warning",
                "--split", split, "--site", String(i), "--listen", "\(lab.address(i)):\(Self.port)",
            ], output: "\(directory)/\(ids[i]).out", prefix: lab.command(in: i))
        }
        defer { for node in nodes where node.process.isRunning { node.kill9() } }
        func log(_ i: Int) -> PeerLog? {
            (try? ConvergenceLogReader.read(directory: directory + "/logs"))?.first { $0.peer == ids[i].rawValue }
        }

        // Train normally, then measure the pace.
        // 400 rounds: enough packets (≈ 1,000 each way) that 1 % loss certainly hits some.
        let warmed = await eventually(40) { (0..<2).allSatisfy { (log($0)?.rounds.count ?? 0) > 400 } }
        try #require(warmed, "both nodes trained 400 rounds through the emulator: \(nodes.map { String($0.log.suffix(1500)) })")
        let medians = (0..<2).map { i in
            let recent = log(i)!.rounds.suffix(100)
            return zip(recent, recent.dropFirst()).map { $1.time - $0.time }.sorted()[49]
        }
        let normal = medians.max()!
        let fast = max(3 * normal, 0.1)

        // A 20 s partition, then healed — by the emulator's thread, on time even when this
        // test's cooperative threads are starved by the suites running beside it.
        let cut = lab.partition(0, 1, for: .seconds(20))
        try #require(await eventually(40) { lab.lastHeal != nil }, "the emulator healed the partition")
        let healed = lab.lastHeal!

        /// Seconds from healing to the end of the first of 10 consecutive rounds at normal pace.
        func recovery(_ i: Int) -> Double? {
            guard let all = log(i)?.rounds else { return nil }
            let rounds = Array(all.drop { $0.time < healed })
            guard var previous = all.last(where: { $0.time < healed }), rounds.count >= 10 else { return nil }
            var run = 0
            for (k, round) in rounds.enumerated() {
                let ok = round.time - previous.time <= fast && round.staleness.values.allSatisfy { $0 == 0 }
                run = ok ? run + 1 : 0
                previous = round
                if run == 10 { return rounds[k - 9].time - healed }
            }
            return nil
        }
        _ = await eventually(15) { recovery(0) != nil && recovery(1) != nil }
        let heal = [recovery(0), recovery(1)]
        let statistics = [lab.statistics(from: 0, to: 1), lab.statistics(from: 1, to: 0)]
        await stopNodes(nodes)

        let logs = (0..<2).map { log($0)! }
        let partitioned = logs.map { $0.rounds.filter { $0.time > cut + 1 && $0.time < healed } }
        let missed = logs.map { $0.events.filter { $0.event == "deadline_missed" && $0.time > cut && $0.time < healed } }
        let closed = logs.map { $0.events.filter { $0.event == "session_closed" && $0.time > cut && $0.time < healed + 1 } }
        let reopened = logs.map { $0.events.first { $0.event == "session_opened" && $0.time > healed }.map { $0.time - healed } }
        print("""
            partition \(String(format: "%.3f", healed - cut)) s through LinkEmulator (5 ms, 1 % loss each way, deadline \(Self.deadlineMilliseconds) ms): \
            pre-partition median round \(medians.map { String(format: "%.1f ms", $0 * 1000) }), \
            rounds while partitioned \(partitioned.map(\.count)), deadline_missed \(missed.map(\.count)), \
            sessions closed \(closed.map { $0.map { "\($0.reason ?? "?") at +" + String(format: "%.1f s", $0.time - cut) } }), \
            session reopened \(reopened.map { $0.map { String(format: "%.2f s", $0) } ?? "never" }) and \
            back to normal pace \(heal.map { $0.map { String(format: "%.2f s", $0) } ?? "never" }) after healing; \
            link 0→1 \(statistics[0]), 1→0 \(statistics[1])
            """)

        for i in 0..<2 {
            // While partitioned: about one round per deadline, each on a stale copy, each reported.
            #expect((15...20).contains(partitioned[i].count), "node \(i): \(partitioned[i].count) rounds in the \(healed - cut - 1) s after the cut's first second")
            #expect(partitioned[i].allSatisfy { ($0.staleness[ids[1 - i].rawValue] ?? 0) > 0 }, "node \(i): stale copies while partitioned")
            #expect(missed[i].count >= 15 && missed[i].allSatisfy { $0.other == nil || $0.other == ids[1 - i].rawValue }, "node \(i): \(missed[i].count) deadline_missed events")
            #expect(!closed[i].isEmpty, "node \(i): the dead session was closed")
            #expect(heal[i].map { $0 <= 5 } == true, "node \(i) back to normal pace \(heal[i].map { "\($0) s" } ?? "never") after healing; normal \(normal) s")
        }
        // The emulator did what it was asked: it dropped everything while partitioned, and lost some packets at 1 %.
        #expect(statistics.allSatisfy { $0.partitioned > 0 && $0.forwarded > 300 }, "\(statistics)")
        #expect(statistics.map(\.lost).reduce(0, +) > 0, "\(statistics)")
    }

    func stopNodes(_ nodes: [Background]) async {
        for node in nodes where node.process.isRunning { kill(node.process.processIdentifier, SIGTERM) }
        for node in nodes { #expect(await exitStatus(node, within: 5) == 0, "\(String(node.log.suffix(2000)))") }
    }

}

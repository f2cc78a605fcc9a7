import Foundation
import PlexusCodec
import PlexusCore
import PlexusEngine
import PlexusGossip
import PlexusLearning
import PlexusLog
import PlexusTopology
import Testing

/// consortium-3 (wdbc logistic, sites 60/30/10, full mesh) with hospital-c played by a
/// ``HostilePeer``: it completes the real handshake with its real key and sends validly signed
/// attacks; hospital-a and hospital-b are honest `plexus run` processes. Every attack is compared
/// with a run (in the same test process) where hospital-c is merely silent: statistics, then
/// nothing.
@Suite(.serialized) struct HostilePeerTests {
    static let rounds = 60
    static let deadlineMilliseconds = 300
    let data = repositoryRoot + "/Topologies/data/wdbc.csv"
    let split = repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json"

    /// What one run of the two honest nodes gave.
    struct Outcome {
        var statuses: [Int32?]
        var logs: [PeerLog]
        var accuracies: [Double]
        var finalModelsFinite: Bool
        var lossesFinite: Bool
        var rejected: [String: Int]
        var longestRound: Double
        var peakKB: [Int]
        var logBytes: [Int]
        var output: [String]
        /// Seconds from SIGTERM to exit, per node (when the run sent one).
        var sigtermLatency: [Double] = []
    }

    struct Network {
        var directory: String
        var path: String
        var topology: Topology
        var honest: [PeerID]
        var hostile: HostilePeer
        var siteSummary: [UInt8]
    }

    /// - Parameter pinC: a line added to hospital-c's `[[peer]]` table (e.g. `max_samples = 60`).
    func network(_ label: String, rounds: Int = HostilePeerTests.rounds, silentStatistics: Bool = false, pinC: String? = nil) throws -> Network {
        let directory = temporaryDirectory(label)
        var plan = try Topology.load(path: repositoryRoot + "/Topologies/consortium-3.toml", spectralAnalysis: false).plan
        plan.rounds = rounds
        plan.roundDeadlineMilliseconds = Self.deadlineMilliseconds
        try TopologyWriter.plan(plan).write(toFile: directory + "/plan.toml", atomically: true, encoding: .utf8)
        let path = directory + "/network.toml"
        let generated = try plexus([
            "topology", "generate", "--from", repositoryRoot + "/Topologies/consortium-3.toml", "--keys-dir", directory + "/keys",
            "--host", "127.0.0.1", "--base-port", String(freePorts(8)), "--out", path, "--plan", directory + "/plan.toml",
        ])
        #expect(generated.status == 0, "\(generated.stderr)")
        if let pinC {
            // The third [[peer]] table is hospital-c's: the pin goes after its public key.
            var text = try String(contentsOfFile: path, encoding: .utf8)
            let keyLines = text.ranges(of: "public_key = ")
            let end = try #require(text[keyLines[2].upperBound...].firstIndex(of: "\n"))
            text.insert(contentsOf: "\n" + pinC, at: end)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let topology = try Topology.load(path: path, spectralAnalysis: false)
        let table = try CSV.read(path: data)
        let sites = try Partitioner.partition(table: table, plan: topology.plan, spec: .split(split), count: 3, seed: topology.plan.seed).sites
        let summary = SiteSummary(sites[2], plan: topology.plan).encoded()
        let c = topology.peers[2].id
        let hostile = try HostilePeer(
            topology: topology, peer: c, keyPath: "\(directory)/keys/\(c).key",
            parameterCount: makeModel(plan: topology.plan, dimension: sites[2].dimension).layout.count,
            declaredSamples: UInt64(sites[2].count), statistics: nil
        )
        if !silentStatistics { hostile.statistics = hostile.statisticsMessage(summary) }
        return Network(directory: directory, path: path, topology: topology, honest: topology.peers.prefix(2).map(\.id), hostile: hostile, siteSummary: summary)
    }

    func arguments(_ net: Network, _ index: Int, extra: [String] = []) -> [String] {
        let peer = net.honest[index]
        return ["run", "--topology", net.path, "--peer", peer.rawValue, "--key", "\(net.directory)/keys/\(peer).key", "--data", data,
                "--state-dir", "\(net.directory)/state", "--log-dir", "\(net.directory)/logs", "--log-level", "warning",
                "--split", split, "--site", String(index)] + extra
    }

    /// Starts the honest nodes, runs `attack` once hospital-c's sessions with both are open,
    /// samples memory until they exit, and gathers what they logged and saved.
    func run(
        _ net: Network, extra: [String] = [], timeout: TimeInterval = 90, sigtermAfter: TimeInterval? = nil,
        attack: @escaping @Sendable (HostilePeer, [PeerID]) async -> Void
    ) async throws -> Outcome {
        defer { net.hostile.stop() }
        let nodes = try (0..<2).map { try Background(arguments(net, $0, extra: extra), output: "\(net.directory)/\(net.honest[$0]).out") }
        defer { for node in nodes where node.process.isRunning { node.kill9() } }
        let hostile = net.hostile
        let honest = net.honest
        // The attack starts on the hostile peer's own thread as soon as its sessions are open,
        // whatever this test task is waiting for (CI starved it past the honest nodes' whole
        // run). So its first envelopes often reach a node whose statistics round is still
        // running: they must be refused all the same (issue 12).
        let attacking = _Concurrency.Task(executorPreference: HostilePeer.executor) { () -> Bool in
            let opened = await hostile.waitForSessions(honest)
            if opened { await attack(hostile, honest) }
            return opened
        }
        var peaks = [0, 0]
        var statuses: [Int32?] = [nil, nil]
        let start = Date()
        let deadline = start.addingTimeInterval(timeout)
        var terminated: Date?
        var exited: [Date?] = [nil, nil]
        while nodes.contains(where: { $0.process.isRunning }) && Date() < deadline {
            for (i, node) in nodes.enumerated() {
                if node.process.isRunning {
                    if let m = memory(of: node.process.processIdentifier) { peaks[i] = max(peaks[i], m.peak, m.rss) }
                } else if exited[i] == nil {
                    exited[i] = Date()
                }
            }
            if let sigtermAfter, terminated == nil, Date().timeIntervalSince(start) >= sigtermAfter {
                terminated = Date()
                for node in nodes where node.process.isRunning { kill(node.process.processIdentifier, SIGTERM) }
            }
            try? await _Concurrency.Task.sleep(for: .milliseconds(terminated == nil ? 50 : 5))
        }
        for i in exited.indices where exited[i] == nil && !nodes[i].process.isRunning { exited[i] = Date() }
        attacking.cancel()
        for (i, node) in nodes.enumerated() { statuses[i] = await exitStatus(node, within: 1) }
        let opened = await attacking.value
        #expect(opened, "the hostile peer completed the handshake with both honest nodes (open: \(net.hostile.openSessions.map(\.rawValue).sorted()))")
        var result = try outcome(net, statuses: statuses, peaks: peaks, nodes: nodes)
        if let terminated { result.sigtermLatency = exited.map { ($0 ?? Date.distantFuture).timeIntervalSince(terminated) } }
        return result
    }

    func outcome(_ net: Network, statuses: [Int32?], peaks: [Int], nodes: [Background]) throws -> Outcome {
        let logs = (try? ConvergenceLogReader.read(directory: net.directory + "/logs")) ?? []
        let honestLogs = net.honest.compactMap { id in logs.first { $0.peer == id.rawValue } }
        var rejected: [String: Int] = [:]
        for log in honestLogs {
            for event in log.events where event.event == "rejected" { rejected[event.reason ?? "?", default: 0] += 1 }
            for round in log.rounds { for (reason, count) in round.rejected { rejected[reason + "(round)", default: 0] += count } }
        }
        var finite = true
        for id in net.honest {
            let model = makeModel(plan: net.topology.plan, dimension: 30)
            if let bytes = try? Data(contentsOf: URL(fileURLWithPath: "\(net.directory)/state/\(id).safetensors")),
                let decoded = try? Safetensors.decode(Array(bytes), layout: model.layout)
            {
                finite = finite && decoded.parameters.allSatisfy(\.isFinite)
            } else {
                finite = false
            }
        }
        var longest = 0.0
        for log in honestLogs {
            for (a, b) in zip(log.rounds, log.rounds.dropFirst()) { longest = max(longest, b.time - a.time) }
        }
        let logBytes = net.honest.map { id in
            let files = ["\(net.directory)/logs/\(id).jsonl", "\(net.directory)/\(id).out"]
            return files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
        }
        return Outcome(
            statuses: statuses, logs: honestLogs, accuracies: honestLogs.compactMap { $0.rounds.last?.test["accuracy"] },
            finalModelsFinite: finite, lossesFinite: honestLogs.allSatisfy { $0.rounds.compactMap(\.loss).allSatisfy(\.isFinite) },
            rejected: rejected, longestRound: longest, peakKB: peaks, logBytes: logBytes, output: nodes.map(\.log)
        )
    }

    /// The silent-peer run, measured once per test process and shared by every attack.
    static let baseline = Baseline()
    actor Baseline {
        var outcome: Outcome?
        func get(_ make: () async throws -> Outcome) async rethrows -> Outcome {
            if let outcome { return outcome }
            let made = try await make()
            outcome = made
            print("hostile-peer baseline (silent hospital-c): accuracies \(made.accuracies), peak RSS \(made.peakKB) kB, log bytes \(made.logBytes), longest round \(made.longestRound) s")
            return made
        }
    }

    func silentBaseline() async throws -> Outcome {
        try await Self.baseline.get { try await run(try network("silent")) { _, _ in } }
    }

    /// What every attack must leave true of the honest nodes.
    /// The accuracies must be within 0.02 of the silent run's — two of the 114 test patients, the
    /// tolerance issue 12 sets. Not closer: with hospital-c missing every round, each round ends
    /// at its 300 ms deadline, and whether the other honest node's delta of that round is in by
    /// then depends on scheduling; on a loaded 2-core CI machine one borderline patient flipped
    /// (0.956 silent against 0.965 under rejected attacks, with nothing of the attacker mixed in).
    /// - Parameter knownIssue: why the accuracy is not yet within 0.02 of the silent run (recorded as a known issue).
    func expectSound(_ outcome: Outcome, _ label: String, tolerance: Double = 0.02, knownIssue: Comment? = nil, intermittent: Bool = false) async throws {
        let baseline = try await silentBaseline()
        print("hostile-peer \(label): statuses \(outcome.statuses), accuracies \(outcome.accuracies) (silent \(baseline.accuracies)), rejected \(outcome.rejected), peak RSS \(outcome.peakKB) kB (silent \(baseline.peakKB)), log bytes \(outcome.logBytes), longest round \(outcome.longestRound) s")
        #expect(outcome.statuses == [0, 0], "\(label): \(outcome.output)")
        #expect(outcome.finalModelsFinite, "\(label): final safetensors finite")
        #expect(outcome.lossesFinite, "\(label): logged losses finite")
        #expect(outcome.accuracies.count == 2)
        for (peak, base) in zip(outcome.peakKB, baseline.peakKB) { #expect(peak < 2 * base, "\(label): peak RSS \(peak) kB vs silent \(base) kB") }
        for bytes in outcome.logBytes { #expect(bytes < 10 << 20, "\(label): log bytes \(bytes)") }
        let close = {
            for (a, b) in zip(outcome.accuracies, baseline.accuracies) { #expect(abs(a - b) <= tolerance, "\(label): accuracy \(a) vs silent \(b)") }
        }
        if let knownIssue { withKnownIssue(knownIssue, isIntermittent: intermittent, close) } else { close() }
    }


    // MARK: Attacks

    /// 1. A keyframe declaring 2⁶³ samples, on session open: `outOfRange`, nothing else changes.
    @Test func keyframeWithHugeSampleCount() async throws {
        let net = try network("huge-samples")
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            for h in honest { await peer.send(peer.envelope(.keyframe, sequence: 1, round: 1, samples: 1 << 63, peer.lossless(zeros)), to: h) }
        }
        try await expectSound(outcome, "keyframe with 2^63 samples")
        #expect(outcome.rejected["outOfRange", default: 0] >= 2, "\(outcome.rejected)")
    }

    /// 1b. A plausible lie: keyframes advertising 1000× the count hospital-c signed in its
    /// statistics (well inside the 2⁴⁰ range), to take over its neighbours' mixing weights:
    /// `sampleCountMismatch` (issue 12's first defence), and the honest nodes train as if it
    /// were silent.
    @Test func keyframeWithALyingSampleCount() async throws {
        let net = try network("lying-samples")
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            for h in honest {
                await peer.send(peer.envelope(.keyframe, sequence: 1, round: 1, samples: peer.declaredSamples * 1000, peer.lossless(zeros)), to: h)
            }
        }
        try await expectSound(outcome, "keyframe with 1000x the declared sample count")
        #expect(outcome.rejected["sampleCountMismatch", default: 0] >= 2, "\(outcome.rejected)")
    }

    /// 1c. The same lie told before the statistics: hospital-c withholds its statistics, sends
    /// the lying keyframes while both honest nodes are still in their statistics round (they
    /// cannot have its count yet), and only then signs its statistics. The keyframes are held
    /// and refused at the start as `sampleCountMismatch`, on both nodes.
    @Test func aLyingKeyframeBeforeTheStatistics() async throws {
        let net = try network("lying-early", silentStatistics: true)
        let summary = net.siteSummary
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            for h in honest {
                await peer.send(peer.envelope(.keyframe, sequence: 1, round: 0, samples: peer.declaredSamples * 1000, peer.lossless(zeros)), to: h)
            }
            let statistics = peer.statisticsMessage(summary)
            peer.statistics = statistics
            for h in honest { await peer.send(statistics, to: h) }
        }
        try await expectSound(outcome, "keyframe with 1000x the count, before the statistics")
        for log in outcome.logs {
            let refused = log.events.filter { $0.event == "rejected" && $0.reason == "sampleCountMismatch" }
            #expect(!refused.isEmpty, "\(log.peer) refused the early lie")
        }
    }

    /// 2a. An int8 delta with scale 3e38 and q = 127 (the plan's codec is lossless): `wrongCodec`.
    @Test func int8DeltaWithHugeScale() async throws {
        let net = try network("int8-scale")
        let outcome = try await run(net) { peer, honest in
            for h in honest { await peer.send(peer.envelope(.delta, sequence: 1, round: 1, samples: peer.declaredSamples, peer.int8(scale: 3e38, q: 127)), to: h) }
        }
        try await expectSound(outcome, "int8 delta scale 3e38")
        #expect(outcome.rejected["wrongCodec", default: 0] + outcome.rejected["nonFinite", default: 0] >= 2, "\(outcome.rejected)")
    }

    /// 2b. A keyframe of zeros then two lossless deltas of +3e38 each: the second would make the
    /// copy infinite (`nonFiniteResult`). The first is finite and accepted, but peer scoring
    /// quarantines hospital-c in the first round its copy is measured — before the step mixes it
    /// in (its distance from the neighbourhood is ~10³⁸ times the others') — so the honest nodes
    /// match the silent run (before scoring: 0.79–0.80 against 0.965).
    @Test func twoLosslessDeltasOfHugeValues() async throws {
        let net = try network("lossless-huge")
        let outcome = try await run(net) { peer, honest in
            let n = peer.parameterCount
            for h in honest {
                await peer.send(peer.envelope(.keyframe, sequence: 1, round: 1, samples: peer.declaredSamples, peer.lossless([Float](repeating: 0, count: n))), to: h)
                for s in UInt64(2)...3 {
                    await peer.send(peer.envelope(.delta, sequence: s, round: 1, base: s - 1, samples: peer.declaredSamples, peer.lossless([Float](repeating: 3e38, count: n))), to: h)
                }
            }
        }
        try await expectSound(outcome, "two lossless deltas of +3e38")
        #expect(outcome.rejected["nonFiniteResult", default: 0] + outcome.rejected["wrongCodec", default: 0] >= 2, "\(outcome.rejected)")
        for log in outcome.logs { #expect(log.events.contains { $0.event == "quarantined" && $0.neighbour == net.hostile.me.rawValue }, "\(log.peer)") }
    }

    /// 3a. A keyframe for round 2⁴⁰: `outOfRange`.
    @Test func keyframeForFarRound() async throws {
        let net = try network("far-round")
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            for h in honest { await peer.send(peer.envelope(.keyframe, sequence: 1, round: 1 << 40, samples: peer.declaredSamples, peer.lossless(zeros)), to: h) }
        }
        try await expectSound(outcome, "keyframe for round 2^40")
        #expect(outcome.rejected["outOfRange", default: 0] >= 2, "\(outcome.rejected)")
    }

    /// 3b. Keyframes for round plan.rounds (the last): accepted as a delivery for a bounded window
    /// only, so the honest nodes must not stall — no round takes more than two deadlines. The
    /// keyframes carry zeros, which the honest nodes mix in as hospital-c's model (accuracy 0.939
    /// against 0.965 silent): a plausible lie. Peer scoring does not catch it — a zero model is
    /// exactly one model size from the neighbourhood's median and, against the spread of two
    /// honest nodes on 60/30 non-IID data, below the distance ratio T (honest sites under strong
    /// label skew sit that far too; README, "Peer scoring and quarantine"); robust aggregation
    /// (clipping) is what bounds it.
    @Test func keyframesForTheLastRound() async throws {
        let net = try network("last-round")
        let rounds = UInt64(net.topology.plan.rounds)
        let outcome = try await run(net) { peer, honest in
            let zeros = [Float](repeating: 0, count: peer.parameterCount)
            var sequence: UInt64 = 1
            // One now, and one more every few seconds (each a new version).
            while !_Concurrency.Task.isCancelled && sequence <= 4 {
                for h in honest { await peer.send(peer.envelope(.keyframe, sequence: sequence, round: rounds, samples: peer.declaredSamples, peer.lossless(zeros)), to: h) }
                sequence += 1
                try? await _Concurrency.Task.sleep(for: .seconds(3))
            }
        }
        try await expectSound(outcome, "keyframes for round plan.rounds", knownIssue: "a zero model is mixed in: within peer scoring's distance tolerance, and no robust aggregation yet", intermittent: true)
        #expect(outcome.longestRound <= 2 * Double(Self.deadlineMilliseconds) / 1000, "longest round \(outcome.longestRound) s")
        for log in outcome.logs { #expect(log.rounds.last?.round == Int(rounds)) }
    }
}

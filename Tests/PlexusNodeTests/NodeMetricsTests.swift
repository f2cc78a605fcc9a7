import Foundation
import PlexusCore
import PlexusNode
import PlexusTestKit
import Prometheus
import Testing

/// The node's metrics through swift-metrics and swift-prometheus: each test gives the node
/// metrics a registry of its own (nothing goes through the process-global `MetricsSystem`).
@Suite struct NodeMetricsTests {
    let a = PeerID("hospital-a")!
    let b = PeerID("hospital-b")!
    let c = PeerID("hospital-c")!
    let d = PeerID("hospital-d")!

    func makeMetrics(_ registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), processMetrics: Bool = false) -> NodeMetrics {
        NodeMetrics(
            peer: a, planRounds: 40, topologyFingerprint: "0123abcd", neighbours: [b, c],
            version: "9.8.7", registry: registry, processMetrics: processMetrics
        )
    }

    func parse(_ metrics: NodeMetrics) -> PrometheusExposition {
        let exposition = PrometheusExposition(parsing: metrics.expositionText())
        #expect(exposition.problems == [], "\(metrics.expositionText())")
        return exposition
    }

    @Test func beforeTheFirstRound() {
        let metrics = makeMetrics()
        let text = metrics.expositionText()
        let e = parse(metrics)
        let peer = ["peer": "hospital-a"]
        #expect(e.value("plexus_round", peer) == 0)
        #expect(text.contains("plexus_training_loss{peer=\"hospital-a\"} NaN\n"), "NaN is spelled as the format wants")
        #expect(text.contains("plexus_consensus_distance{peer=\"hospital-a\"} NaN\n"))
        #expect(!text.contains("nan"))
        #expect(e.value("plexus_plan_rounds", peer) == 40)
        #expect(e.value("plexus_finished", peer) == 0)
        #expect(e.value("plexus_open_sessions", peer) == 0)
        #expect(e.value("plexus_bytes_sent_total", peer) == 0)
        #expect(e.value("plexus_build_info", ["peer": "hospital-a", "version": "9.8.7"]) == 1)
        #expect(e.value("plexus_topology_info", ["peer": "hospital-a", "fingerprint": "0123abcd"]) == 1)
        // A zero for each neighbour from the start; nothing for a reason not seen yet.
        #expect(e.value("plexus_deadline_misses_total", ["peer": "hospital-a", "neighbour": "hospital-b"]) == 0)
        #expect(e.value("plexus_deadline_misses_total", ["peer": "hospital-a", "neighbour": "hospital-c"]) == 0)
        #expect(e.samples("plexus_rejected_messages_total").isEmpty)
        #expect(e.samples("plexus_validation_metric").isEmpty)
        #expect(e.samples("plexus_neighbour_staleness_rounds").isEmpty)
        // No privacy series until a private round: a 0 would read as "spent nothing".
        #expect(e.samples("plexus_privacy_epsilon").isEmpty && !text.contains("plexus_privacy_epsilon"))
    }

    /// Values recorded through the driver's calls come out exactly, with their HELP and TYPE lines.
    @Test func expositionThroughTheLibrary() {
        let metrics = makeMetrics()
        let start = ContinuousClock.now
        metrics.trainingStarted(at: start)
        metrics.sessionOpened()
        metrics.sessionOpened()
        metrics.sessionClosed()
        metrics.handshakeFailed(.badSignature)
        metrics.handshakeFailed(.badSignature)
        metrics.handshakeFailed(.handshakeTimeout)
        metrics.rejected(.schemaMismatch)
        metrics.roundCompleted(
            .init(
                round: 1, trainingLoss: 0.5, consensusDistance: 0.25, bytesSent: 1000, bytesReceived: 700,
                rejected: [.replay: 3, .gap: 0], staleness: [b: 0, c: 2, d: 9], validation: (name: "accuracy", value: 0.875),
                privacyEpsilon: 0.75
            ),
            unixTime: 1_800_000_000.5, at: start + .milliseconds(300)
        )
        metrics.deadlineMissed(missing: [c, d])
        metrics.roundCompleted(
            .init(round: 2, trainingLoss: 0.375, consensusDistance: .infinity, bytesSent: 24, bytesReceived: 1, rejected: [.replay: 1], staleness: [b: 1, c: 0],
                  privacyEpsilon: 1.25),
            unixTime: 1_800_000_002, at: start + .seconds(3)
        )
        metrics.setNeighbourTopologyMatch(neighbour: b, matches: true)
        metrics.setNeighbourTopologyMatch(neighbour: c, matches: false)
        metrics.setNeighbourTopologyMatch(neighbour: d, matches: false)
        metrics.setQuarantined(neighbour: b, true)
        metrics.setQuarantined(neighbour: c, true)
        metrics.setQuarantined(neighbour: c, false)
        metrics.setQuarantined(neighbour: d, true)
        metrics.finished()

        let text = metrics.expositionText()
        let e = parse(metrics)
        let peer = ["peer": "hospital-a"]
        func with(_ name: String, _ value: String) -> [String: String] { ["peer": "hospital-a", name: value] }
        #expect(e.value("plexus_round", peer) == 2)
        #expect(e.value("plexus_privacy_epsilon", peer) == 1.25)
        #expect(e.value("plexus_training_loss", peer) == 0.375)
        #expect(text.contains("plexus_consensus_distance{peer=\"hospital-a\"} +Inf\n"))
        #expect(e.value("plexus_validation_metric", with("metric", "accuracy")) == 0.875)
        #expect(text.contains("plexus_validation_metric{peer=\"hospital-a\",metric=\"accuracy\"} 0.875\n"), "peer first, as dashboards match it")
        #expect(e.value("plexus_bytes_sent_total", peer) == 1024)
        #expect(e.value("plexus_bytes_received_total", peer) == 701)
        #expect(e.value("plexus_open_sessions", peer) == 1)
        #expect(e.value("plexus_handshake_failures_total", with("reason", "badSignature")) == 2)
        #expect(e.value("plexus_handshake_failures_total", with("reason", "handshakeTimeout")) == 1)
        #expect(e.value("plexus_rejected_messages_total", with("reason", "replay")) == 4)
        #expect(e.value("plexus_rejected_messages_total", with("reason", "schemaMismatch")) == 1)
        #expect(e.value("plexus_rejected_messages_total", with("reason", "gap")) == nil, "a zero count makes no series")
        #expect(e.value("plexus_finished", peer) == 1)
        #expect(e.value("plexus_last_round_timestamp_seconds", peer) == 1_800_000_002)
        // Staleness and deadline misses: only the topology's neighbours (d is not one).
        #expect(e.value("plexus_neighbour_staleness_rounds", with("neighbour", "hospital-b")) == 1)
        #expect(e.value("plexus_neighbour_staleness_rounds", with("neighbour", "hospital-c")) == 0)
        #expect(e.value("plexus_deadline_misses_total", with("neighbour", "hospital-b")) == 0)
        #expect(e.value("plexus_deadline_misses_total", with("neighbour", "hospital-c")) == 1)
        #expect(e.value("plexus_neighbour_topology_match", with("neighbour", "hospital-b")) == 1)
        #expect(e.value("plexus_neighbour_topology_match", with("neighbour", "hospital-c")) == 0)
        // Quarantine: b is, c was and is released, d is not a neighbour (ignored, not counted).
        #expect(e.value("plexus_neighbour_quarantined", with("neighbour", "hospital-b")) == 1)
        #expect(e.value("plexus_neighbour_quarantined", with("neighbour", "hospital-c")) == 0)
        #expect(e.value("plexus_quarantines_total", peer) == 2)
        for sample in e.samples where sample.label("neighbour") != nil {
            #expect(sample.label("neighbour") != "hospital-d", "\(sample.name): not a neighbour")
        }
        // The round-duration histogram: 0.3 s, then 2.7 s.
        #expect(e.value("plexus_round_duration_seconds_count", peer) == 2)
        #expect(abs((e.value("plexus_round_duration_seconds_sum", peer) ?? 0) - 3.0) < 1e-9)
        #expect(e.value("plexus_round_duration_seconds_bucket", with("le", "0.25")) == 0)
        #expect(e.value("plexus_round_duration_seconds_bucket", with("le", "0.5")) == 1)
        #expect(e.value("plexus_round_duration_seconds_bucket", with("le", "2.5")) == 1)
        #expect(e.value("plexus_round_duration_seconds_bucket", with("le", "5.0")) == 2)
        #expect(e.value("plexus_round_duration_seconds_bucket", with("le", "+Inf")) == 2)

        // HELP and TYPE of every family, exactly.
        let expected: [(String, String, String)] = [
            ("plexus_round", "gauge", "The last completed round."),
            ("plexus_training_loss", "gauge", "Training loss of the last round."),
            ("plexus_validation_metric", "gauge", "The model's metric on the test set after the last round."),
            ("plexus_consensus_distance", "gauge", "‖x − mean of the neighbours' public copies‖ after the last round."),
            ("plexus_bytes_sent_total", "counter", "Message bytes sent to neighbours."),
            ("plexus_bytes_received_total", "counter", "Message bytes received from neighbours."),
            ("plexus_open_sessions", "gauge", "Authenticated sessions open now."),
            ("plexus_rejected_messages_total", "counter", "Messages dropped, by reason."),
            ("plexus_handshake_failures_total", "counter", "Failed handshakes, by reason."),
            ("plexus_finished", "gauge", "1 once the plan's last round is done."),
            ("plexus_plan_rounds", "gauge", "The plan's total number of rounds."),
            ("plexus_last_round_timestamp_seconds", "gauge", "Unix time at which the last round completed."),
            ("plexus_round_duration_seconds", "histogram", "Seconds from one round's completion to the next's."),
            ("plexus_deadline_misses_total", "counter", "Rounds completed at their deadline without this neighbour's delta."),
            ("plexus_neighbour_staleness_rounds", "gauge", "Rounds since this neighbour's last delta (0 = up to date), as of the last round."),
            ("plexus_neighbour_topology_match", "gauge", "1 if this neighbour runs the same topology file (fingerprint), 0 if another."),
            ("plexus_neighbour_quarantined", "gauge", "1 while peer scoring has this neighbour quarantined (weight 0 in the consensus step), else 0."),
            ("plexus_quarantines_total", "counter", "Neighbours quarantined by peer scoring (each quarantine once)."),
            ("plexus_build_info", "gauge", "Always 1; the version label is this build's release."),
            ("plexus_topology_info", "gauge", "Always 1; the fingerprint label is the running topology file's."),
            ("plexus_privacy_epsilon", "gauge", "Under [plan.privacy]: the epsilon this node's training has spent by the last round (at the plan's delta)."),
        ]
        for (name, type, help) in expected {
            #expect(text.contains("# HELP \(name) \(help)\n"), "\(name)")
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name)")
        }
        #expect(Set(e.types.keys) == Set(expected.map(\.0)), "no family unaccounted for")
        #expect(Set(NodeMetrics.Family.allCases.map(\.rawValue)) == Set(expected.map(\.0)))
        // Every plexus_ sample carries this node's peer label.
        for sample in e.samples { #expect(sample.label("peer") == "hospital-a", "\(sample.name)") }
    }

    /// Every `reason` label value is a `Reason` raw value: drive every reason through both
    /// reason families, and check what comes out.
    @Test func everyReasonLabelIsAReason() {
        let metrics = makeMetrics()
        for reason in Reason.allCases {
            metrics.rejected(reason)
            metrics.handshakeFailed(reason)
        }
        metrics.roundCompleted(
            .init(round: 1, trainingLoss: 1, consensusDistance: 1, bytesSent: 0, bytesReceived: 0, rejected: Dictionary(uniqueKeysWithValues: Reason.allCases.map { ($0, 2) })),
            unixTime: 0
        )
        let e = parse(metrics)
        assertBoundedLabels(e, neighbours: [b, c])
        let raw = Set(Reason.allCases.map(\.rawValue))
        #expect(Set(e.samples("plexus_rejected_messages_total").compactMap { $0.label("reason") }) == raw)
        #expect(Set(e.samples("plexus_handshake_failures_total").compactMap { $0.label("reason") }) == raw)
        for sample in e.samples("plexus_rejected_messages_total") { #expect(sample.value == 3) }
    }

    /// A reload: the old fingerprint's label set disappears, and so do the series of a
    /// neighbour the new topology no longer has; a new neighbour starts at zero.
    @Test func reloadReplacesTopologyInfoAndNeighbourSeries() {
        let metrics = makeMetrics()
        metrics.roundCompleted(.init(round: 1, trainingLoss: 1, consensusDistance: 1, bytesSent: 0, bytesReceived: 0, staleness: [b: 1, c: 1]), unixTime: 0)
        metrics.deadlineMissed(missing: [b])
        metrics.setNeighbourTopologyMatch(neighbour: b, matches: false)
        metrics.topologyChanged(fingerprint: "0123abcd", neighbours: [a, b, c])  // the same file
        #expect(parse(metrics).value("plexus_topology_info", ["peer": "hospital-a", "fingerprint": "0123abcd"]) == 1)
        #expect(parse(metrics).value("plexus_deadline_misses_total", ["peer": "hospital-a", "neighbour": "hospital-b"]) == 1, "an unchanged neighbour keeps its count")

        metrics.topologyChanged(fingerprint: "feedbeef", neighbours: [c, d])
        let text = metrics.expositionText()
        let e = parse(metrics)
        #expect(!text.contains("0123abcd"), "the old fingerprint is gone")
        #expect(e.samples("plexus_topology_info").count == 1)
        #expect(e.value("plexus_topology_info", ["peer": "hospital-a", "fingerprint": "feedbeef"]) == 1)
        #expect(!text.contains("hospital-b"), "no series of a removed neighbour")
        #expect(e.value("plexus_deadline_misses_total", ["peer": "hospital-a", "neighbour": "hospital-d"]) == 0)
        #expect(e.value("plexus_neighbour_staleness_rounds", ["peer": "hospital-a", "neighbour": "hospital-c"]) == 1)
        assertBoundedLabels(e, neighbours: [c, d])
        // The removed neighbour is now ignored.
        metrics.setNeighbourTopologyMatch(neighbour: b, matches: true)
        metrics.deadlineMissed(missing: [b])
        #expect(!metrics.expositionText().contains("hospital-b"))
    }

    /// Two nodes in one process (as in the simulator or these tests) share nothing.
    @Test func eachNodeHasItsOwnRegistry() {
        let one = makeMetrics()
        let two = NodeMetrics(peer: b, planRounds: 5, topologyFingerprint: "aa", neighbours: [a], processMetrics: false)
        one.rejected(.replay, count: 7)
        one.finished()
        #expect(parse(two).value("plexus_finished", ["peer": "hospital-b"]) == 0)
        #expect(parse(two).samples("plexus_rejected_messages_total").isEmpty)
        #expect(!two.expositionText().contains("peer=\"hospital-a\""), "\(two.expositionText())")
        #expect(parse(one).value("plexus_rejected_messages_total", ["peer": "hospital-a", "reason": "replay"]) == 7)
    }

    /// The process series, read from /proc at each scrape.
    @Test func processMetrics() throws {
        #if os(Linux)
        let metrics = makeMetrics(processMetrics: true)
        let e = parse(metrics)
        let resident = try #require(e.value("process_resident_memory_bytes"))
        #expect(resident > Double(1 << 20) && resident < Double(64 << 30))
        #expect(try #require(e.value("process_virtual_memory_bytes")) >= resident)
        #expect(try #require(e.value("process_open_fds")) >= 3)
        #expect(try #require(e.value("process_max_fds")) >= 64)
        let start = try #require(e.value("process_start_time_seconds"))
        let now = Date().timeIntervalSince1970
        #expect(start <= now + 1 && start > now - 86_400 * 30, "\(start) vs \(now)")
        let cpu = try #require(e.value("process_cpu_seconds_total"))
        #expect(cpu > 0)
        // Burn a little CPU: the counter only rises.
        var x = 0.0
        for i in 0..<3_000_000 { x += Double(i).squareRoot() }
        #expect(x > 0)
        #expect(try #require(parse(metrics).value("process_cpu_seconds_total")) >= cpu)
        #expect(e.types["process_cpu_seconds_total"] == "counter")
        #expect(e.types["process_resident_memory_bytes"] == "gauge")
        #endif
    }

    @Test(arguments: [
        ("a 1\n", "a 1\n"),
        ("a{peer=\"x\"} nan\n", "a{peer=\"x\"} NaN\n"),
        ("a -nan\nb inf\nc{l=\"y z\"} -inf\n", "a NaN\nb +Inf\nc{l=\"y z\"} -Inf\n"),
        ("# HELP a nan\na{l=\"nan\"} 2.0\n", "# HELP a nan\na{l=\"nan\"} 2.0\n"),
    ])
    func specialValues(input: String, output: String) {
        #expect(String(decoding: NodeMetrics.prometheusSpecialValues(Array(input.utf8)), as: UTF8.self) == output)
    }

    /// The strict reader refuses what it should (so that its silence above means something).
    @Test(arguments: [
        "a 1\n",  // no TYPE
        "# TYPE a gauge\na 1\n",  // no HELP
        "# HELP a x\n# TYPE a counter\na 1\n",  // a counter without _total
        "# HELP a x\n# TYPE a gauge\na nan\n",  // Swift's spelling of NaN
        "# HELP a x\n# TYPE a gauge\n# TYPE a gauge\na 1\n",  // two TYPEs
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na{l=\"1\"} 2\n",  // a family split
        "# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n",  // an invalid label name
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n",  // the same series twice
        "# HELP a x\n# TYPE a gauge\na 1",  // no final line feed
    ])
    func strictReaderRefuses(text: String) {
        #expect(!PrometheusExposition(parsing: text).problems.isEmpty, "\(text)")
    }

    /// `promtool check metrics` on a driven exposition, where promtool is installed (CI installs
    /// Debian's prometheus package and sets PLEXUS_REQUIRE_PROMTOOL=1).
    @Test func promtoolAcceptsTheExposition() throws {
        guard let promtool = Promtool.path else {
            #expect(ProcessInfo.processInfo.environment["PLEXUS_REQUIRE_PROMTOOL"] != "1", "promtool is required here but not installed")
            return
        }
        let metrics = makeMetrics(processMetrics: true)
        for reason in Reason.allCases { metrics.rejected(reason) }
        metrics.trainingStarted()
        metrics.roundCompleted(.init(round: 1, trainingLoss: 0.5, consensusDistance: 0.1, bytesSent: 10, bytesReceived: 10, staleness: [b: 0, c: 1], validation: (name: "accuracy", value: 0.9)), unixTime: 1)
        metrics.deadlineMissed(missing: [b])
        metrics.setNeighbourTopologyMatch(neighbour: b, matches: true)
        let (status, output) = try Promtool.checkMetrics(promtool, input: metrics.exposition())
        #expect(status == 0, "promtool check metrics: \(output)")
    }
}

/// Every `reason` label is a ``Reason`` raw value and every `neighbour` label one of
/// `neighbours`: no label takes free text.
func assertBoundedLabels(_ exposition: PrometheusExposition, neighbours: Set<PeerID>, sourceLocation: SourceLocation = #_sourceLocation) {
    let reasons = Set(Reason.allCases.map(\.rawValue))
    let known: Set<String> = ["peer", "reason", "neighbour", "metric", "version", "fingerprint", "le"]
    for sample in exposition.samples {
        for (name, value) in sample.labels {
            #expect(known.contains(name), "\(sample.name): label \(name)", sourceLocation: sourceLocation)
            if name == "reason" { #expect(reasons.contains(value), "\(sample.name): reason '\(value)' is not a Reason", sourceLocation: sourceLocation) }
            if name == "neighbour" { #expect(neighbours.map(\.rawValue).contains(value), "\(sample.name): neighbour '\(value)'", sourceLocation: sourceLocation) }
        }
    }
}


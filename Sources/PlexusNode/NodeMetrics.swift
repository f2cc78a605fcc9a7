import CoreMetrics
package import PlexusCore
package import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One node's metrics: recorded by the driver through swift-metrics types (`Counter`, `Gauge`,
/// `Timer`), kept in the node's own ``registry`` and emitted on each scrape of `/metrics`.
///
/// Nothing here goes through the process-global `MetricsSystem`: every metric is made with an
/// explicit factory over this node's registry, so two nodes (or two tests) in one process never
/// share a series.
///
/// Every label has a bounded set of values: `peer` is this node's id; `reason` is a ``Reason``
/// (the API takes the enum, never a string); `neighbour` is a neighbour in the running topology
/// (anything else is ignored, and a neighbour removed by a reload loses its series); `metric`
/// is the name of the plan's first evaluation metric; `version` and `fingerprint` have one
/// value at a time.
package final class NodeMetrics: Sendable {
    /// Every `plexus_` family: its name, type and help line. The README's table lists the same.
    package enum Family: String, CaseIterable, Sendable {
        case round = "plexus_round"
        case trainingLoss = "plexus_training_loss"
        case validationMetric = "plexus_validation_metric"
        case consensusDistance = "plexus_consensus_distance"
        case bytesSent = "plexus_bytes_sent_total"
        case bytesReceived = "plexus_bytes_received_total"
        case openSessions = "plexus_open_sessions"
        case rejectedMessages = "plexus_rejected_messages_total"
        case handshakeFailures = "plexus_handshake_failures_total"
        case finished = "plexus_finished"
        case planRounds = "plexus_plan_rounds"
        case lastRoundTimestamp = "plexus_last_round_timestamp_seconds"
        case roundDuration = "plexus_round_duration_seconds"
        case deadlineMisses = "plexus_deadline_misses_total"
        case neighbourStaleness = "plexus_neighbour_staleness_rounds"
        case neighbourTopologyMatch = "plexus_neighbour_topology_match"
        case neighbourQuarantined = "plexus_neighbour_quarantined"
        case quarantines = "plexus_quarantines_total"
        case buildInfo = "plexus_build_info"
        case topologyInfo = "plexus_topology_info"
        case privacyEpsilon = "plexus_privacy_epsilon"

        package var help: String {
            switch self {
            case .round: "The last completed round."
            case .trainingLoss: "Training loss of the last round."
            case .validationMetric: "The model's metric on the test set after the last round."
            case .consensusDistance: "‖x − mean of the neighbours' public copies‖ after the last round."
            case .bytesSent: "Message bytes sent to neighbours."
            case .bytesReceived: "Message bytes received from neighbours."
            case .openSessions: "Authenticated sessions open now."
            case .rejectedMessages: "Messages dropped, by reason."
            case .handshakeFailures: "Failed handshakes, by reason."
            case .finished: "1 once the plan's last round is done."
            case .planRounds: "The plan's total number of rounds."
            case .lastRoundTimestamp: "Unix time at which the last round completed."
            case .roundDuration: "Seconds from one round's completion to the next's."
            case .deadlineMisses: "Rounds completed at their deadline without this neighbour's delta."
            case .neighbourStaleness: "Rounds since this neighbour's last delta (0 = up to date), as of the last round."
            case .neighbourTopologyMatch: "1 if this neighbour runs the same topology file (fingerprint), 0 if another."
            case .neighbourQuarantined: "1 while peer scoring has this neighbour quarantined (weight 0 in the consensus step), else 0."
            case .quarantines: "Neighbours quarantined by peer scoring (each quarantine once)."
            case .buildInfo: "Always 1; the version label is this build's release."
            case .topologyInfo: "Always 1; the fingerprint label is the running topology file's."
            case .privacyEpsilon: "Under [plan.privacy]: the epsilon this node's training has spent by the last round (at the plan's delta)."
            }
        }
    }

    /// The buckets of ``Family/roundDuration``: from a fast local network to a slow deadline.
    package static let roundDurationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    /// This node's registry: `/metrics` emits it, and nothing else writes to it.
    package let registry: PrometheusCollectorRegistry
    package let peer: PeerID
    private let factory: NodeMetricsFactory
    private let peerLabel: [(String, String)]

    private let round: CoreMetrics.Gauge
    private let trainingLoss: CoreMetrics.Gauge
    private let consensusDistance: CoreMetrics.Gauge
    private let bytesSent: CoreMetrics.Counter
    private let bytesReceived: CoreMetrics.Counter
    private let openSessions: CoreMetrics.Gauge
    private let finishedGauge: CoreMetrics.Gauge
    private let lastRoundTimestamp: CoreMetrics.Gauge
    private let roundDuration: CoreMetrics.Timer
    private let quarantines: CoreMetrics.Counter
    private let process: ProcessMetrics?

    /// The series whose label sets change while the node runs.
    private struct Labelled {
        var openSessions = 0
        var rejected: [Reason: CoreMetrics.Counter] = [:]
        var handshakeFailures: [Reason: CoreMetrics.Counter] = [:]
        var validation: (name: String, gauge: CoreMetrics.Gauge)?
        var privacyEpsilon: CoreMetrics.Gauge?
        var topology: (fingerprint: String, gauge: CoreMetrics.Gauge)?
        var neighbours: Set<PeerID> = []
        var deadlineMisses: [PeerID: CoreMetrics.Counter] = [:]
        var staleness: [PeerID: CoreMetrics.Gauge] = [:]
        var topologyMatch: [PeerID: CoreMetrics.Gauge] = [:]
        var quarantined: [PeerID: CoreMetrics.Gauge] = [:]
        var lastRound: ContinuousClock.Instant?
        var training = false
        var isFinished = false
        var currentRound = 0
    }

    /// The plan's rounds (for `/readyz`).
    private let planRounds: Int

    private let labelled = Mutex(Labelled())

    /// - Parameters:
    ///   - registry: this node's own registry. Default: a new one.
    ///   - processMetrics: also serve the `process_` series (read from `/proc/self` at each
    ///     scrape; Linux only). Default: true.
    package init(
        peer: PeerID, planRounds: Int, topologyFingerprint: String, neighbours: some Sequence<PeerID>,
        version: String = PlexusVersion.current, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        processMetrics: Bool = true
    ) {
        self.peer = peer
        self.planRounds = planRounds
        self.registry = registry
        let factory = NodeMetricsFactory(registry: registry)
        self.factory = factory
        let peerLabel = [("peer", peer.rawValue)]
        self.peerLabel = peerLabel
        func gauge(_ family: Family) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: family.rawValue, dimensions: peerLabel, factory: factory)
        }
        func counter(_ family: Family) -> CoreMetrics.Counter {
            CoreMetrics.Counter(label: family.rawValue, dimensions: peerLabel, factory: factory)
        }
        round = gauge(.round)
        trainingLoss = gauge(.trainingLoss)
        consensusDistance = gauge(.consensusDistance)
        bytesSent = counter(.bytesSent)
        bytesReceived = counter(.bytesReceived)
        openSessions = gauge(.openSessions)
        finishedGauge = gauge(.finished)
        lastRoundTimestamp = gauge(.lastRoundTimestamp)
        quarantines = counter(.quarantines)
        roundDuration = CoreMetrics.Timer(label: Family.roundDuration.rawValue, dimensions: peerLabel, factory: factory)
        // Nothing measured yet: NaN, as before the first round.
        trainingLoss.record(Double.nan)
        consensusDistance.record(Double.nan)
        gauge(.planRounds).record(planRounds)
        CoreMetrics.Gauge(label: Family.buildInfo.rawValue, dimensions: peerLabel + [("version", version)], factory: factory).record(1)
        process = processMetrics ? ProcessMetrics(factory: factory) : nil
        topologyChanged(fingerprint: topologyFingerprint, neighbours: neighbours)
    }

    // MARK: What the driver records

    /// What a completed round reports (from the gossip instance's `RoundReport`).
    package struct RoundValues: Sendable {
        package var round: Int
        package var trainingLoss: Double
        package var consensusDistance: Double
        package var bytesSent: Int
        package var bytesReceived: Int
        /// Messages dropped in the round, by reason.
        package var rejected: [Reason: Int]
        /// Rounds each neighbour's copy lags (0 = up to date).
        package var staleness: [PeerID: Int]
        /// The plan's first evaluation metric on the test set, if there is a test set.
        package var validation: (name: String, value: Double)?
        /// Under `[plan.privacy]`, ε spent by the end of the round.
        package var privacyEpsilon: Double?

        package init(
            round: Int, trainingLoss: Double, consensusDistance: Double, bytesSent: Int, bytesReceived: Int,
            rejected: [Reason: Int] = [:], staleness: [PeerID: Int] = [:], validation: (name: String, value: Double)? = nil,
            privacyEpsilon: Double? = nil
        ) {
            self.privacyEpsilon = privacyEpsilon
            self.round = round
            self.trainingLoss = trainingLoss
            self.consensusDistance = consensusDistance
            self.bytesSent = bytesSent
            self.bytesReceived = bytesReceived
            self.rejected = rejected
            self.staleness = staleness
            self.validation = validation
        }
    }

    /// Training (re)starts: the first round's duration is measured from now.
    package func trainingStarted(at instant: ContinuousClock.Instant = .now) {
        labelled.withLock {
            $0.lastRound = instant
            $0.training = true
        }
    }

    /// A round completed at `unixTime` (seconds since 1970) and `instant`.
    package func roundCompleted(_ values: RoundValues, unixTime: Double, at instant: ContinuousClock.Instant = .now) {
        round.record(values.round)
        trainingLoss.record(values.trainingLoss)
        consensusDistance.record(values.consensusDistance)
        bytesSent.increment(by: max(0, values.bytesSent))
        bytesReceived.increment(by: max(0, values.bytesReceived))
        lastRoundTimestamp.record(unixTime)
        for (reason, count) in values.rejected where count > 0 { rejected(reason, count: count) }
        let previous = labelled.withLock { state -> ContinuousClock.Instant? in
            defer {
                state.lastRound = instant
                state.currentRound = values.round
            }
            for (neighbour, rounds) in values.staleness where state.neighbours.contains(neighbour) {
                if state.staleness[neighbour] == nil {
                    state.staleness[neighbour] = neighbourGauge(.neighbourStaleness, neighbour)
                }
                state.staleness[neighbour]!.record(rounds)
            }
            if let validation = values.validation {
                let (name, value) = validation
                if state.validation?.name != name {
                    state.validation?.gauge.destroy()
                    state.validation = (name, CoreMetrics.Gauge(label: Family.validationMetric.rawValue, dimensions: peerLabel + [("metric", name)], factory: factory))
                }
                state.validation!.gauge.record(value)
            }
            if let epsilon = values.privacyEpsilon {
                // Only a private plan exposes the series (a 0 would read as "spent nothing").
                if state.privacyEpsilon == nil {
                    state.privacyEpsilon = CoreMetrics.Gauge(label: Family.privacyEpsilon.rawValue, dimensions: peerLabel, factory: factory)
                }
                state.privacyEpsilon!.record(epsilon)
            }
            return state.lastRound
        }
        if let previous, instant >= previous {
            roundDuration.recordNanoseconds(Self.nanoseconds(instant - previous))
        }
    }

    /// A synchronous round completed at its deadline without these neighbours' deltas.
    package func deadlineMissed(missing: some Sequence<PeerID>) {
        labelled.withLock { state in
            for neighbour in missing { state.deadlineMisses[neighbour]?.increment() }
        }
    }

    /// `count` messages were dropped for `reason`.
    package func rejected(_ reason: Reason, count: Int = 1) {
        labelled.withLock { state in
            if state.rejected[reason] == nil { state.rejected[reason] = reasonCounter(.rejectedMessages, reason) }
            state.rejected[reason]!.increment(by: max(0, count))
        }
    }

    /// A handshake failed (or a connection was refused) for `reason`.
    package func handshakeFailed(_ reason: Reason) {
        labelled.withLock { state in
            if state.handshakeFailures[reason] == nil { state.handshakeFailures[reason] = reasonCounter(.handshakeFailures, reason) }
            state.handshakeFailures[reason]!.increment()
        }
    }

    package func sessionOpened() {
        labelled.withLock { state in
            state.openSessions += 1
            openSessions.record(state.openSessions)
        }
    }

    package func sessionClosed() {
        labelled.withLock { state in
            state.openSessions = max(0, state.openSessions - 1)
            openSessions.record(state.openSessions)
        }
    }

    /// The plan's last round is done.
    package func finished() {
        finishedGauge.record(1)
        labelled.withLock { $0.isFinished = true }
    }

    /// What `/readyz` answers: whether the node takes part in the network now, and why not.
    package struct Readiness: Sendable, Equatable {
        package var ready: Bool
        package var reason: String

        package init(ready: Bool, reason: String) {
            self.ready = ready
            self.reason = reason
        }
    }

    /// Ready when the node trains with at least one neighbour session up and its last round
    /// completed within two round deadlines — or when it finished its plan (it only serves the
    /// final model then). Not ready while the statistics round runs, when no neighbour session
    /// is up (all neighbours stopped or unreachable: at once, since their sessions close), and
    /// when rounds stopped advancing.
    package func readiness(roundDeadline: Duration, now: ContinuousClock.Instant = .now) -> Readiness {
        let state = labelled.withLock { ($0.training, $0.isFinished, $0.openSessions, $0.neighbours.count, $0.lastRound, $0.currentRound) }
        let (training, isFinished, sessions, neighbours, lastRound, current) = state
        if isFinished { return Readiness(ready: true, reason: "finished: the plan's \(planRounds) rounds are done") }
        guard training else { return Readiness(ready: false, reason: "not training yet: the statistics round has not completed") }
        if neighbours > 0 && sessions == 0 {
            return Readiness(ready: false, reason: "no neighbour session is up (0 of \(neighbours))")
        }
        if let lastRound {
            let since = now - lastRound
            if since > roundDeadline * 2 {
                return Readiness(ready: false, reason: "no round completed for \(Self.seconds(since)) s (the round deadline is \(Self.seconds(roundDeadline)) s)")
            }
        }
        return Readiness(ready: true, reason: "training: round \(current) of \(planRounds), \(min(sessions, neighbours)) of \(neighbours) neighbour sessions up")
    }

    /// Tenths of a second, e.g. `20.4`.
    private static func seconds(_ d: Duration) -> String {
        let tenths = d.components.seconds * 10 + d.components.attoseconds / 100_000_000_000_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// The running topology, at start and after each accepted reload: `plexus_topology_info`
    /// takes the new fingerprint (the old label set disappears), and the per-neighbour series of
    /// neighbours no longer in `neighbours` disappear.
    package func topologyChanged(fingerprint: String, neighbours: some Sequence<PeerID>) {
        let updated = Set(neighbours).subtracting([peer])
        labelled.withLock { state in
            if state.topology?.fingerprint != fingerprint {
                state.topology?.gauge.destroy()
                let gauge = CoreMetrics.Gauge(label: Family.topologyInfo.rawValue, dimensions: peerLabel + [("fingerprint", fingerprint)], factory: factory)
                gauge.record(1)
                state.topology = (fingerprint, gauge)
            }
            for removed in state.neighbours.subtracting(updated) {
                state.deadlineMisses.removeValue(forKey: removed)?.destroy()
                state.staleness.removeValue(forKey: removed)?.destroy()
                state.topologyMatch.removeValue(forKey: removed)?.destroy()
                state.quarantined.removeValue(forKey: removed)?.destroy()
            }
            // A zero from the start, so that a rate over the first miss is not lost.
            for added in updated.subtracting(state.neighbours) {
                state.deadlineMisses[added] = CoreMetrics.Counter(label: Family.deadlineMisses.rawValue, dimensions: neighbourLabels(added), factory: factory)
                let gauge = neighbourGauge(.neighbourQuarantined, added)
                gauge.record(0)
                state.quarantined[added] = gauge
            }
            state.neighbours = updated
        }
    }

    /// Whether `neighbour` runs the same topology file as this node (its fingerprint, compared
    /// at session open): `plexus_neighbour_topology_match{neighbour}` 1 if so, 0 if not.
    /// Ignored for a peer that is not a neighbour in the running topology.
    package func setNeighbourTopologyMatch(neighbour: PeerID, matches: Bool) {
        labelled.withLock { state in
            guard state.neighbours.contains(neighbour) else { return }
            if state.topologyMatch[neighbour] == nil {
                state.topologyMatch[neighbour] = neighbourGauge(.neighbourTopologyMatch, neighbour)
            }
            state.topologyMatch[neighbour]!.record(matches ? 1 : 0)
        }
    }

    /// Peer scoring quarantined (`true`) or released `neighbour`: `plexus_neighbour_quarantined`
    /// takes 1 or 0, and a quarantine counts in `plexus_quarantines_total`. Ignored for a peer
    /// that is not a neighbour in the running topology; `counted: false` (a quarantine restored
    /// from the state file, counted by the run that made it) sets the gauge only.
    package func setQuarantined(neighbour: PeerID, _ quarantined: Bool, counted: Bool = true) {
        let known = labelled.withLock { state in
            guard let gauge = state.quarantined[neighbour] else { return false }
            gauge.record(quarantined ? 1 : 0)
            return true
        }
        if known && quarantined && counted { quarantines.increment() }
    }

    // MARK: The exposition

    /// The Prometheus text exposition format (version 0.0.4) of this node's registry, with the
    /// process series read now. Values that Swift spells `nan`, `inf` and `-inf` are written
    /// `NaN`, `+Inf` and `-Inf`, as the format requires.
    package func exposition() -> [UInt8] {
        process?.update()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        registry.emit(into: &buffer)
        return Self.prometheusSpecialValues(buffer)
    }

    /// ``exposition()`` as text.
    package func expositionText() -> String { String(decoding: exposition(), as: UTF8.self) }

    /// Rewrites a sample line's value `nan`/`-nan`, `inf` and `-inf` as `NaN`, `+Inf` and `-Inf`.
    /// A sample's value is the last field of its line: label values never hold a raw line feed
    /// (the library escapes it), so the text after the line's last space is the value.
    package static func prometheusSpecialValues(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 64)
        var lineStart = 0
        while lineStart < text.count {
            var lineEnd = lineStart
            while lineEnd < text.count && text[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            var valueStart = lineEnd
            while valueStart > lineStart && text[valueStart - 1] != UInt8(ascii: " ") { valueStart -= 1 }
            let value = text[valueStart..<lineEnd]
            let replacement: String? =
                text[lineStart] == UInt8(ascii: "#") || valueStart == lineStart ? nil
                : value.elementsEqual("nan".utf8) || value.elementsEqual("-nan".utf8) ? "NaN"
                : value.elementsEqual("inf".utf8) ? "+Inf"
                : value.elementsEqual("-inf".utf8) ? "-Inf"
                : nil
            if let replacement {
                out.append(contentsOf: text[lineStart..<valueStart])
                out.append(contentsOf: replacement.utf8)
            } else {
                out.append(contentsOf: text[lineStart..<lineEnd])
            }
            if lineEnd < text.count { out.append(UInt8(ascii: "\n")) }
            lineStart = lineEnd + 1
        }
        return out
    }

    // MARK: Helpers

    private func neighbourLabels(_ neighbour: PeerID) -> [(String, String)] {
        peerLabel + [("neighbour", neighbour.rawValue)]
    }

    private func neighbourGauge(_ family: Family, _ neighbour: PeerID) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: family.rawValue, dimensions: neighbourLabels(neighbour), factory: factory)
    }

    private func reasonCounter(_ family: Family, _ reason: Reason) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: family.rawValue, dimensions: peerLabel + [("reason", reason.rawValue)], factory: factory)
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// The swift-metrics factory of one node: every handler it makes lives in that node's registry,
/// with its family's HELP line (`PrometheusMetricsFactory` registers families without one).
struct NodeMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    /// HELP lines by family name: the `plexus_` families and the `process_` ones.
    static let help: [String: String] = Dictionary(
        uniqueKeysWithValues: NodeMetrics.Family.allCases.map { ($0.rawValue, $0.help) } + ProcessMetrics.help
    )

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: Self.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: [0.001, 0.01, 0.1, 1, 10, 100, 1000])
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: NodeMetrics.roundDurationBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

/// The conventional `process_` series, read from `/proc/self` at each scrape (neither
/// swift-metrics nor swift-prometheus provides them). Each read goes into one fixed buffer on
/// the stack: no allocation per scrape. Not labelled, as every Prometheus client writes them.
final class ProcessMetrics: Sendable {
    static let help: [(String, String)] = [
        ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
        ("process_resident_memory_bytes", "Resident memory size in bytes."),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes."),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
        ("process_open_fds", "Number of open file descriptors."),
        ("process_max_fds", "Maximum number of open file descriptors."),
    ]

    private let cpu: FloatingPointCounter
    private let resident: CoreMetrics.Gauge
    private let virtual: CoreMetrics.Gauge
    private let openFDs: CoreMetrics.Gauge
    private let maxFDs: CoreMetrics.Gauge
    /// CPU seconds already counted into `cpu` (a counter only moves by increments).
    private let countedCPU = Mutex(0.0)

    #if os(Linux)
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private static let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
    #endif

    init?(factory: NodeMetricsFactory) {
        #if os(Linux)
        cpu = FloatingPointCounter(label: "process_cpu_seconds_total", factory: factory)
        resident = CoreMetrics.Gauge(label: "process_resident_memory_bytes", factory: factory)
        virtual = CoreMetrics.Gauge(label: "process_virtual_memory_bytes", factory: factory)
        openFDs = CoreMetrics.Gauge(label: "process_open_fds", factory: factory)
        maxFDs = CoreMetrics.Gauge(label: "process_max_fds", factory: factory)
        let start = CoreMetrics.Gauge(label: "process_start_time_seconds", factory: factory)
        // Boot time (the realtime clock less the boottime clock) plus the process's start, in
        // clock ticks since boot (field 22 of /proc/self/stat).
        var realtime = timespec()
        var boottime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        clock_gettime(CLOCK_BOOTTIME, &boottime)
        let booted = Double(realtime.tv_sec - boottime.tv_sec) + Double(realtime.tv_nsec - boottime.tv_nsec) / 1e9
        if let ticks = Self.statFields([22]).first {
            start.record((booted + ticks / Self.ticksPerSecond).rounded())
        }
        update()
        #else
        return nil
        #endif
    }

    /// Reads the process's numbers now.
    func update() {
        #if os(Linux)
        // /proc/self/stat: utime (14) and stime (15) in clock ticks.
        let times = Self.statFields([14, 15])
        if times.count == 2 {
            let seconds = (times[0] + times[1]) / Self.ticksPerSecond
            countedCPU.withLock { counted in
                if seconds > counted {
                    cpu.increment(by: seconds - counted)
                    counted = seconds
                }
            }
        }
        // /proc/self/statm: size (1) and resident (2) in pages.
        let pages = Self.fields(path: "/proc/self/statm", afterParenthesis: false, wanted: [1, 2])
        if pages.count == 2 {
            virtual.record(pages[0] * Self.pageSize)
            resident.record(pages[1] * Self.pageSize)
        }
        openFDs.record(Self.openFileDescriptors())
        var limit = rlimit()
        if getrlimit(Self.noFileLimit, &limit) == 0 { maxFDs.record(Double(limit.rlim_cur)) }
        #endif
    }

    #if os(Linux)
    private static let noFileLimit = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

    private static func statFields(_ wanted: [Int]) -> [Double] {
        fields(path: "/proc/self/stat", afterParenthesis: true, wanted: wanted)
    }

    /// The numeric fields `wanted` (1-based, ascending) of a one-line `/proc` file. With
    /// `afterParenthesis`, counting starts after the command name's closing parenthesis (the
    /// name may hold spaces), whose next field is field 3.
    static func fields(path: String, afterParenthesis: Bool, wanted: [Int]) -> [Double] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { buffer -> [Double] in
            let count = read(fd, buffer.baseAddress, buffer.count)
            guard count > 0 else { return [] }
            let bytes = UnsafeBufferPointer(rebasing: buffer[..<count])
            var index = 0
            var field = 1
            if afterParenthesis {
                guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return [] }
                (index, field) = (close + 1, 3)
            }
            func isSeparator(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") }
            var values: [Double] = []
            values.reserveCapacity(wanted.count)
            var next = 0
            while next < wanted.count {
                while index < bytes.count && isSeparator(bytes[index]) { index += 1 }
                guard index < bytes.count else { break }
                var value: UInt64 = 0
                var numeric = true
                while index < bytes.count && !isSeparator(bytes[index]) {
                    let byte = bytes[index]
                    if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                        value = value &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
                    } else {
                        numeric = false
                    }
                    index += 1
                }
                if field == wanted[next] {
                    values.append(numeric ? Double(value) : .nan)
                    next += 1
                }
                field += 1
            }
            return values
        }
    }

    /// Entries of `/proc/self/fd`, less the directory's own descriptor.
    private static func openFileDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in name[0] == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
    }
    #endif
}

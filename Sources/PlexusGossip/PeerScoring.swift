public import PlexusCore

/// Peer scoring and quarantine (issue 12): per neighbour, a score built from what it did each
/// round, and a quarantine once the score crosses a threshold. A pure state machine — no I/O,
/// no clock — run by ``GossipInstance`` at the end of every round, so nodes and the simulator
/// quarantine the same neighbours in the same rounds.
///
/// ## What one round costs a neighbour
///
/// At the end of each round the instance hands in an ``Observation`` per neighbour, and the
/// neighbour's penalty for the round is
///
///     p = min(offending rejections, rejectionPenaltyCap)
///       + (clippingPenalty if the consensus rule cut it in the previous step)
///       + distance penalty
///       + (stalePenalty once its copy has stood still for stillAfter rounds)
///
/// - *Offending rejections* are messages from the neighbour dropped for a reason in
///   ``offendingReasons``: things only broken or malicious software signs (a lying sample count,
///   a wrong codec, a delta that makes its copy non-finite, a round outside the plan, bytes that
///   do not parse). Reasons an honest peer causes in ordinary operation — a `gap` after a lost
///   message, a `replay` after a reconnect, `tooFarAhead` after a restart, a `badSignature`
///   while a key rotation propagates, a second keyframe request — cost nothing (the rejection
///   budget still bounds them).
/// - *Clipping*: the ``ConsensusRule`` reports the neighbours whose contribution it cut; each cut
///   step costs ``Settings/clippingPenalty``, 0.25 (CHOCO never cuts). A neighbour cut every step
///   settles at a score of 1.25, below the threshold: clipping alone never quarantines — the rule
///   already bounds what a clipped copy can do, and honest sites are clipped too (under
///   `aggregation = "clipped"` on the IID 16-peer torus, a penalty of 1 per cut quarantined 16
///   honest neighbours) — but it adds to the other evidence: a copy at r ≈ T that is also cut
///   every step is quarantined in the 5th round rather than the 8th.
/// - *Distance from the neighbourhood*, the ratio r_j defined in ``distanceRatios(_:floor:)``:
///   the distance of j's copy from the coordinate-wise median of the closed neighbourhood's
///   copies, over the median of all members' distances from it — but at least
///   ``Settings/distanceFloor`` of the median's norm, so that r ≥ T also means the copy is at
///   least T × floor (0.8 with the defaults) of the model's size away: honest sites with very
///   different data are that close (measured, see ``Settings/distanceRatio``). Scale-free; a
///   minority of outliers cannot move either median past the honest members'. It costs nothing below
///   ``Settings/distanceRatio`` (T) and `1 + ⌊log₂(r ÷ T)⌋` beyond (capped at
///   ``Settings/distancePenaltyCap``): 1 from T, 2 from 2T, and the threshold's 4 from 8T — so a
///   gross outlier is quarantined in the very round it first shows, before it is mixed in.
/// - *A copy that stands still* (a `stale` replay, or a node stuck on an old model): the
///   instance measures how far each neighbour's copy moved this round (the norms of the deltas
///   applied to it, or of a keyframe's change) against how far this peer's own public copy
///   moved, the ``Observation/movementRatio``. It is measured only in a round in which the
///   neighbour delivered an envelope of the round (a slow or silent neighbour is not still, it
///   is late: nothing is measured) and this peer's own copy moved at least
///   ``Settings/movementFloor`` of its size (a network that has converged stands still
///   everywhere: nothing is measured). A round with ratio < ``Settings/stillRatio`` (1/100) is
///   a *still* round; from the ``Settings/stillAfter``-th (3rd) still round in a row on, each
///   costs ``Settings/stalePenalty`` (2), so a neighbour replaying one model from round 2 on is
///   quarantined at the end of round 6 (s = 2, 3.6, 4.88). Honest CHOCO peers cannot stand
///   still while their neighbourhood moves: each round's update is their own local step plus
///   the pull of neighbours that moved (measured without attackers: README).
///
/// ## Score, quarantine, release
///
/// The score decays and accumulates: s ← ``Settings/decay`` · s + p. When s reaches
/// ``Settings/threshold`` the neighbour is quarantined (``Transition/quarantined(_:_:)``): the
/// instance gives it weight 0 in the consensus step (its weight stays with the peer itself) and
/// leaves its copy out of the rule's inputs; its messages are still verified, applied to its copy
/// and counted, and its copy is still measured. With the defaults (decay 0.8, threshold 4) a
/// penalty of 1 every round — one offending message a round, or r ≈ T every round —
/// quarantines in the 8th round (s = 5(1 − 0.8ⁿ) ≥ 4); a penalty of 4 or more (four
/// offending messages, or r ≥ 8T) quarantines at once; a fault of 1 a round for three rounds
/// (s = 2.44) does not.
///
/// A quarantined neighbour is released (``Transition/released(_:)``) after
/// ``Settings/releaseAfter`` consecutive rounds with p = 0 (doubled for each earlier quarantine
/// of it, at most 8×) — rounds in which its run of still rounds is unbroken do not count, so a
/// neighbour quarantined for standing still must first be seen moving; its score starts again
/// from 0.
/// The state that decides what happens next — score, quarantine, good rounds, earlier
/// quarantines and the still run (``Persisted``) — is kept in the instance's snapshot, so a
/// restarted node keeps a quarantine and its escalating release delay; the running totals
/// behind a ``Why`` start again from 0.
public struct PeerScoring: Sendable {
    /// The thresholds. Every default is justified in the type's documentation and measured in
    /// the simulator on every repository topology (zero quarantines without an attacker).
    public struct Settings: Sendable, Hashable {
        /// Whether scoring runs at all (false: no neighbour is ever quarantined). Default: true.
        public var enabled = true
        /// Per-round decay of the score, in [0, 1). Default: 0.8 (a bad round's weight halves in
        /// about three rounds).
        public var decay = 0.8
        /// What one step in which the consensus rule cut the neighbour costs; MUST be < (1 −
        /// decay) · threshold, so that clipping alone never quarantines. Default: 0.25.
        public var clippingPenalty = 0.25
        /// The score at which a neighbour is quarantined; MUST be > 0. Default: 4.
        public var threshold = 4.0
        /// Consecutive rounds with no penalty after which a quarantined neighbour is released the
        /// first time; each later quarantine of the same neighbour doubles it, up to 8 times
        /// (10, 20, 40, 80 rounds), so an on-off attacker spends ever longer out of the mix.
        /// MUST be ≥ 1. Default: 10.
        public var releaseAfter = 10
        /// T: the distance ratio below which a copy costs nothing. Default: 16. Measured in the
        /// simulator without attackers (`PeerScoringHonestTests`, README "Peer scoring and
        /// quarantine"): the largest ratio any peer saw on the repository topologies with their
        /// data is 3.4 (4.7× below T), and 13.2 under extreme label skew (Dirichlet 0.1 over 64
        /// sites). A quarantine at once takes r ≥ 8T = 128.
        public var distanceRatio = 16.0
        /// φ: the distance ratio's denominator is at least φ · ‖m‖ (``PeerScoring/distanceRatios(_:floor:)``),
        /// so a copy is charged only when it is also at least T · φ of the model's size from the
        /// median; MUST be ≥ 0. Default: 1 ÷ 20 (with T = 16: 0.8 of the model's size — a zero
        /// model, exactly one size from the median, is charged once the honest copies agree
        /// to within 1 ÷ 16 of their size).
        public var distanceFloor = 1.0 / 20
        /// The most one round's distance costs. Default: 16.
        public var distancePenaltyCap = 16.0
        /// The most one round's offending rejections cost. Default: 8.
        public var rejectionPenaltyCap = 8
        /// A round in which a neighbour's copy moved less than this fraction of this peer's own
        /// public copy's movement is a still round (``Observation/movementRatio``). Default: 1 ÷ 100.
        public var stillRatio = 0.01
        /// Still rounds in a row before they cost anything; MUST be ≥ 1. Default: 3.
        public var stillAfter = 3
        /// What each still round costs from the ``stillAfter``-th in a row on. Default: 2.
        public var stalePenalty = 2.0
        /// The movement ratio is measured only when this peer's own public copy moved at least
        /// this fraction of its norm this round (float32 rounding moves a converged copy by
        /// about 1e-7 of its size). Default: 1e-5.
        public var movementFloor = 1e-5
        /// Envelopes kept per neighbour as evidence (the last ones, accepted or offending);
        /// MUST be ≥ 1. Default: 8.
        public var evidenceCount = 8
        /// Bytes of envelopes kept per neighbour as evidence (the newest one is always kept).
        /// Default: 8 MiB.
        public var evidenceBytes = 8 << 20

        public init() {}
    }

    /// What one neighbour did in one round.
    public struct Observation: Sendable, Hashable {
        /// Messages dropped this round for a reason in ``PeerScoring/offendingReasons``.
        public var offendingRejections: Int
        /// The consensus rule cut this neighbour in the previous step.
        public var cut: Bool
        /// r_j (``PeerScoring/distanceRatios(_:)``), or `nil` when not measured this round (its
        /// copy is not used, or the closed neighbourhood has fewer than three members).
        public var distanceRatio: Double?
        /// How far the neighbour's copy moved this round over how far this peer's own public
        /// copy moved, or `nil` when not measured (it delivered no envelope of the round, or this
        /// peer's own copy moved less than ``Settings/movementFloor`` of its size).
        public var movementRatio: Double?

        public init(offendingRejections: Int = 0, cut: Bool = false, distanceRatio: Double? = nil, movementRatio: Double? = nil) {
            self.offendingRejections = offendingRejections
            self.cut = cut
            self.distanceRatio = distanceRatio
            self.movementRatio = movementRatio
        }

        /// Whether this is a still round under `settings` (ratio measured and below the bound;
        /// NaN is not still).
        public func isStill(_ settings: Settings) -> Bool { movementRatio.map { $0 < settings.stillRatio } ?? false }
    }

    /// What drove a neighbour's score over the threshold: the largest part of the penalties it
    /// accumulated since its score was last 0.
    public enum Cause: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case rejections
        case clipping
        case distance
        case stale
        public var description: String { rawValue }
    }

    /// Why a neighbour was quarantined, for the log and the admin.
    public struct Why: Sendable, Hashable, CustomStringConvertible {
        public var cause: Cause
        /// The score when it crossed the threshold.
        public var score: Double
        /// Since the score was last 0: offending rejections, cut steps, and the largest distance
        /// ratio seen.
        public var rejections: Int
        public var cuts: Int
        public var largestDistanceRatio: Double
        /// The still rounds in a row (``Observation/movementRatio``) when it crossed.
        public var stillRounds: Int

        public init(cause: Cause, score: Double, rejections: Int, cuts: Int, largestDistanceRatio: Double, stillRounds: Int = 0) {
            self.cause = cause
            self.score = score
            self.rejections = rejections
            self.cuts = cuts
            self.largestDistanceRatio = largestDistanceRatio
            self.stillRounds = stillRounds
        }

        public var description: String {
            let ratio = largestDistanceRatio < 1e6 ? String(Int(largestDistanceRatio.rounded())) : "\(Float(largestDistanceRatio))"
            let still = stillRounds > 0 ? ", its copy still for \(stillRounds) rounds while this peer's moved" : ""
            return "\(cause): score \(Int(score.rounded())), \(rejections) offending messages, \(cuts) clipped steps, distance up to \(ratio)× the neighbourhood's\(still)"
        }
    }

    public enum Transition: Sendable, Hashable {
        case quarantined(PeerID, Why)
        case released(PeerID)
    }

    /// Rejection reasons that count against a neighbour (see the type's documentation for the
    /// ones that do not).
    public static let offendingReasons: Set<Reason> = [
        .truncated, .trailingBytes, .badMagic, .unsupportedVersion, .unknownKind, .unknownCodec, .badCodecParameters,
        .badLength, .decompression, .badIndices, .badMessage, .unknownOrigin, .badOrigin, .originMismatch,
        .sampleCountMismatch, .planMismatch, .wrongParameterCount, .wrongCodec, .badSequence, .nonFinite,
        .nonFiniteResult, .outOfRange,
    ]

    /// One neighbour's scoring state.
    public struct State: Sendable, Hashable {
        public var score = 0.0
        public var quarantined = false
        /// Consecutive rounds with no penalty (counted while quarantined).
        public var goodRounds = 0
        /// How many times this neighbour was quarantined (kept across releases).
        public var quarantines = 0
        /// Still rounds in a row (``Observation/movementRatio``); a measured round that is not
        /// still resets it, a round without a measurement leaves it.
        public var stillRounds = 0
        var parts = [Cause: Double]()
        var rejections = 0
        var cuts = 0
        var largestRatio = 0.0
    }

    public var settings: Settings
    public private(set) var states: [PeerID: State] = [:]

    /// What a snapshot keeps of one neighbour's ``State`` (``GossipSnapshot/scoring``).
    public struct Persisted: Sendable, Hashable {
        /// Bounds a restored value is checked against (``GossipSnapshot/validate(parameterCount:rounds:)``).
        public static let maximumScore = 1e9
        public static let maximumCount = Int(Int32.max)
        public var score: Double
        public var quarantined: Bool
        public var goodRounds: Int
        public var quarantines: Int
        public var stillRounds: Int

        public init(score: Double, quarantined: Bool, goodRounds: Int, quarantines: Int, stillRounds: Int) {
            self.score = score
            self.quarantined = quarantined
            self.goodRounds = goodRounds
            self.quarantines = quarantines
            self.stillRounds = stillRounds
        }
    }

    /// Each neighbour's state as a snapshot keeps it.
    public var persisted: [PeerID: Persisted] {
        states.mapValues { Persisted(score: $0.score, quarantined: $0.quarantined, goodRounds: $0.goodRounds, quarantines: $0.quarantines, stillRounds: $0.stillRounds) }
    }

    /// Resumes from persisted states (validated by the snapshot): only `peers`' are taken.
    public mutating func restore(_ saved: [PeerID: Persisted], peers: Set<PeerID>) {
        for (peer, p) in saved where peers.contains(peer) {
            states[peer] = State(score: p.score, quarantined: p.quarantined, goodRounds: p.goodRounds, quarantines: p.quarantines, stillRounds: p.stillRounds)
        }
    }

    public init(settings: Settings = Settings()) {
        precondition(settings.threshold > 0 && settings.decay >= 0 && settings.decay < 1, "scoring threshold > 0, decay in [0, 1)")
        precondition(settings.releaseAfter >= 1 && settings.evidenceCount >= 1 && settings.stillAfter >= 1, "releaseAfter, evidenceCount and stillAfter ≥ 1")
        self.settings = settings
    }

    public func isQuarantined(_ peer: PeerID) -> Bool { states[peer]?.quarantined ?? false }

    public var quarantined: Set<PeerID> { Set(states.filter(\.value.quarantined).keys) }

    /// Forgets a neighbour removed from the topology.
    public mutating func forget(_ peer: PeerID) { states[peer] = nil }

    /// The penalty of one observation (the formula in the type's documentation); `stillRounds`
    /// is the neighbour's count of still rounds in a row, this one included.
    public func penalty(_ o: Observation, stillRounds: Int = 0) -> (total: Double, parts: [Cause: Double]) {
        var parts: [Cause: Double] = [:]
        let rejections = Double(min(max(o.offendingRejections, 0), settings.rejectionPenaltyCap))
        if rejections > 0 { parts[.rejections] = rejections }
        if o.cut { parts[.clipping] = settings.clippingPenalty }
        if let r = o.distanceRatio, r >= settings.distanceRatio {
            // r may be +∞ (a copy away from a neighbourhood that agrees exactly): the cap.
            let p = r.isFinite ? 1 + Double((r / settings.distanceRatio).exponent) : settings.distancePenaltyCap
            parts[.distance] = min(p, settings.distancePenaltyCap)
        }
        if o.isStill(settings) && stillRounds >= settings.stillAfter { parts[.stale] = settings.stalePenalty }
        return (parts.values.reduce(0, +), parts)
    }

    /// The good rounds a neighbour in its `quarantines`-th quarantine needs to be released:
    /// ``Settings/releaseAfter`` doubled for each earlier quarantine, at most 8 times.
    public func releaseAfter(_ quarantines: Int) -> Int {
        settings.releaseAfter << min(max(quarantines - 1, 0), 3)
    }

    /// Folds in one round's observations, in peer-id order; returns the neighbours quarantined
    /// or released by it. A neighbour without an observation this round is left as it is.
    public mutating func observe(_ observations: [PeerID: Observation]) -> [Transition] {
        var transitions: [Transition] = []
        guard settings.enabled else { return transitions }
        for peer in observations.keys.sorted() {
            let o = observations[peer]!
            var s = states[peer] ?? State()
            if o.movementRatio != nil { s.stillRounds = o.isStill(settings) ? s.stillRounds + 1 : 0 }
            let (p, parts) = penalty(o, stillRounds: s.stillRounds)
            s.score = settings.decay * s.score + p
            if s.score < 1e-9 { s = State(quarantined: s.quarantined, goodRounds: s.goodRounds, quarantines: s.quarantines, stillRounds: s.stillRounds) }
            for (cause, value) in parts { s.parts[cause, default: 0] += value }
            s.rejections += min(max(o.offendingRejections, 0), settings.rejectionPenaltyCap)
            if o.cut { s.cuts += 1 }
            if let r = o.distanceRatio { s.largestRatio = max(s.largestRatio, r) }
            if s.quarantined {
                // A neighbour still standing still (its run of still rounds unbroken by a measured
                // round that moved) has not shown it moves again: not a good round.
                s.goodRounds = p == 0 && s.stillRounds < settings.stillAfter ? s.goodRounds + 1 : 0
                if s.goodRounds >= releaseAfter(s.quarantines) {
                    s = State(quarantines: s.quarantines, stillRounds: s.stillRounds)
                    transitions.append(.released(peer))
                }
            } else if s.score >= settings.threshold {
                // The cause: the largest accumulated part, ties broken in Cause order.
                let cause = Cause.allCases.max { (s.parts[$0] ?? 0) < (s.parts[$1] ?? 0) }!
                let why = Why(
                    cause: cause, score: s.score, rejections: s.rejections, cuts: s.cuts, largestDistanceRatio: s.largestRatio,
                    stillRounds: s.stillRounds
                )
                s.quarantined = true
                s.goodRounds = 0
                s.quarantines += 1
                transitions.append(.quarantined(peer, why))
            }
            states[peer] = s
        }
        return transitions
    }

    /// How far one member's copy is from its closed neighbourhood (``PeerScoring/distances(_:)``).
    public struct Distance: Sendable, Hashable {
        /// d_k ÷ D: against the other members' spread (0 when d_k = 0; +∞ when only D is 0).
        public var spread: Double
        /// d_k ÷ ‖m‖₂: against the size of the model (0 when d_k = 0; +∞ when only ‖m‖ is 0).
        public var relative: Double

        public init(spread: Double, relative: Double) {
            self.spread = spread
            self.relative = relative
        }

        /// The distance ratio r = d_k ÷ max(D, floor · ‖m‖) = min(spread, relative ÷ floor).
        public func ratio(floor: Double) -> Double { Swift.min(spread, floor > 0 ? relative / floor : spread) }
    }

    /// The distance ratios r_j of the members of a closed neighbourhood (the peer's own public
    /// copy and its neighbours' copies, all of one length): with m the coordinate-wise median of
    /// the copies (the mean of the two middle values for an even count), d_k = ‖x̂_k − m‖₂ and
    /// D the median of the d_k (likewise), r_k = d_k ÷ max(D, `floor` · ‖m‖₂) — 0 when d_k = 0,
    /// +∞ when the denominator is 0 and d_k is not. Empty with fewer than three members (with
    /// two, neither can be told from the other).
    ///
    /// The floor (``Settings/distanceFloor``) makes r ≥ T mean two things at once: the copy is T
    /// times further from the median than the neighbourhood's typical member, *and* at least
    /// T × floor of the model's own size away. The second condition is what keeps honest but
    /// very different sites (strongly non-IID data) and neighbourhoods whose other members agree
    /// exactly (a neighbour mirroring one of three members makes D = 0) from being charged.
    ///
    /// O(members × length) time with a members-sized scratch buffer; copies MUST be finite.
    public static func distanceRatios(_ copies: [[Float]], floor: Double = Settings().distanceFloor) -> [Double] {
        distances(copies).map { $0.ratio(floor: floor) }
    }

    /// Each member's ``Distance`` (see ``distanceRatios(_:floor:)``); empty with fewer than three.
    public static func distances(_ copies: [[Float]]) -> [Distance] {
        let k = copies.count
        guard k >= 3, let n = copies.first?.count else { return [] }
        // Block by block: each member's slice is copied side by side into `block`, so the inner
        // loops run over one buffer.
        let width = 4096
        var block = [Float](repeating: 0, count: k * width)
        var column = [Float](repeating: 0, count: k)
        var squared = [Double](repeating: 0, count: k)
        var norm = 0.0
        var start = 0
        while start < n {
            let count = min(width, n - start)
            block.withUnsafeMutableBufferPointer { b in
                for j in 0..<k {
                    copies[j].withUnsafeBufferPointer { c in
                        for i in 0..<count { b[j * width + i] = c[start + i] }
                    }
                }
                column.withUnsafeMutableBufferPointer { col in
                    squared.withUnsafeMutableBufferPointer { sq in
                        for i in 0..<count {
                            for j in 0..<k { col[j] = b[j * width + i] }
                            // Insertion sort of the k values of this coordinate.
                            for a in 1..<k {
                                let v = col[a]
                                var c = a - 1
                                while c >= 0 && col[c] > v {
                                    col[c + 1] = col[c]
                                    c -= 1
                                }
                                col[c + 1] = v
                            }
                            let m = k % 2 == 1 ? Double(col[k / 2]) : 0.5 * (Double(col[k / 2 - 1]) + Double(col[k / 2]))
                            norm += m * m
                            for j in 0..<k {
                                let d = Double(b[j * width + i]) - m
                                sq[j] += d * d
                            }
                        }
                    }
                }
            }
            start += count
        }
        let distances = squared.map { $0.squareRoot() }
        var sorted = distances
        let typical = median(&sorted)
        let size = norm.squareRoot()
        return distances.map { d in
            Distance(spread: d == 0 ? 0 : typical > 0 ? d / typical : .infinity, relative: d == 0 ? 0 : size > 0 ? d / size : .infinity)
        }
    }

    /// The median of `values` (sorted in place by insertion sort: the arrays are neighbourhoods).
    private static func median(_ values: inout [Double]) -> Double {
        for a in 1..<values.count {
            let v = values[a]
            var b = a - 1
            while b >= 0 && values[b] > v {
                values[b + 1] = values[b]
                b -= 1
            }
            values[b + 1] = v
        }
        let c = values.count
        return c % 2 == 1 ? values[c / 2] : 0.5 * (values[c / 2 - 1] + values[c / 2])
    }
}

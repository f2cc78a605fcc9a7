import PlexusCodec
import PlexusCore
import PlexusCrypto
import PlexusGossip
import PlexusSimulator
import Testing

/// A compromised neighbour: every message below is validly signed by b's real key, and still
/// must not trap, corrupt, stall or silence the honest peer a.
@Suite struct HostileNeighbourTests {
    /// Peer a (under test) and its one neighbour b, whose key the tests sign with.
    struct Pair {
        var a: GossipInstance<QuadraticLearner>
        let b = peerID(1)
        let bKey: Ed25519.PrivateKey
        let settings: GossipSettings

        init(
            codec: CodecSpec = .lossless, rounds: Int = 20, synchrony: Plan.Synchrony = .synchronous,
            initial: [Float]? = nil, learningRate: Float = 0.1, configure: (inout GossipSettings) -> Void = { _ in }
        ) {
            let peers = makePeers(
                graph: Graphs.full(2), sizes: [10, 10], dimension: 4, rounds: rounds, learningRate: learningRate,
                codec: codec, synchrony: synchrony, initial: initial
            )
            var settings = peers[0].settings
            configure(&settings)
            self.settings = settings
            bKey = peers[1].key
            a = GossipInstance(settings: settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero })
        }

        /// A gossip message carrying an envelope from b with exactly these fields and this
        /// codec payload (built by hand, so no encoder check stands in the way).
        func envelope(
            _ kind: DeltaEnvelope.Kind = .keyframe, sequence: UInt64, base: UInt64 = 0, round: UInt64,
            samples: UInt64 = 10, neighbourhood: UInt64 = 20, delta: EncodedDelta, plan: [UInt8] = testPlanHash
        ) -> [UInt8] {
            let header = DeltaEnvelope.Header(
                kind: kind, planHash: plan, origin: b, sequence: sequence, round: round, baseSequence: base,
                sampleCount: samples, neighbourhoodSampleCount: neighbourhood
            )
            return GossipMessage.envelope(DeltaEnvelope(header: header, delta: delta).sealed(by: bKey)).encoded()
        }

        func lossless(_ values: [Float]) -> EncodedDelta { try! DeltaEncoder(codec: .lossless).encode(values) }

        /// b's keyframe of `values` at round 0, then a starts: a is at round 1 and knows b.
        mutating func startWithKeyframe(_ values: [Float] = [1, 2, 3, 4]) {
            _ = a.receive(envelope(sequence: 1, round: 0, delta: lossless(values)), from: b)
            _ = a.start()
        }
    }

    static func reasons(_ directives: [GossipDirective]) -> [Reason] {
        directives.compactMap { if case .event(.rejected(_, let reason, _)) = $0 { reason } else { nil } }
    }

    static func report(_ directives: [GossipDirective]) -> RoundReport? {
        directives.lazy.compactMap { if case .roundCompleted(let r) = $0 { r } else { nil } }.first
    }

    static func sendsEnvelope(_ directives: [GossipDirective]) -> Bool {
        directives.contains { if case .send(_, let bytes) = $0 { bytes.first == 1 } else { false } }
    }

    /// A neighbour whose signed statistics declared its count (the node knows it once the
    /// statistics round completed) cannot advertise another one: any other count in an envelope
    /// is refused before it changes anything, the declared one is taken.
    @Test func anEnvelopeMustAdvertiseTheDeclaredSampleCount() throws {
        var p = Pair { settings in settings.neighbours[peerID(1)]!.declaredSamples = 10 }
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 1, round: 0, samples: 10_000, neighbourhood: 20_000, delta: p.lossless([9, 9, 9, 9])), from: p.b)) == [.sampleCountMismatch])
        #expect(p.a.neighbourStates[p.b]!.copy == nil && p.a.neighbourStates[p.b]!.sampleCount == nil)
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 2, round: 0, samples: 9, delta: p.lossless([9, 9, 9, 9])), from: p.b)).isEmpty, "same reason, same round: counted, not logged again")
        #expect(p.a.neighbourStates[p.b]!.copy == nil)
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 3, round: 0, samples: 10, delta: p.lossless([1, 2, 3, 4])), from: p.b)).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.copy == [1, 2, 3, 4])
        #expect(p.a.neighbourStates[p.b]!.sampleCount == 10)
    }

    /// A node learns the signed counts from its statistics round, which may still be running
    /// when a neighbour's first keyframe arrives. Such an envelope is held, not applied, and is
    /// checked at the start against the count now known: the lie of 1000× is refused exactly as
    /// it is after the start (CI found one of two honest nodes taking it when it came early).
    /// An honest early keyframe is applied at the start, and the round begins with it.
    @Test func anEnvelopeBeforeTheCountsAreKnownIsHeldAndCheckedAtTheStart() throws {
        for honest in [false, true] {
            var p = Pair { $0.countsArriveBeforeStart = true }
            let early = p.envelope(sequence: 1, round: 0, samples: honest ? 10 : 10_000, neighbourhood: honest ? 20 : 20_000, delta: p.lossless([9, 9, 9, 9]))
            #expect(Self.reasons(p.a.receive(early, from: p.b)).isEmpty, "nothing is decided before the count is known")
            #expect(p.a.neighbourStates[p.b]!.copy == nil)
            var neighbours = p.settings.neighbours
            neighbours[p.b]!.declaredSamples = 10
            _ = p.a.updateNeighbours(neighbours)
            let started = p.a.start()
            if honest {
                #expect(Self.reasons(started).isEmpty)
                #expect(p.a.neighbourStates[p.b]!.copy == [9, 9, 9, 9])
                #expect(p.a.round == 1, "every neighbour's copy is there: round 1 begins at once")
            } else {
                #expect(Self.reasons(started) == [.sampleCountMismatch])
                #expect(p.a.neighbourStates[p.b]!.copy == nil && p.a.neighbourStates[p.b]!.sampleCount == nil)
                #expect(p.a.round == 0, "round 1 waits for a keyframe it can take (or the deadline)")
                // The same envelope after the start: the same answer, at once.
                let late = p.envelope(sequence: 2, round: 0, samples: 10_000, neighbourhood: 20_000, delta: p.lossless([9, 9, 9, 9]))
                _ = p.a.receive(late, from: p.b)
                #expect(p.a.neighbourStates[p.b]!.copy == nil)
            }
        }
    }

    /// What waits for the start is bounded: a keyframe replaces what its sender had held, and
    /// behind it at most the held-envelope window of deltas; the next is refused (`tooFarAhead`).
    @Test func envelopesHeldBeforeTheStartAreBounded() throws {
        var p = Pair { $0.countsArriveBeforeStart = true }
        let window = p.settings.maxBufferedPerNeighbour
        for sequence in 1...3 {
            #expect(Self.reasons(p.a.receive(p.envelope(sequence: UInt64(sequence), round: 0, delta: p.lossless([1, 1, 1, 1])), from: p.b)).isEmpty)
        }
        var reasons: [Reason] = []
        for i in 0...window {
            let s = UInt64(4 + i)
            reasons += Self.reasons(p.a.receive(p.envelope(.delta, sequence: s, base: s - 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b))
        }
        #expect(reasons == [.tooFarAhead], "the keyframe and \(window) deltas are held, the next refused")
        var neighbours = p.settings.neighbours
        neighbours[p.b]!.declaredSamples = 10
        _ = p.a.updateNeighbours(neighbours)
        _ = p.a.start()
        // The last keyframe replaced the two before it, and the held deltas, based on it, were
        // applied in order once round 1 began.
        #expect(p.a.neighbourStates[p.b]!.version == UInt64(3 + window))
    }

    /// A lie told consistently — the same count in the statistics and in every envelope — is
    /// bounded by the sample basis: b claims 10 000 samples beside a's 10. Advertised counts give
    /// b the weight 10 000 ÷ 10 010 (it takes a over); the basis (median 10, ratio 4) counts b as
    /// 40, S′ = 50 at both ends, and b's weight is 40 ÷ 50.
    @Test func aConsistentLieIsBoundedByTheSampleBasis() throws {
        let v: [Float] = [5, -5, 5, -5]
        for bounded in [false, true] {
            var p = Pair { settings in
                settings.neighbours[peerID(1)]!.declaredSamples = 10_000
                if bounded {
                    settings.sampleBasis = SampleBasis(
                        declared: [peerID(0): 10, peerID(1): 10_000], pins: [:], ratio: 4, graph: [peerID(0): [peerID(1)], peerID(1): [peerID(0)]]
                    )
                }
            }
            #expect(Self.reasons(p.a.receive(p.envelope(sequence: 1, round: 0, samples: 10_000, neighbourhood: 10_010, delta: p.lossless(v)), from: p.b)).isEmpty)
            _ = p.a.start()
            let trained = p.a.publicCopy  // x after round 1's training, sealed losslessly
            let directives = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, samples: 10_000, neighbourhood: 10_010, delta: p.lossless([0, 0, 0, 0])), from: p.b)
            let report = try #require(Self.report(directives))
            let expected = bounded ? 40.0 / 50 : 10_000.0 / 10_010
            for i in v.indices {
                let weight = Double(report.parameters[i] - trained[i]) / Double(v[i] - trained[i])
                #expect(abs(weight - expected) < 1e-5, "bounded \(bounded): b's weight \(weight), expected \(expected)")
            }
        }
    }

    // MARK: 1. No arithmetic on outside numbers traps

    /// Sample count 2⁶³ used to overflow S_i at the next round (a trap, and a crash loop);
    /// now such counts are refused at decode, the bounds themselves are accepted, and the
    /// rounds that follow compute S_i without overflow.
    @Test func hugeCountsAndRoundsAreOutOfRangeAndNothingTraps() throws {
        var p = Pair()
        p.startWithKeyframe()
        let values = p.lossless([1, 1, 1, 1])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 2, round: 1, samples: 1 << 63, delta: values), from: p.b)) == [.outOfRange])
        // The same reason again this round: counted (below), not logged again.
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 3, round: 1, neighbourhood: UInt64.max, delta: values), from: p.b)).isEmpty)
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 4, round: 1 << 40, delta: values), from: p.b)).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.version == 1)
        #expect(p.a.neighbourStates[p.b]!.sampleCount == 10, "nothing refused changed b's state")
        // At the bounds: accepted, and the next rounds' sums stay exact.
        let atBounds = p.a.receive(
            p.envelope(sequence: 5, round: 1, samples: DeltaEnvelope.maximumSampleCount, neighbourhood: DeltaEnvelope.maximumNeighbourhoodSampleCount, delta: values),
            from: p.b
        )
        #expect(Self.reasons(atBounds).isEmpty)
        let report = try #require(Self.report(atBounds))
        #expect(report.rejected == [.outOfRange: 3])
        #expect(p.a.round == 2)
        #expect(p.a.neighbourStates[p.b]!.sampleCount == 1 << 40)
        #expect(Self.sendsEnvelope(atBounds), "round 2 began and sent its delta")
    }

    // MARK: 2. Results are checked, not only inputs

    /// int8 with scale 3·10³⁸ and q = 127 decodes to +∞: rejected as nonFinite, copy unchanged.
    @Test func int8DeltaThatDecodesToInfinityIsNonFinite() throws {
        var p = Pair(codec: .int8(chunk: 4))
        p.startWithKeyframe()
        var raw = ByteWriter(capacity: 8)
        raw.write(littleEndian: Float(3e38).bitPattern)
        for _ in 0..<4 { raw.write(127) }
        let overflow = EncodedDelta(codec: .int8(chunk: 4), parameterCount: 4, rawLength: 8, payload: ZstdOneShot.compress(raw.bytes))
        let directives = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: overflow), from: p.b)
        #expect(Self.reasons(directives) == [.nonFinite])
        #expect(p.a.neighbourStates[p.b]!.copy == [1, 2, 3, 4])
        #expect(p.a.neighbourStates[p.b]!.version == 1)
    }

    /// Two lossless deltas of 3·10³⁸ are each finite, but copy + delta is not: the second is
    /// rejected as nonFiniteResult before anything changes, and the right delta still applies.
    @Test func deltaWhoseSumOverflowsTheCopyIsRejectedAndChangesNothing() throws {
        var p = Pair()
        p.startWithKeyframe([1e38, 1e38, -1e38, 0])
        let bad = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([3e38, 3e38, 3e38, 3e38])), from: p.b)
        #expect(Self.reasons(bad) == [.nonFiniteResult])
        #expect(p.a.neighbourStates[p.b]!.copy == [1e38, 1e38, -1e38, 0])
        #expect(p.a.neighbourStates[p.b]!.version == 1)
        #expect(p.a.round == 1, "a rejected delta does not complete the round")
        // The same sequence, now a sound delta: admitted (the rejection recorded nothing).
        let good = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([1e38, -1e38, 1e38, 5])), from: p.b)
        #expect(Self.reasons(good).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.copy == [2e38, 0, 0, 5])
        #expect(p.a.neighbourStates[p.b]!.version == 2)
        #expect(p.a.round == 2)
        #expect(p.a.parameters.allSatisfy { $0.isFinite })
    }

    /// A consensus step that would overflow (x̂_b − x̂_a = +∞) is refused: x keeps its value,
    /// the refusal is an event, and the next round's delta is still sent.
    @Test func consensusStepThatWouldMakeTheModelNonFiniteIsRefused() throws {
        var p = Pair(initial: [-3e38, -3e38, -3e38, -3e38], learningRate: 0)
        p.startWithKeyframe([3e38, 3e38, 3e38, 3e38])
        let before = p.a.parameters
        let directives = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(directives.contains { if case .event(.rejected(let from, .nonFiniteModel, _)) = $0 { from == peerID(0) } else { false } })
        #expect(p.a.parameters == before)
        #expect(p.a.round == 2)
        #expect(Self.sendsEnvelope(directives), "round 2's delta still goes out")
        #expect(try #require(Self.report(directives)).rejected == [.nonFiniteModel: 1])
    }

    /// Training that yields NaN is refused: the model stays at its value before the step and
    /// the round's envelope is still sent (the peer never goes silent).
    @Test func trainingStepThatGivesNaNIsRefusedAndThePeerKeepsSending() throws {
        struct PoisonedLearner: LocalLearner {
            var sampleCount = 10
            mutating func train(_ parameters: inout [Float], round: Int) -> Double {
                for i in parameters.indices { parameters[i] = round == 2 ? .nan : parameters[i] * 0.5 }
                return 1
            }
        }
        let peers = makePeers(graph: Graphs.full(2), sizes: [10, 10], dimension: 4, rounds: 5, learningRate: 0.1)
        var a = GossipInstance(settings: peers[0].settings, key: peers[0].key, learner: PoisonedLearner(), initialParameters: [8, 8, 8, 8], clock: { .zero })
        let p = Pair()
        _ = a.receive(p.envelope(sequence: 1, round: 0, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        _ = a.start()
        // Round 1: x = 4 after training, x̂_a = 4; the consensus step with b's copy (0) moves x to 2.
        let directives = a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(a.round == 2)
        #expect(a.parameters == [2, 2, 2, 2], "round 2's NaN step was refused; x is the value before it")
        #expect(directives.contains { if case .event(.rejected(_, .nonFiniteModel, _)) = $0 { true } else { false } })
        #expect(Self.sendsEnvelope(directives))
        #expect(a.publicCopy == [2, 2, 2, 2], "x̂ moved by the delta actually sent")
    }

    // MARK: 3. Only the plan's codec; keyframes only lossless

    @Test func envelopesInAnotherCodecThanThePlansAreRejected() throws {
        var p = Pair(codec: .int8(chunk: 4))
        let int8Keyframe = try DeltaEncoder(codec: .int8(chunk: 4)).encode([1, 2, 3, 4])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 1, round: 0, delta: int8Keyframe), from: p.b)) == [.wrongCodec])
        p.startWithKeyframe()
        #expect(p.a.neighbourStates[p.b]!.copy == [1, 2, 3, 4], "a lossless keyframe is accepted")
        let losslessDelta = p.lossless([1, 1, 1, 1])
        #expect(Self.reasons(p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: losslessDelta), from: p.b)) == [.wrongCodec])
        let otherChunk = try DeltaEncoder(codec: .int8(chunk: 2)).encode([1, 1, 1, 1])
        #expect(Self.reasons(p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: otherChunk), from: p.b)).isEmpty, "counted, not reported twice")
        #expect(p.a.neighbourStates[p.b]!.version == 1)
        let plansCodec = try DeltaEncoder(codec: .int8(chunk: 4)).encode([1, 1, 1, 1])
        let accepted = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: plansCodec), from: p.b)
        #expect(Self.reasons(accepted).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.version == 2)
        #expect(try #require(Self.report(accepted)).rejected == [.wrongCodec: 2])
    }

    // MARK: 4. Far-future envelopes

    /// Synchronous mode: nothing more than the held window ahead, keyframes included; a
    /// keyframe within the window replaces the copy but does not make b ready for this round.
    @Test func farFutureEnvelopesAreRejectedAndAKeyframeBuysAtMostTheWindow() throws {
        var p = Pair(rounds: 100)
        p.startWithKeyframe()
        #expect(p.a.round == 1)
        let window = p.settings.maxBufferedPerNeighbour
        let values = p.lossless([5, 5, 5, 5])
        // A delta beyond the window is refused; a keyframe beyond the plan too.
        #expect(Self.reasons(p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: UInt64(1 + window + 1), delta: values), from: p.b)) == [.tooFarAhead])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 4, round: 1 << 40, delta: values), from: p.b)) == [.outOfRange])
        #expect(p.a.round == 1)
        // A keyframe of round 1 + window says b is there: rounds 1 … 1 + window need nothing
        // more from b, and complete at once; round 2 + window waits for b again.
        let ahead = p.a.receive(p.envelope(sequence: 3, round: UInt64(1 + window), delta: values), from: p.b)
        #expect(Self.reasons(ahead).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.copy == [5, 5, 5, 5])
        let reports = ahead.compactMap { if case .roundCompleted(let r) = $0 { r.round } else { nil } }
        #expect(reports == Array(1...(1 + window)))
        #expect(p.a.round == 2 + window)
        #expect(p.a.neighbourStates[p.b]!.deliveredRound == 1 + window)
        // At its deadline, that round reports b as missing and one round stale.
        let deadline = p.a.deadlinePassed(round: 2 + window)
        #expect(deadline.contains { if case .event(.deadlineMissed(let r, let missing)) = $0 { r == 2 + window && missing == [p.b] } else { false } })
        #expect(try #require(Self.report(deadline)).staleness[p.b] == 1)
    }

    /// A keyframe far beyond the window, from every neighbour (a peer restarted after a long
    /// outage): the peer rejoins at the neighbours' round from their copies, instead of paying a
    /// deadline per round; the keyframe never credits more than the window otherwise.
    @Test func aPeerFarBehindEveryNeighbourRejoinsAtTheirRound() throws {
        var p = Pair(rounds: 100)
        p.startWithKeyframe()
        #expect(p.a.round == 1)
        let out = p.a.receive(p.envelope(sequence: 5, round: 40, delta: p.lossless([7, 7, 7, 7])), from: p.b)
        #expect(Self.reasons(out).isEmpty)
        #expect(Self.sendsEnvelope(out), "it sends its round-40 envelope at once")
        // Round 40 completes at once (b is there); the model restarted from b's copy (the only
        // neighbour) — all 7s — not from its own (1…4 before).
        let report = try #require(Self.report(out))
        #expect(report.round == 40)
        #expect(p.a.round == 41)
        #expect(report.parameters.allSatisfy { $0 > 5 }, "\(report.parameters)")
    }

    /// A hospital added to the file before it starts holds no one up: the new neighbour is left
    /// out of the barrier (and announced once) until its first session; then rounds wait for it.
    @Test func aNeighbourAddedByAReloadHoldsNoRoundUntilItsFirstSession() throws {
        var p = Pair(rounds: 100)
        p.startWithKeyframe()
        let c = peerID(2)
        var neighbours = p.settings.neighbours
        neighbours[c] = Neighbour(publicKey: Ed25519.PrivateKey().publicKey, weight: 0.3)
        let reload = p.a.updateNeighbours(neighbours)
        #expect(reload.contains { if case .event(.awaitingFirstSession(let n)) = $0 { n == c } else { false } })
        // b's round-1 delta alone completes round 1.
        let one = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(Self.report(one)?.round == 1)
        #expect(p.a.round == 2)
        // c connects: from now on rounds wait for it, and its absence is a deadline miss.
        _ = p.a.sessionOpened(with: c)
        let two = p.a.receive(p.envelope(.delta, sequence: 3, base: 2, round: 2, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(Self.report(two) == nil, "round 2 waits for c")
        let deadline = p.a.deadlinePassed(round: 2)
        #expect(deadline.contains { if case .event(.deadlineMissed(2, let missing)) = $0 { missing == [c] } else { false } })
    }

    /// A joining peer (round 0) accepts a keyframe of any round of the plan, not beyond.
    @Test func aJoiningPeerAcceptsKeyframesOnlyWithinThePlan() throws {
        var p = Pair(rounds: 20)
        let values = p.lossless([5, 5, 5, 5])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 1, round: 21, delta: values), from: p.b)) == [.outOfRange])
        #expect(Self.reasons(p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 9, delta: values), from: p.b)) == [.tooFarAhead])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 3, round: 15, delta: values), from: p.b)).isEmpty)
        _ = p.a.start()
        #expect(p.a.round == 16, "the joiner adopts round 15, which b's keyframe of round 15 completes at once")
        #expect(p.a.neighbourStates[p.b]!.deliveredRound == 15)
    }

    /// Asynchronous mode: peers run ahead legitimately, but not beyond the plan.
    @Test func asynchronousModeAcceptsRoundsAheadButNotBeyondThePlan() throws {
        var p = Pair(rounds: 20, synchrony: .asynchronous)
        p.startWithKeyframe()
        let values = p.lossless([5, 5, 5, 5])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 2, round: 21, delta: values), from: p.b)) == [.outOfRange])
        #expect(Self.reasons(p.a.receive(p.envelope(sequence: 3, round: 18, delta: values), from: p.b)).isEmpty)
        #expect(p.a.neighbourStates[p.b]!.round == 18)
    }

    // MARK: 5. Budgets

    @Test func oneKeyframeAnswerPerNeighbourPerRound() throws {
        var p = Pair()
        p.startWithKeyframe()
        let request = GossipMessage.keyframeRequest(heldVersion: 0).encoded()
        #expect(Self.sendsEnvelope(p.a.receive(request, from: p.b)))
        let second = p.a.receive(request, from: p.b)
        #expect(!Self.sendsEnvelope(second), "no second answer this round")
        #expect(Self.reasons(second) == [.keyframeBudget])
        #expect(Self.reasons(p.a.receive(request, from: p.b)).isEmpty, "counted, not reported again")
        let done = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(try #require(Self.report(done)).rejected == [.keyframeBudget: 2])
        #expect(Self.sendsEnvelope(p.a.receive(request, from: p.b)), "a new round, a new answer")
    }

    @Test func exceedingTheRejectionBudgetAsksForOneDisconnectPerRound() throws {
        var p = Pair { $0.rejectionBudgetPerRound = 64 }
        p.startWithKeyframe()
        func disconnects(_ directives: [GossipDirective]) -> [Reason] {
            directives.compactMap { if case .disconnect(let peer, let reason) = $0, peer == peerID(1) { reason } else { nil } }
        }
        var seen: [Reason] = []
        for _ in 0..<64 { seen += disconnects(p.a.receive([9], from: p.b)) }
        #expect(seen.isEmpty, "64 rejections are within the budget")
        #expect(disconnects(p.a.receive([9], from: p.b)) == [.rejectionBudget])
        for _ in 0..<200 { seen += disconnects(p.a.receive([9], from: p.b)) }
        #expect(seen.isEmpty, "once per round")
        let done = p.a.receive(p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0])), from: p.b)
        #expect(try #require(Self.report(done)).rejected == [.badMessage: 265])
        for _ in 0..<65 { seen += disconnects(p.a.receive([9], from: p.b)) }
        #expect(seen == [.rejectionBudget], "the budget starts over in round 2")
    }

    // MARK: 6. Logs that cannot be flooded

    /// 100 000 bad messages in one round, four reasons: four event lines and one disconnect;
    /// the round report counts all of them.
    @Test func aFloodOfBadMessagesGivesOneEventPerReasonAndExactCounts() throws {
        var p = Pair()
        p.startWithKeyframe()
        let good = p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0]))
        var badSignature = good
        badSignature[badSignature.count - 1] ^= 0x01
        let otherPlan = p.envelope(.delta, sequence: 2, base: 1, round: 1, delta: p.lossless([0, 0, 0, 0]), plan: BLAKE2b.hash256([7]))
        let truncated = Array(good.prefix(40))
        let unknownType: [UInt8] = [9, 9, 9]
        var events = 0
        var disconnects = 0
        for i in 0..<100_000 {
            let bytes = [badSignature, otherPlan, truncated, unknownType][i % 4]
            for directive in p.a.receive(bytes, from: p.b) {
                switch directive {
                case .event(.rejected): events += 1
                case .disconnect: disconnects += 1
                default: break
                }
            }
        }
        #expect(events == 4)
        #expect(disconnects == 1)
        #expect(p.a.round == 1)
        let done = p.a.receive(good, from: p.b)
        let report = try #require(Self.report(done))
        #expect(report.rejected == [.badSignature: 25_000, .planMismatch: 25_000, .truncated: 25_000, .badMessage: 25_000])
        #expect(report.accepted == 1)
    }

    // MARK: 7. Persist before send

    /// Three peers driven by hand: in every directive list, a `.persist` holding at least the
    /// version precedes each delta of a new version, no keyframe reveals a version beyond the
    /// persisted one (but the first, x₀), and the last round ends with a persist before `.finished`.
    @Test func persistPrecedesEverySendOfANewVersion() throws {
        let peers = makePeers(graph: Graphs.full(3), sizes: [10, 20, 30], dimension: 5, rounds: 6, learningRate: 0.1, codec: .int8(chunk: 2))
        var instances: [PeerID: GossipInstance<QuadraticLearner>] = [:]
        var keys: [PeerID: Ed25519.PublicKey] = [:]
        for peer in peers {
            instances[peer.settings.me] = GossipInstance(settings: peer.settings, key: peer.key, learner: peer.learner, initialParameters: peer.initialParameters, clock: { .zero })
            keys[peer.settings.me] = peer.key.publicKey
        }
        let verifier = EnvelopeVerifier(planHash: testPlanHash, parameterCount: 5)
        var queue: [(from: PeerID, to: PeerID, bytes: [UInt8])] = []
        var persisted: [PeerID: UInt64] = [:]
        var lastSnapshot: [PeerID: GossipSnapshot] = [:]
        var deltasChecked = 0
        func carryOut(_ directives: [GossipDirective], of peer: PeerID) {
            var persistedHere: UInt64?
            for (index, directive) in directives.enumerated() {
                switch directive {
                case .persist(let snapshot):
                    persistedHere = snapshot.version
                    persisted[peer] = snapshot.version
                    lastSnapshot[peer] = snapshot
                case .send(let to, let bytes):
                    if bytes.first == 1, let envelope = try? verifier.verify(Array(bytes.dropFirst()), publicKey: { keys[$0] }) {
                        if envelope.header.kind == .delta {
                            deltasChecked += 1
                            #expect((persistedHere ?? 0) >= envelope.header.sequence, "\(peer): delta \(envelope.header.sequence) sent before its persist")
                        } else {
                            #expect(envelope.header.sequence == 1 || envelope.header.sequence <= persisted[peer] ?? 0)
                        }
                    }
                    queue.append((peer, to, bytes))
                case .finished:
                    #expect(index > 0 && { if case .persist(let s) = directives[index - 1] { s.round == 7 } else { false } }())
                default:
                    break
                }
            }
        }
        let order = instances.keys.sorted()
        for peer in order {
            for other in order where other != peer { carryOut(instances[peer]!.sessionOpened(with: other), of: peer) }
        }
        for peer in order { carryOut(instances[peer]!.start(), of: peer) }
        var steps = 0
        while !queue.isEmpty, steps < 10_000 {
            let (from, to, bytes) = queue.removeFirst()
            carryOut(instances[to]!.receive(bytes, from: from), of: to)
            steps += 1
        }
        #expect(order.allSatisfy { instances[$0]!.isFinished })
        #expect(deltasChecked == 3 * 2 * 6, "every round's delta to every neighbour was checked")
        // The last persisted snapshot restores, and the restored version is above any sent.
        var restored = GossipInstance(settings: peers[0].settings, key: peers[0].key, learner: peers[0].learner, initialParameters: peers[0].initialParameters, clock: { .zero })
        try restored.restore(try #require(lastSnapshot[order[0]]))
        #expect(restored.version > instances[order[0]]!.version)
        #expect(restored.isFinished)
    }

    // MARK: 8. Hostile snapshots

    @Test(arguments: [
        ("negative round", Reason.outOfRange), ("round beyond rounds + 1", .outOfRange), ("version near 2^64", .outOfRange),
        ("sample count 2^63", .outOfRange), ("neighbourhood 2^63", .outOfRange), ("neighbour round", .outOfRange),
        ("model size", .wrongParameterCount), ("public copy size", .wrongParameterCount), ("copy size", .wrongParameterCount),
        ("NaN model", .nonFinite), ("infinite copy", .nonFinite),
    ])
    func hostileSnapshotsAreRefusedWithoutChangingTheInstance(_ field: String, _ reason: Reason) throws {
        var p = Pair(rounds: 6)
        p.startWithKeyframe()
        var snapshot = p.a.snapshot()
        switch field {
        case "negative round": snapshot.round = -1
        case "round beyond rounds + 1": snapshot.round = 8
        case "version near 2^64": snapshot.version = UInt64.max - 1
        case "sample count 2^63": snapshot.neighbours[p.b]!.sampleCount = Int.max
        case "neighbourhood 2^63": snapshot.neighbours[p.b]!.neighbourhoodSampleCount = Int.max
        case "neighbour round": snapshot.neighbours[p.b]!.round = Int.max
        case "model size": snapshot.parameters = [1, 2, 3]
        case "public copy size": snapshot.publicCopy += [1]
        case "copy size": snapshot.neighbours[p.b]!.copy = [1]
        case "NaN model": snapshot.parameters[2] = .nan
        case "infinite copy": snapshot.neighbours[p.b]!.copy![0] = .infinity
        default: Issue.record("unknown case \(field)")
        }
        let before = p.a.snapshot()
        #expect(throws: GossipSnapshot.Error.self) { try p.a.restore(snapshot) }
        do {
            try p.a.restore(snapshot)
        } catch {
            #expect(error.reason == reason, "\(field): \(error)")
        }
        #expect(p.a.snapshot() == before, "a refused snapshot changes nothing")
        var fresh = Pair(rounds: 6)
        try fresh.a.restore(before)
        #expect(fresh.a.round == 1, "the unmodified snapshot restores")
    }
}

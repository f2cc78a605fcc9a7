public import PlexusCore
import PlexusCodec

/// The sample counts the mixing weights use — bounded, not believed.
///
/// Sample weighting gives neighbour j the weight p_ij = n_j ÷ max(S_i, S_j) (see
/// ``MixingWeights``), so a neighbour that claims a large n_j takes over its neighbours' models.
/// Three defences, in order:
///
/// 1. An envelope must advertise the count its origin signed in its statistics message
///    (`sampleCountMismatch` otherwise): a lie must be told before training, to everyone.
/// 2. A topology pin (`samples = N` or `max_samples = N`, ``SamplePin``) replaces the signed
///    count by the consortium's own knowledge.
/// 3. The symmetric bound: a count above `ratio` × the median of the network's counts (after
///    the pins) counts as that bound.
///
/// Every peer computes the basis from the same inputs — every site's signed count (the
/// statistics round gives each peer all of them), the topology file (pins and graph) and the
/// plan (`max_sample_ratio`) — so both ends of a link use the same bounded counts n′ and the
/// same neighbourhood sums S′_k = n′_k + Σ_{j ~ k} n′_j, computed here from the graph rather than
/// taken from the envelopes. Then π′_i p_ij = n′_i n′_j ÷ (N′ max(S′_i, S′_j)) is symmetric: the
/// weights stay reversible, and consensus converges to the n′-weighted mean. An honest network
/// without pins whose counts are all at most the bound has n′ = n: the exact sample-weighted
/// mean, as before.
///
/// What a lie can still buy: with the median m and the ratio ρ (4 by default), a liar's weight
/// is at most that of an honest site of ρ·m rows; a lie of more than half of the sites moves the
/// median itself, which no count-based rule can prevent — pins can.
public struct SampleBasis: Sendable, Hashable {
    /// A peer whose count was changed on the way: the count it signed, the count used, and why.
    public struct Adjustment: Sendable, Hashable {
        public enum Cause: Sendable, Hashable {
            /// The topology file pins the count.
            case pin(SamplePin)
            /// The symmetric bound: `ratio` × the median count `median`.
            case bound(ratio: Double, median: Int)
        }

        public var peer: PeerID
        public var declared: Int
        public var used: Int
        public var cause: Cause
        /// Whether the signed count contradicts the topology file (a pin that does not hold):
        /// an operator should look at that site.
        public var contradictsPin: Bool

        public init(peer: PeerID, declared: Int, used: Int, cause: Cause, contradictsPin: Bool) {
            self.peer = peer
            self.declared = declared
            self.used = used
            self.cause = cause
            self.contradictsPin = contradictsPin
        }
    }

    /// n′_k for every peer with a signed count.
    public private(set) var counts: [PeerID: Int]
    /// S′_k = n′_k + Σ_{j ~ k} n′_j for every peer with a signed count (neighbours without one
    /// count 0), saturating at ``DeltaEnvelope/maximumNeighbourhoodSampleCount``.
    public private(set) var neighbourhoods: [PeerID: Int]
    /// ρ × the median count, when the bound is on.
    public private(set) var bound: Int?
    /// The median of the counts after the pins (the lower of the two middle ones for an even
    /// number of sites).
    public private(set) var median: Int
    /// Every peer whose count was changed, in id order.
    public private(set) var adjustments: [Adjustment]

    /// - Parameters:
    ///   - declared: each site's signed count (from its statistics message).
    ///   - pins: the topology file's pins.
    ///   - ratio: `max_sample_ratio` (0 = no bound; otherwise ≥ 1).
    ///   - graph: each peer's neighbours.
    public init(declared: [PeerID: Int], pins: [PeerID: SamplePin], ratio: Double, graph: [PeerID: Set<PeerID>]) {
        let cap = Int(DeltaEnvelope.maximumNeighbourhoodSampleCount)
        var counts: [PeerID: Int] = [:]
        var adjustments: [PeerID: Adjustment] = [:]
        for (peer, signed) in declared {
            // Signed counts were range-checked when their message was accepted; clamp anyway.
            let n = min(max(signed, 0), SamplePin.largest)
            if let pin = pins[peer] {
                let used = pin.applied(to: n)
                counts[peer] = used
                if used != n || pin.isViolated(by: n) {
                    adjustments[peer] = Adjustment(peer: peer, declared: n, used: used, cause: .pin(pin), contradictsPin: pin.isViolated(by: n))
                }
            } else {
                counts[peer] = n
            }
        }
        let sorted = counts.values.sorted()
        median = sorted.isEmpty ? 0 : sorted[(sorted.count - 1) / 2]
        if ratio > 0, !sorted.isEmpty {
            // ρ ≤ 10⁶ and the median ≤ 2⁴⁰: the product is far inside Double's exact range and Int's.
            let limit = max(1, Int((ratio * Double(median)).rounded(.down)))
            bound = limit
            for (peer, n) in counts where n > limit {
                counts[peer] = limit
                adjustments[peer] = Adjustment(
                    peer: peer, declared: adjustments[peer]?.declared ?? n, used: limit,
                    cause: .bound(ratio: ratio, median: median), contradictsPin: adjustments[peer]?.contradictsPin ?? false
                )
            }
        } else {
            bound = nil
        }
        var neighbourhoods: [PeerID: Int] = [:]
        for (peer, n) in counts {
            var total = n
            for j in graph[peer] ?? [] { total = min(total + (counts[j] ?? 0), cap) }  // each ≤ 2⁴⁰: no overflow
            neighbourhoods[peer] = total
        }
        self.counts = counts
        self.neighbourhoods = neighbourhoods
        self.adjustments = adjustments.values.sorted { $0.peer < $1.peer }
    }
}

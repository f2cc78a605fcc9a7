/// What a topology file says about one peer's sample count — the strong defence against a
/// neighbour that lies about its size to take over its neighbours' mixing weights.
///
/// The mixing weights of sample weighting (PlexusGossip's `MixingWeights`) give a site weight in
/// proportion to its count, and a site's count is what it signs in its statistics message. A pin
/// is the consortium's own knowledge of the count (from the data-sharing agreement, say): the
/// weights use the pinned value whatever the site signs, and a signed count that contradicts the
/// pin is a warning every neighbour's operator sees.
public enum SamplePin: Hashable, Sendable {
    /// `samples = N`: the site has exactly N training rows.
    case exactly(Int)
    /// `max_samples = N`: the site has at most N training rows.
    case atMost(Int)

    /// The largest count a pin allows (both forms): a signed count above it counts as this.
    public var maximum: Int {
        switch self {
        case .exactly(let n), .atMost(let n): n
        }
    }

    /// The count the mixing weights use for a site that signed `declared`.
    public func applied(to declared: Int) -> Int {
        switch self {
        case .exactly(let n): n
        case .atMost(let n): min(declared, n)
        }
    }

    /// Whether `declared` contradicts the pin.
    public func isViolated(by declared: Int) -> Bool {
        switch self {
        case .exactly(let n): declared != n
        case .atMost(let n): declared > n
        }
    }

    /// As the topology file writes it: `samples = 500` or `max_samples = 500`.
    public var description: String {
        switch self {
        case .exactly(let n): "samples = \(n)"
        case .atMost(let n): "max_samples = \(n)"
        }
    }

    /// The largest count a pin may name: the largest count an envelope may carry (2⁴⁰).
    public static let largest = 1 << 40
}

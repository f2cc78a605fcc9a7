public import PlexusCore

/// One neighbour as a ``PublishTransform`` sees it: its topology weight and the public copy of
/// its model that this peer holds.
public struct PublishNeighbour: Sendable {
    public var peer: PeerID
    /// The base mixing weight of the link (``Neighbour/weight``: Metropolis–Hastings or the
    /// topology's explicit weight), before sample weighting.
    public var weight: Double
    /// x̂_j as this peer holds it.
    public var copy: [Float]

    public init(peer: PeerID, weight: Double, copy: [Float]) {
        self.peer = peer
        self.weight = weight
        self.copy = copy
    }
}

/// What a peer is about to publish in a round, for a ``PublishTransform``.
public struct PublishContext: Sendable {
    /// The round whose envelope is being sealed (1…rounds).
    public var round: Int
    /// x: this peer's model after the round's local training — what an honest peer publishes.
    public var model: [Float]
    /// x̂_self: the copy of x the neighbours hold now, the base the update applies to.
    public var publicCopy: [Float]
    /// The neighbours whose copy this peer holds, in peer-id order.
    public var neighbours: [PublishNeighbour]

    public init(round: Int, model: [Float], publicCopy: [Float], neighbours: [PublishNeighbour]) {
        self.round = round
        self.model = model
        self.publicCopy = publicCopy
        self.neighbours = neighbours
    }
}

/// A step between the model a peer computed and the envelope it seals: the publish seam.
///
/// Each round the instance forms the update u = x − x̂_self, hands it to the transform to rewrite
/// in place, then compresses, signs and sends what the transform left (q = C(u′)), and moves
/// x̂_self by q as the receivers will — so the envelope is real, validly signed and applies to the
/// copy the neighbours hold. The published model is x̂_self + u′. The instance's own model x is
/// not changed; its consensus step uses x̂_self, the copy it published (CHOCO's rule), so a
/// transform that publishes something other than x also moves this peer's own next model.
///
/// Uses: differential-privacy clipping and noise (issue 15), and the attack simulator's
/// Byzantine peers (PlexusSimulator's `Attack`). An instance without a transform — every real
/// node today — runs exactly the arithmetic it ran before the seam existed.
///
/// Contract:
/// - The transform MUST be deterministic given its own state: randomness comes only from a
///   seeded generator it was given (never global randomness), so simulations repeat bit for bit.
/// - It MUST leave `update` at its length; it MAY leave non-finite values, which the instance
///   treats as it treats any non-finite delta (`nonFiniteModel`: x falls back to x̂_self and the
///   round sends an empty delta).
/// - It is called once per round, before the round's delta is sealed; keyframes (a whole public
///   copy, sent to a new session) are not transformed: they carry x̂_self, which is already what
///   the transform published.
public protocol PublishTransform: Sendable {
    /// Rewrites `update` (u = x − x̂_self on entry, of the model's length) into the update to publish.
    mutating func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext)
}

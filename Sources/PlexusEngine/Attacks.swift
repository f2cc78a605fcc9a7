import Foundation
import PlexusCodec
public import PlexusCore
public import PlexusGossip
public import PlexusLearning

/// What a Byzantine peer of the attack simulator does (`--byzantine PEER:ATTACK`).
///
/// The attacker runs the real ``GossipInstance`` with its real key: its envelopes are real and
/// validly signed, they apply to the copy its neighbours hold, and its neighbours verify them
/// as they verify anyone's. What it rewrites is what it publishes — through the instance's
/// publish seam (``PublishTransform``), or, for the two attacks that are not a rewrite of the
/// update, where the value comes from: the sample count it declares (`sample-lie`) and the rows
/// it trains on (`label-flip`).
///
/// With u = x − x̂ the update an honest peer would publish this round (x its model after local
/// training, x̂ the copy its neighbours hold), each attack publishes u′:
///
/// | attack | u′ | the published model x̂ + u′ |
/// | --- | --- | --- |
/// | `sign-flip` | −u | x̂ − u |
/// | `scale:K` | K·u | x̂ + K·u |
/// | `noise:S` | u + ξ, ξ ~ N(0, S²) per coordinate (seeded) | x + ξ |
/// | `alie` | m − z·s − x̂ | m − z·s |
/// | `ipm[:ε]` | −ε·m − x̂ | −ε·m |
/// | `dissensus[:ε]` | −ε·Σⱼ wⱼ(x̂ⱼ − x) + u | x − ε·Σⱼ wⱼ(x̂ⱼ − x) |
/// | `stale` | x₁ − x̂ | x₁, its round-1 model, forever |
///
/// where m and s are the coordinate-wise mean and standard deviation of the honest neighbours'
/// public copies the attacker holds (its fellow attackers' left out: attackers collude), and
/// wⱼ its topology mixing weights. Because the attacker's own consensus step uses the copy it
/// published (CHOCO's rule), `sign-flip` and `scale:K` compound: each round's update is taken
/// from the copy the last one made, so the published model runs away geometrically (until it
/// would be non-finite; then the instance's own guard sends empty deltas). That is what a
/// node that negates or scales its deltas does over the real protocol.
///
/// - `alie` (A Little Is Enough, Baruch et al. 2019): z = Φ⁻¹((n − s) ÷ n) with
///   s = ⌊n ÷ 2 + 1⌋ − f, n the peers of the network and f the attackers — the largest shift
///   that keeps the attackers inside the spread of the honest values.
/// - `ipm` (inner-product manipulation, Xie, Koyejo & Gupta 2020): ε defaults to 0.1, the
///   small-ε setting used against robust rules (a model a tenth the size of the honest mean,
///   pointing the other way, so its inner product with the mean is negative).
/// - `dissensus` (He, Karimireddy & Jaggi 2022): the paper sends each honest neighbour i its own
///   xᵢ − εᵢ Σⱼ Wᵢⱼ(xⱼ − xᵢ); a Plexus peer has one public copy that all its neighbours share,
///   so the broadcast form pushes its own copy away from where consensus would pull it.
///   ε defaults to 1 (as far away as the pull, the other way).
/// - `sample-lie:N`: advertises N samples in every envelope and in its signed statistics (the
///   pooled standardization counts it N times; its neighbours' pins of its declared count are
///   N, so the envelopes are consistent and accepted). Its model is trained honestly.
/// - `label-flip`: the honest protocol on inverted targets — the broken-site case (a label
///   column coded the other way round). Classification: label y → 1 − y. Survival (Cox,
///   DeepSurv): the event indicator is inverted (events read as censored and censored as
///   events), the survival form of a column exported the other way round; times are kept.
public enum Attack: Sendable, Hashable, CustomStringConvertible {
    case signFlip
    case scale(Double)
    case noise(Double)
    case alie
    case ipm(Double)
    case dissensus(Double)
    case sampleLie(Int)
    case stale
    case labelFlip
    /// Not an attack but the reference for them: the peer sends nothing at all, so its
    /// neighbours never mix its copy and its rows are lost to the network — what a perfect
    /// defence, one that left the attackers out from the first round, would leave.
    case absent

    /// The spellings `--byzantine` accepts, for help and errors.
    public static let spellings = ["sign-flip", "scale:K", "noise:S", "alie", "ipm[:EPS]", "dissensus[:EPS]", "sample-lie:N", "stale", "label-flip", "absent"]
    /// ε of `ipm` when none is given. Default: 0.1.
    public static let defaultIPMEpsilon = 0.1
    /// ε of `dissensus` when none is given. Default: 1.
    public static let defaultDissensusEpsilon = 1.0

    public init(parsing text: String) throws(ExperimentError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        let argument = parts.count == 2 ? parts[1] : nil
        func number(_ what: String, positive: Bool) throws(ExperimentError) -> Double {
            guard let argument, let value = Double(argument), value.isFinite, positive ? value > 0 : value != 0 else {
                throw ExperimentError(
                    "attack '\(text)': \(name):\(what) needs a finite number \(what) \(positive ? "> 0" : "≠ 0"), got '\(argument ?? "")'"
                )
            }
            return value
        }
        func none() throws(ExperimentError) {
            guard argument == nil else { throw ExperimentError("attack '\(text)': \(name) takes no argument") }
        }
        switch name {
        case "sign-flip": try none(); self = .signFlip
        case "scale": self = .scale(try number("K", positive: false))
        case "noise": self = .noise(try number("S", positive: true))
        case "alie": try none(); self = .alie
        case "ipm": self = .ipm(argument == nil ? Self.defaultIPMEpsilon : try number("EPS", positive: true))
        case "dissensus": self = .dissensus(argument == nil ? Self.defaultDissensusEpsilon : try number("EPS", positive: true))
        case "sample-lie":
            let limit = Int(DeltaEnvelope.maximumSampleCount)
            guard let argument, let n = Int(argument), n >= 1, n <= limit else {
                throw ExperimentError("attack '\(text)': sample-lie:N needs a whole number N from 1 to \(limit), got '\(argument ?? "")'")
            }
            self = .sampleLie(n)
        case "stale": try none(); self = .stale
        case "label-flip": try none(); self = .labelFlip
        case "absent": try none(); self = .absent
        default:
            throw ExperimentError("unknown attack '\(name)'; expected one of: \(Self.spellings.joined(separator: ", "))")
        }
    }

    public var description: String {
        switch self {
        case .signFlip: "sign-flip"
        case .scale(let k): "scale:\(Self.number(k))"
        case .noise(let s): "noise:\(Self.number(s))"
        case .alie: "alie"
        case .ipm(let e): "ipm:\(Self.number(e))"
        case .dissensus(let e): "dissensus:\(Self.number(e))"
        case .sampleLie(let n): "sample-lie:\(n)"
        case .stale: "stale"
        case .labelFlip: "label-flip"
        case .absent: "absent"
        }
    }

    private static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)"
    }

    /// The publish transform of this attack, or `nil` for the two that publish honestly
    /// (`sample-lie`, `label-flip`).
    ///
    /// - Parameters:
    ///   - seed: seeds `noise` (each attacker its own stream).
    ///   - colluders: every attacker of the run; their copies are not "honest models".
    ///   - peers: n, the peers of the network (`alie`'s z).
    public func transform(seed: UInt64, colluders: Set<PeerID>, peers: Int) -> (any PublishTransform)? {
        switch self {
        case .signFlip: SignFlipAttack()
        case .scale(let k): ScaleAttack(factor: Float(k))
        case .noise(let s): NoiseAttack(deviation: s, seed: seed)
        case .alie: AlieAttack(z: Float(Self.alieZ(peers: peers, attackers: colluders.count) ?? 0), colluders: colluders)
        case .ipm(let e): IPMAttack(epsilon: Float(e), colluders: colluders)
        case .dissensus(let e): DissensusAttack(epsilon: e, colluders: colluders)
        case .stale: StaleAttack()
        case .sampleLie, .labelFlip, .absent: nil
        }
    }

    /// ALIE's z for n peers of which f attack: Φ⁻¹((n − s) ÷ n), s = ⌊n ÷ 2 + 1⌋ − f; `nil` when
    /// s ≤ 0 (more than half the network attacks: the formula does not apply).
    public static func alieZ(peers n: Int, attackers f: Int) -> Double? {
        let s = n / 2 + 1 - f
        guard n >= 1, s >= 1, s < n else { return nil }
        return inverseNormalCDF(Double(n - s) / Double(n))
    }

    /// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation, refined by one Halley step on
    /// erfc (relative error below 1e-15).
    static func inverseNormalCDF(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        var x: Double
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - low {
            let q = p - 0.5
            let r = q * q
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * log(1 - p)).squareRoot()
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }
}

/// One `--byzantine PEER:ATTACK`.
public struct ByzantinePeer: Sendable, Hashable, CustomStringConvertible {
    public var peer: PeerID
    public var attack: Attack

    public init(peer: PeerID, attack: Attack) {
        self.peer = peer
        self.attack = attack
    }

    /// Parses `PEER:ATTACK` (the peer is checked against a topology by ``validate(_:peers:)``).
    public init(parsing text: String) throws(ExperimentError) {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex, text.index(after: colon) != text.endIndex else {
            throw ExperimentError("expected PEER:ATTACK (e.g. peer-03:sign-flip), got '\(text)'")
        }
        let name = String(text[..<colon])
        guard let peer = PeerID(name) else { throw ExperimentError("'\(name)' is not a valid peer id (in '\(text)')") }
        self.peer = peer
        self.attack = try Attack(parsing: String(text[text.index(after: colon)...]))
    }

    public var description: String { "\(peer.rawValue):\(attack)" }

    /// Checks that every attacker is a peer of the network, named once, and leaves at least one
    /// honest peer.
    public static func validate(_ attackers: [ByzantinePeer], peers: [PeerID]) throws(ExperimentError) {
        var seen: Set<PeerID> = []
        for a in attackers {
            guard peers.contains(a.peer) else {
                throw ExperimentError("unknown peer '\(a.peer.rawValue)' in '\(a)'; the topology's peers are \(peers.map(\.rawValue).joined(separator: ", "))")
            }
            guard seen.insert(a.peer).inserted else { throw ExperimentError("peer '\(a.peer.rawValue)' is given more than one attack") }
        }
        guard seen.count < peers.count else { throw ExperimentError("every peer is an attacker; at least one must be honest") }
    }
}

// MARK: The transforms

/// `sign-flip`: u′ = −u (exact: negation only flips the sign bit).
struct SignFlipAttack: PublishTransform {
    func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        for i in update.indices { update[i] = -update[i] }
    }
}

/// `scale:K`: u′ = K·u (one float32 product per coordinate).
struct ScaleAttack: PublishTransform {
    var factor: Float
    func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        for i in update.indices { update[i] *= factor }
    }
}

/// `noise:S`: u′ = u + ξ, ξ ~ N(0, S²) per coordinate, from the attacker's own seeded stream.
struct NoiseAttack: PublishTransform {
    var deviation: Double
    var generator: Xoshiro256

    init(deviation: Double, seed: UInt64) {
        self.deviation = deviation
        self.generator = Xoshiro256(seed: seed, stream: "attack-noise")
    }

    mutating func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        for i in update.indices { update[i] += Float(deviation * generator.nextGaussian()) }
    }
}

/// The honest neighbours' copies (colluders left out), or `nil` when the attacker holds none.
private func honestCopies(_ context: PublishContext, colluders: Set<PeerID>) -> [[Float]]? {
    let copies = context.neighbours.filter { !colluders.contains($0.peer) }.map(\.copy)
    return copies.isEmpty ? nil : copies
}

/// Coordinate-wise mean and (population) standard deviation, in Double.
private func meanAndDeviation(_ copies: [[Float]], at i: Int) -> (mean: Double, sd: Double) {
    var mean = 0.0
    for c in copies { mean += Double(c[i]) }
    mean /= Double(copies.count)
    var v = 0.0
    for c in copies { v += (Double(c[i]) - mean) * (Double(c[i]) - mean) }
    return (mean, (v / Double(copies.count)).squareRoot())
}

/// `alie`: publishes m − z·s of the honest copies it holds (honest update while it holds none).
struct AlieAttack: PublishTransform {
    var z: Float
    var colluders: Set<PeerID>
    func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        guard let copies = honestCopies(context, colluders: colluders) else { return }
        for i in update.indices {
            let (m, s) = meanAndDeviation(copies, at: i)
            update[i] = Float(m - Double(z) * s) - context.publicCopy[i]
        }
    }
}

/// `ipm`: publishes −ε·m of the honest copies it holds (honest update while it holds none).
struct IPMAttack: PublishTransform {
    var epsilon: Float
    var colluders: Set<PeerID>
    func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        guard let copies = honestCopies(context, colluders: colluders) else { return }
        for i in update.indices {
            update[i] = -epsilon * Float(meanAndDeviation(copies, at: i).mean) - context.publicCopy[i]
        }
    }
}

/// `dissensus`: publishes x − ε·Σⱼ wⱼ(x̂ⱼ − x) over its honest neighbours.
struct DissensusAttack: PublishTransform {
    var epsilon: Double
    var colluders: Set<PeerID>
    func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        let honest = context.neighbours.filter { !colluders.contains($0.peer) }
        guard !honest.isEmpty else { return }
        for i in update.indices {
            let x = Double(context.model[i])
            var pull = 0.0
            for n in honest { pull += n.weight * (Double(n.copy[i]) - x) }
            update[i] = Float(x - epsilon * pull) - context.publicCopy[i]
        }
    }
}

/// `stale`: publishes its round-1 model in every round.
struct StaleAttack: PublishTransform {
    var first: [Float]?
    mutating func transform(update: UnsafeMutableBufferPointer<Float>, context: PublishContext) {
        guard let first else {
            first = context.model
            return
        }
        for i in update.indices { update[i] = first[i] - context.publicCopy[i] }
    }
}

// MARK: The attacks that are not transforms


extension Dataset {
    /// `label-flip`'s rows: each label y → 1 − y (classification), each event indicator e →
    /// 1 − e (survival; times kept).
    public func withTargetsInverted() -> Dataset {
        switch task {
        case .classification:
            Dataset(featureNames: featureNames, features: features, labels: labels.map { 1 - $0 }, sourceRows: sourceRows)
        case .survival:
            Dataset(featureNames: featureNames, features: features, times: times, events: events.map { 1 - $0 }, sourceRows: sourceRows)
        }
    }
}

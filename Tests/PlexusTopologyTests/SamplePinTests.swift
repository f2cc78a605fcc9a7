import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// `samples = N` / `max_samples = N` on a `[[peer]]`, and the plan's `max_sample_ratio`.
@Suite struct SamplePinTests {
    static let base = Fixtures.text("good/explicit.toml")

    /// The base file with `extra` after peer c's public key (line 32 of the result holds it).
    static func withPin(_ extra: String) -> String {
        base.replacingOccurrences(of: "public_key = \"SpZ4oTo9Q52zvK7xuWc0aoMCVWPWuIn0eR0U8NB1LTQ=\"\n", with: "public_key = \"SpZ4oTo9Q52zvK7xuWc0aoMCVWPWuIn0eR0U8NB1LTQ=\"\n" + extra)
    }

    static func line(of needle: String, in text: String) -> Int {
        text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(needle) }! + 1
    }

    @Test func pinsAreReadAndWrittenBack() throws {
        let text = Self.withPin("samples = 500\n").replacingOccurrences(of: "endpoint = \"10.0.0.4:7401\"\n", with: "endpoint = \"10.0.0.4:7401\"\nmax_samples = 2000\n")
        let topology = try Topology.parse(source: text, path: "t.toml")
        let cID = try #require(PeerID("c")), dID = try #require(PeerID("d")), aID = try #require(PeerID("a"))
        let c = try #require(topology.peer(cID))
        let d = try #require(topology.peer(dID))
        #expect(c.samples == .exactly(500))
        #expect(d.samples == .atMost(2000))
        #expect(topology.peer(aID)?.samples == nil)
        let again = try Topology.parse(source: TopologyWriter.toml(topology), path: "w.toml")
        #expect(again.peers.map(\.samples) == topology.peers.map(\.samples))
    }

    @Test func bothFormsAtOnceAreAnError() throws {
        let text = Self.withPin("samples = 500\nmax_samples = 600\n")
        let line = Self.line(of: "max_samples", in: text)
        do {
            _ = try Topology.parse(source: text, path: "t.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("t.toml:\(line):1: error: a peer takes 'samples' (its exact count) or 'max_samples' (an upper bound), not both"), "\(error.description)")
        }
    }

    @Test(arguments: [("samples = 0", "samples must be an integer from 1 to 1099511627776 (2^40), found 0"),
                      ("max_samples = 1099511627777", "max_samples must be an integer from 1 to 1099511627776 (2^40), found 1099511627777"),
                      ("samples = 12.5", "'samples' must be an integer")])
    func outOfRangePinsAreNamed(_ entry: String, _ message: String) throws {
        let text = Self.withPin(entry + "\n")
        let line = Self.line(of: entry, in: text)
        do {
            _ = try Topology.parse(source: text, path: "t.toml")
            Issue.record("expected an error for \(entry)")
        } catch {
            #expect(error.description.contains("t.toml:\(line):"), "\(error.description)")
            #expect(error.description.contains(message), "\(error.description)")
        }
    }

    @Test func theRatioIsAPlanKeyCoveredByTheHashOnlyWhenChanged() throws {
        let plain = try Topology.parse(source: Self.base, path: "t.toml")
        #expect(plain.plan.maxSampleRatio == 4)
        let same = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nmax_sample_ratio = 4.0"), path: "t.toml")
        #expect(same.planHash == plain.planHash)
        let off = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nmax_sample_ratio = 0"), path: "t.toml")
        #expect(off.plan.maxSampleRatio == 0)
        #expect(off.planHash != plain.planHash)
        let wide = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nmax_sample_ratio = 10"), path: "t.toml")
        #expect(wide.planHash != plain.planHash && wide.planHash != off.planHash)
        #expect(TopologyWriter.plan(wide.plan).contains("max_sample_ratio = 10"))
        #expect(!TopologyWriter.plan(plain.plan).contains("max_sample_ratio"))
        let text = Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nmax_sample_ratio = 0.5")
        do {
            _ = try Topology.parse(source: text, path: "t.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("t.toml:\(Self.line(of: "max_sample_ratio", in: text)):20: error: max_sample_ratio must be 0 (no bound) or from 1 to 1000000 (a multiple of the median count), found 0.5"), "\(error.description)")
        }
    }

    /// `consensus_rounds`: 0 by default and then outside the hash; any other value is hashed and
    /// written back; 0 to rounds − 1 are accepted, the rest refused at the value, compiler-style.
    @Test func consensusRoundsAreAPlanKeyCoveredByTheHashOnlyWhenSet() throws {
        let plain = try Topology.parse(source: Self.base, path: "t.toml")
        #expect(plain.plan.consensusRounds == 0 && plain.plan.rounds == 50)
        let zero = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nconsensus_rounds = 0"), path: "t.toml")
        #expect(zero.planHash == plain.planHash)
        let ten = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nconsensus_rounds = 10"), path: "t.toml")
        let most = try Topology.parse(source: Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nconsensus_rounds = 49"), path: "t.toml")
        #expect(ten.plan.consensusRounds == 10 && most.plan.consensusRounds == 49)
        #expect(ten.planHash != plain.planHash && most.planHash != ten.planHash)
        #expect(TopologyWriter.plan(ten.plan).contains("consensus_rounds = 10"))
        #expect(!TopologyWriter.plan(plain.plan).contains("consensus_rounds"))
        #expect(try Topology.parse(source: TopologyWriter.toml(ten), path: "w.toml").planHash == ten.planHash)
        for (value, message) in [
            ("50", "consensus_rounds must be from 0 to 49 (fewer than rounds = 50: at least one round trains), found 50"),
            ("-1", "consensus_rounds must be from 0 to 49 (fewer than rounds = 50: at least one round trains), found -1"),
        ] {
            let text = Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nconsensus_rounds = \(value)")
            do {
                _ = try Topology.parse(source: text, path: "t.toml")
                Issue.record("expected an error for \(value)")
            } catch {
                #expect(error.description.contains("t.toml:\(Self.line(of: "consensus_rounds", in: text)):20: error: \(message)"), "\(error.description)")
            }
        }
    }

    /// `clip_anchor`: 0 by default and then outside the hash; (0, 1000] accepted, hashed and written
    /// back; other values refused at the value; with a rule other than `clipped`, a warning there.
    @Test func clipAnchorIsAPlanKeyCoveredByTheHashOnlyWhenSet() throws {
        let plain = try Topology.parse(source: Self.base, path: "t.toml")
        #expect(plain.plan.clipAnchor == 0)
        let clipped = Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\naggregation = \"clipped\"")
        let off = try Topology.parse(source: clipped, path: "t.toml")
        let two = try Topology.parse(source: clipped.replacingOccurrences(of: "seed = 7", with: "seed = 7\nclip_anchor = 2"), path: "t.toml")
        let zero = try Topology.parse(source: clipped.replacingOccurrences(of: "seed = 7", with: "seed = 7\nclip_anchor = 0"), path: "t.toml")
        #expect(two.plan.clipAnchor == 2 && zero.planHash == off.planHash && two.planHash != off.planHash)
        #expect(TopologyWriter.plan(two.plan).contains("clip_anchor = 2") && !TopologyWriter.plan(off.plan).contains("clip_anchor"))
        #expect(try Topology.parse(source: TopologyWriter.toml(two), path: "w.toml").planHash == two.planHash)
        #expect(!two.warnings.contains { $0.message.contains("clip_anchor") })
        let unused = Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7\nclip_anchor = 2")
        let warned = try Topology.parse(source: unused, path: "t.toml")
        #expect(warned.warnings.map(\.description).contains(
            "t.toml:\(Self.line(of: "clip_anchor", in: unused)):15: warning: clip_anchor bounds the clipping radius of aggregation = \"clipped\"; with aggregation 'mean' it has no effect"
        ), "\(warned.warnings.map(\.description))")
        for value in ["-1", "1001", "nan"] {
            let text = clipped.replacingOccurrences(of: "seed = 7", with: "seed = 7\nclip_anchor = \(value)")
            do {
                _ = try Topology.parse(source: text, path: "t.toml")
                Issue.record("expected an error for \(value)")
            } catch {
                #expect(error.description.contains("t.toml:\(Self.line(of: "clip_anchor", in: text)):15: error: clip_anchor must be 0 (no bound) or a number in (0, 1000]"), "\(error.description)")
            }
        }
    }
}

import Foundation
import PlexusCore
import PlexusCrypto
import PlexusTopology
import Testing

@Suite struct DiffAndWriterTests {
    static let base = Fixtures.text("good/explicit.toml")

    static func parse(_ text: String) throws -> Topology { try Topology.parse(source: text, path: "t.toml") }

    @Test func identicalFilesHaveNoDiff() throws {
        let a = try Self.parse(Self.base)
        let b = try Self.parse("# a comment\n" + Self.base.replacingOccurrences(of: "seed = 7", with: "seed = 7   # same"))
        let diff = TopologyDiff(from: a, to: b)
        #expect(diff.isEmpty)
        #expect(diff.description == "no changes")
    }

    @Test func everyKindOfChange() throws {
        let old = try Self.parse(Self.base)
        let newKey = Ed25519.PrivateKey().publicKey
        let extraKey = Ed25519.PrivateKey().publicKey
        let b = try #require(PeerID("b"))
        let oldKeyB = try #require(old.peer(b)).publicKey
        var text = Self.base
        text = text.replacingOccurrences(of: oldKeyB.base64, with: newKey.base64)  // rotate b's key
        text = text.replacingOccurrences(of: "c.example:7400", with: "c2.example:7500")  // move c
        text = text.replacingOccurrences(of: "rounds = 50", with: "rounds = 80")
        text = text.replacingOccurrences(of: "codec = \"topk:0.1+f16\"", with: "codec = \"lossless\"")
        // Drop link c–d (weight 0.5) and d–a; add e linked to c and d; change a–b's weight.
        text = text.replacingOccurrences(of: "[[link]]\npeers = [\"c\", \"d\"]\nweight = 0.5\n", with: "")
        text = text.replacingOccurrences(of: "[[link]]\npeers = [\"d\", \"a\"]\nweight = 0.25\n", with: "")
        text = text.replacingOccurrences(of: "peers = [\"a\", \"b\"]\nweight = 0.25", with: "peers = [\"a\", \"b\"]\nweight = 0.5")
        text += """

            [[peer]]
            id = "e"
            endpoint = "10.0.0.5:7400"
            public_key = "\(extraKey.base64)"

            [[link]]
            peers = ["e", "c"]
            weight = 0.25

            [[link]]
            peers = ["d", "e"]
            weight = 0.5

            """
        let new = try Self.parse(text)
        let diff = TopologyDiff(from: old, to: new)
        #expect(diff.peersAdded.map(\.id.rawValue) == ["e"])
        #expect(diff.peersRemoved.isEmpty)
        #expect(diff.keysRotated.map(\.peer.rawValue) == ["b"])
        #expect(diff.endpointsChanged.map(\.peer.rawValue) == ["c"])
        #expect(diff.linksAdded.map(\.key.description) == ["c -- e", "d -- e"])
        #expect(diff.linksRemoved.map(\.key.description) == ["c -- d", "a -- d"].sorted())
        #expect(diff.weightsChanged.map(\.link.description) == ["a -- b"])
        #expect(diff.planChanges.map(\.key) == ["rounds", "codec"])
        #expect(diff.planChanged)
        let lines = diff.lines
        #expect(lines == [
            "+ peer e 10.0.0.5:7400 \(extraKey.base64)",
            "~ peer b: public key \(oldKeyB.base64) -> \(newKey.base64)",
            "~ peer c: endpoint c.example:7400 -> c2.example:7500",
            "+ link c -- e weight 0.25",
            "+ link d -- e weight 0.5",
            "- link a -- d",
            "- link c -- d",
            "~ link a -- b: weight 0.25 -> 0.5",
            "~ plan rounds: 50 -> 80",
            "~ plan codec: \"topk:0.1+f16\" -> \"lossless\"",
            "~ plan hash: \(PlanHash.hex(old.planHash)) -> \(PlanHash.hex(new.planHash))",
        ])
        // And back: removed peers are reported.
        let back = TopologyDiff(from: new, to: old)
        #expect(back.peersRemoved.map(\.id.rawValue) == ["e"])
    }

    @Test func writerRoundTripKeepsEverything() throws {
        let topology = try Self.parse(Self.base)
        let text = TopologyWriter.toml(topology, comment: ["round trip"])
        let again = try Self.parse(text)
        #expect(again.networkName == topology.networkName)
        #expect(again.plan == topology.plan && again.planHash == topology.planHash)
        #expect(again.peers == topology.peers)
        #expect(again.links == topology.links)
        #expect(TopologyDiff(from: topology, to: again).isEmpty)
        #expect(again.mixingMatrix() == topology.mixingMatrix())
    }

    @Test func explicitMixingWeights() throws {
        let topology = try Self.parse(Self.base)
        let a = try #require(PeerID("a"))
        let weights = topology.mixingWeights(for: a)
        #expect(weights.selfWeight == 0.5)
        let b = try #require(PeerID("b")), d = try #require(PeerID("d"))
        #expect(weights.neighbours == [b: 0.25, d: 0.25])
        let w = topology.mixingMatrix()
        #expect(w[2] == [0, 0.25, 0.25, 0.5])  // c: b 0.25, d 0.5, self 0.25
        #expect(w.indices.allSatisfy { i in w.indices.allSatisfy { j in w[i][j] == w[j][i] } })
    }

    @Test func planHashIgnoresPlanLayoutInsideATopology() throws {
        let a = try Self.parse(Self.base)
        let reordered = Self.base
            .replacingOccurrences(of: "model = \"deepsurv\"\n", with: "")
            .replacingOccurrences(of: "seed = 7\n", with: "seed = 0x7 # hex\nmodel = 'deepsurv'\nmissing = \"error\"\nconsensus_step = 1.0\n")
        let b = try Self.parse(reordered)
        #expect(a.planHash == b.planHash)
    }

    @Test func dotOutput() throws {
        let topology = try Self.parse(Self.base)
        let dot = TopologyWriter.dot(topology)
        #expect(dot.hasPrefix("graph \"explicit\" {\n"))
        #expect(dot.contains("    \"a\" -- \"b\" [label=\"0.25\"];\n"))
        #expect(dot.contains("    \"b\" [label=\"b\\n[fd00::2]:7400\"];\n"))
        #expect(dot.hasSuffix("}\n"))
    }
}

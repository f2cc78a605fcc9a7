import Foundation
import Testing

extension ProcessSuites {
/// `--byzantine PEER:ATTACK` on `plexus simulate` and `plexus evaluate`, as a user runs them.
@Suite struct ByzantineCommandTests {
    static let torus = ["--topology", repositoryRoot + "/Topologies/torus-16.toml", "--data", repositoryRoot + "/Topologies/data/wdbc.csv",
        "--partition", "iid", "--split", repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json", "--rounds", "20", "--consensus-rounds", "5"]

    @Test func simulateReportsHonestPeersApartFromTheAttacker() throws {
        let text = try plexus(["simulate"] + Self.torus + ["--byzantine", "peer-03:sign-flip"], timeout: 300)
        #expect(text.status == 0, "\(text.stderr)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("  peer-03") && $0.hasSuffix("(attacker: sign-flip)") }, "\(text.stdout)")
        #expect(lines.filter { $0.contains("(attacker:") }.count == 1)
        #expect(lines.contains("honest (15 peers), mean [min, max]:") && lines.contains("attackers (1 peers), mean [min, max]:"), "\(text.stdout)")

        let json = try plexus(["simulate"] + Self.torus + ["--byzantine", "peer-03:sign-flip", "--json"], timeout: 300)
        #expect(json.status == 0, "\(json.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(object["byzantine"] as? [String: String] == ["peer-03": "sign-flip"])
        let test = object["test"] as! [String: [String: Double]]
        let honest = (object["honest"] as! [String: [String: Double]])["accuracy"]!
        let attackers = (object["attackers"] as! [String: [String: Double]])["accuracy"]!
        let honestValues = test.filter { $0.key != "peer-03" }.map { $0.value["accuracy"]! }
        #expect(honestValues.count == 15)
        #expect(abs(honest["mean"]! - honestValues.reduce(0, +) / 15) < 1e-9)
        #expect(honest["min"]! == honestValues.min()! && honest["max"]! == honestValues.max()!)
        #expect(attackers["mean"]! == test["peer-03"]!["accuracy"]!)
    }

    @Test func badByzantineValuesAreClearErrors() throws {
        let unknownPeer = try plexus(["simulate"] + Self.torus + ["--byzantine", "peer-99:stale"])
        #expect(unknownPeer.status != 0)
        #expect(unknownPeer.stderr.contains(
            "--byzantine: unknown peer 'peer-99' in 'peer-99:stale'; the topology's peers are peer-00, peer-01, peer-02, peer-03, peer-04, peer-05, peer-06, peer-07, peer-08, peer-09, peer-10, peer-11, peer-12, peer-13, peer-14, peer-15"
        ), "\(unknownPeer.stderr)")
        let unknownAttack = try plexus(["evaluate"] + Self.torus + ["--byzantine", "peer-03:flip"])
        #expect(unknownAttack.status != 0)
        #expect(unknownAttack.stderr.contains(
            "--byzantine: unknown attack 'flip'; expected one of: sign-flip, scale:K, noise:S, alie, ipm[:EPS], dissensus[:EPS], sample-lie:N, stale, label-flip, absent"
        ), "\(unknownAttack.stderr)")
        let badK = try plexus(["simulate"] + Self.torus + ["--byzantine", "peer-03:scale:big"])
        #expect(badK.status != 0)
        #expect(badK.stderr.contains("--byzantine: attack 'scale:big': scale:K needs a finite number K ≠ 0, got 'big'"), "\(badK.stderr)")
        // --rounds below the plan's 20 consensus-only rounds: a clear error, not a run that never trains.
        let short = try plexus(["simulate"] + Self.torus.dropLast(2))
        #expect(short.status != 0)
        #expect(short.stderr.contains("the plan's consensus_rounds (20) must be below the rounds (20): at least one round trains"), "\(short.stderr)")
    }
}
}

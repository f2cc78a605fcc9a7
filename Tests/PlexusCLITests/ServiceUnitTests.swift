import Foundation
import PlexusCore
import PlexusTopology
import Testing

extension ProcessSuites {
/// The systemd unit in `Topologies/systemd/`: systemd's own verifier accepts it, it carries the
/// hardening and exit-code policy README promises, and its command line starts a node.
@Suite(.serialized) struct ServiceUnitTests {
    static let unitPath = repositoryRoot + "/Topologies/systemd/plexus@.service"
    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func unit() throws -> String { try String(contentsOfFile: unitPath, encoding: .utf8) }

    /// The `[Service]` settings, key → values in order (a key may repeat).
    static func settings(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        var section = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        return out
    }

    /// `systemd-analyze verify` on the unit as `plexus@hospital-a.service`, its binary the one
    /// under test: exit 0 and not one complaint (unknown keys and bad values are only printed).
    @Test func systemdVerifiesTheUnit() throws {
        guard let analyze = Self.systemdAnalyze else {
            #expect(ProcessInfo.processInfo.environment["PLEXUS_REQUIRE_SYSTEMD"] != "1", "systemd-analyze is required here but missing")
            return
        }
        let directory = temporaryDirectory("unit")
        let path = directory + "/plexus@hospital-a.service"
        try Self.unit().replacingOccurrences(of: "/usr/local/bin/plexus", with: plexusExecutable.path).write(toFile: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.isEmpty, "systemd-analyze complained: \(text)")
    }

    /// Checked key by key as well (the fallback where systemd is not installed).
    @Test func theUnitCarriesTheHardeningAndTheExitCodePolicy() throws {
        let s = Self.settings(try Self.unit())
        let expected: [String: String] = [
            "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
            "LimitCORE": "0", "UMask": "0077", "Restart": "on-failure", "StateDirectory": "plexus/%i", "StateDirectoryMode": "0700",
            "LoadCredential": "plexus.key:/etc/plexus/keys/%i.key", "ExecReload": "/bin/kill -HUP $MAINPID", "CapabilityBoundingSet": "",
        ]
        for (key, value) in expected { #expect(s[key] == [value], "\(key): \(s[key] ?? [])") }
        // Exit codes as `plexus run` documents them: 78 (configuration) and 64 (arguments) are final.
        #expect(Set(s["RestartPreventExitStatus"]?.first?.split(separator: " ").map(String.init) ?? []) == ["78", "64"])
        #expect(s["ReadOnlyPaths"]?.first?.split(separator: " ").contains("/srv/plexus") == true)
        let start = try #require(s["ExecStart"]?.first)
        #expect(start.contains("--key %d/plexus.key"), "the key comes from the credential directory")
        #expect(start.contains("--state-dir %S/plexus/%i"))
    }

    /// The unit's ExecStart, its specifiers filled in as systemd would (%i the peer, %d the
    /// credential directory holding a 0400 copy of the key, %S and %L state and logs roots) and
    /// its /etc and /srv paths moved to a test network: `--check` says the node can start.
    @Test func theUnitsCommandLineStartsANode() throws {
        let directory = temporaryDirectory("unit-run")
        let network = directory + "/network.toml"
        let generated = try plexus([
            "topology", "generate", "--from", repositoryRoot + "/Topologies/consortium-3.toml", "--keys-dir", directory + "/keys",
            "--host", "127.0.0.1", "--base-port", String(freePorts(8)), "--out", network,
        ])
        try #require(generated.status == 0, "\(generated.stderr)")
        let peer = try Topology.load(path: network, spectralAnalysis: false).peers[0].id.rawValue
        let credentials = directory + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(directory)/keys/\(peer).key", toPath: credentials + "/plexus.key")
        chmod(credentials + "/plexus.key", 0o400)
        try FileManager.default.createDirectory(atPath: directory + "/srv", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/Topologies/data/wdbc.csv", toPath: "\(directory)/srv/\(peer).csv")
        let start = try #require(Self.settings(try Self.unit())["ExecStart"]?.first)
        let line = start
            .replacingOccurrences(of: "/etc/plexus/network.toml", with: network)
            .replacingOccurrences(of: "/srv/plexus/", with: directory + "/srv/")
            .replacingOccurrences(of: "127.0.0.1:9464", with: "127.0.0.1:\(freePorts(1))")
            .replacingOccurrences(of: "%i", with: peer)
            .replacingOccurrences(of: "%d", with: credentials)
            .replacingOccurrences(of: "%S", with: directory + "/state")
            .replacingOccurrences(of: "%L", with: directory + "/logs")
        let words = line.split(separator: " ").map(String.init)
        #expect(words.first == "/usr/local/bin/plexus")
        let checked = try plexus(Array(words.dropFirst()) + ["--check"])
        #expect(checked.status == 0, "\(checked.stderr)")
        #expect(checked.stdout.contains("ready: '\(peer)' can start"), "\(checked.stdout)")
        #expect(!checked.stderr.contains("readable by"), "a 0400 credential is not a permission problem: \(checked.stderr)")
    }
}
}

import Foundation
import PlexusCore
import PlexusTopology
import Testing

/// Hostile input: thousands of seeded random mutations of a valid file never crash or hang the
/// parser, and every failure is reported as positioned diagnostics.
@Suite struct RobustnessTests {
    static let valid: [UInt8] = Array(Fixtures.text("good/explicit.toml").utf8)
    static let variety: [UInt8] = Array(Fixtures.text("good/variety.toml").utf8)

    enum Mutation: CaseIterable { case flip, truncate, deleteLine, duplicateLine, insert, swapLines }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let count = 1 + rng.below(3)
        for _ in 0..<count where !bytes.isEmpty {
            switch Mutation.allCases[rng.below(Mutation.allCases.count)] {
            case .flip:
                let i = rng.below(bytes.count)
                bytes[i] ^= UInt8(truncatingIfNeeded: 1 << rng.below(8))
            case .truncate:
                bytes = Array(bytes.prefix(rng.below(bytes.count)))
            case .deleteLine, .duplicateLine, .swapLines:
                var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
                let i = rng.below(lines.count)
                let kind = rng.below(3)
                if kind == 0 {
                    lines.remove(at: i)
                } else if kind == 1 {
                    lines.insert(lines[i], at: i)
                } else {
                    lines.swapAt(i, rng.below(lines.count))
                }
                bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
            case .insert:
                let specials: [UInt8] = Array("[]{}\"'=#,.\n\\ \t0-:".utf8) + [0, 0xFF, 0xC3]
                let i = rng.below(bytes.count + 1)
                bytes.insert(specials[rng.below(specials.count)], at: i)
            }
        }
        return bytes
    }

    @Test func theBaseFilesAreValid() throws {
        let topology = try Topology.parse(bytes: Self.valid, path: "explicit.toml")
        #expect(topology.plan.mixing == .explicit)
        #expect(topology.warnings.isEmpty)
        let variety = try Topology.parse(bytes: Self.variety, path: "variety.toml")
        #expect(variety.networkName == "variety" && variety.links.count == 2 && variety.peers.count == 3)
        #expect(variety.plan.codec == "topk:0.01+int8" && variety.plan.rounds == 1000)
        #expect(variety.plan.features == .columns(["age", "bmi", "xé"]))
    }

    /// An unclosed string is named as such, at its line — not as toml++'s "unescaped control
    /// characters" (the line feed it runs into), and in the last line of a file too.
    @Test(arguments: ["[network]\nname = \"x\nprotocol = 1\n", "[network]\nprotocol = 1\nname = \"x"])
    func anUnterminatedStringIsNamed(_ text: String) throws {
        do {
            _ = try Topology.parse(source: text, path: "u.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix("u.toml:"), "\(error.description)")
            #expect(error.description.contains(": error: TOML syntax: unterminated string (a \"…\" string must close on the line it opens)"), "\(error.description)")
            #expect(!error.description.contains("control characters"))
        }
    }

    @Test func inlineTablesFallBackToUsefulPositions() throws {
        let text = Fixtures.text("good/variety.toml").replacingOccurrences(of: "{ peers = [\"a\", \"b\"] }", with: "{ peers = [\"a\", \"bb\"] }")
        do {
            _ = try Topology.parse(source: text, path: "v.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == """
                v.toml:5:3: error: unknown peer 'bb' in link; did you mean 'b'?
                v.toml:23:1: error: peer 'a' has no link; add a [[link]] with peers = ["a", …]
                """)
        }
    }

    @Test func seededMutationsNeverCrashOrHang() {
        // PLEXUS_FUZZ_ITERATIONS and PLEXUS_FUZZ_SEED run a longer or different campaign by hand;
        // PLEXUS_FUZZ_DUMP writes each input to /tmp/last-fuzz.toml first, to find a crasher.
        let environment = ProcessInfo.processInfo.environment
        let iterations = environment["PLEXUS_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 3000
        var rng = SplitMix64(seed: environment["PLEXUS_FUZZ_SEED"].flatMap(UInt64.init) ?? 2026)
        let start = ContinuousClock.now
        var rejected = 0, accepted = 0
        for iteration in 0..<iterations {
            let bytes = Self.mutate(iteration % 2 == 0 ? Self.valid : Self.variety, &rng)
            if ProcessInfo.processInfo.environment["PLEXUS_FUZZ_DUMP"] != nil { _ = FileManager.default.createFile(atPath: "/tmp/last-fuzz.toml", contents: Data(bytes)) }
            let lineCount = bytes.filter { $0 == UInt8(ascii: "\n") }.count + 1
            do {
                let topology = try Topology.parse(bytes: bytes, path: "m.toml")
                accepted += 1
                // Whatever was accepted renders and parses back to the same values.
                let again = try Topology.parse(source: TopologyWriter.toml(topology), path: "again.toml")
                #expect(again.peers == topology.peers && again.planHash == topology.planHash, "iteration \(iteration)")
            } catch {
                rejected += 1
                #expect(!error.errors.isEmpty, "iteration \(iteration): thrown without an error")
                for d in error.diagnostics {
                    #expect(d.line >= 0 && d.line <= lineCount + 1 && d.column >= 0, "iteration \(iteration): \(d)")
                }
            }
        }
        #expect(rejected > iterations / 3 && accepted > iterations / 300, "rejected \(rejected), accepted \(accepted)")
        #expect(ContinuousClock.now - start < .seconds(iterations / 50))
    }

    /// The position scanner runs on arbitrary text without trapping or looping.
    @Test func sourceIndexSurvivesGarbage() {
        var rng = SplitMix64(seed: 7)
        let alphabet = Array("[]{}\"'=#,.\n\\ \t\r0az-_:é".unicodeScalars)
        for _ in 0..<2000 {
            var text = ""
            for _ in 0..<rng.below(200) { text.unicodeScalars.append(alphabet[rng.below(alphabet.count)]) }
            _ = SourceIndex(source: text)
        }
        let deep = String(repeating: "a = [", count: 1) + String(repeating: "[", count: 100_000)
        _ = SourceIndex(source: deep)
        let unterminated = "a = \"\"\"" + String(repeating: "x\n", count: 1000)
        _ = SourceIndex(source: unterminated)
    }

    @Test func sourceIndexPositions() throws {
        let index = SourceIndex(source: """
            # comment
            [plan]
            model = "cox"   # trailing
            exclude = [
              "pid",  # one
              'center',
            ]
            text = \"\"\"
            [not a header]
            \"\"\"
            [[peer]]
            id = "a"
            [[peer]]
              id = "b"
            """)
        #expect(index.header("plan") == SourcePosition(line: 2, column: 1))
        #expect(index.entry("plan", "model")?.value == SourcePosition(line: 3, column: 9))
        #expect(index.entry("plan", "exclude")?.elements == [SourcePosition(line: 5, column: 3), SourcePosition(line: 6, column: 3)])
        #expect(index.header("not a header") == nil)
        #expect(index.header("peer#1") == SourcePosition(line: 13, column: 1))
        #expect(index.entry("peer#1", "id")?.key == SourcePosition(line: 14, column: 3))
    }

    @Test func windowsLineEndingsKeepPositions() {
        let text = Fixtures.text("bad/links.toml")
        func lines(_ source: String) -> [String] {
            do {
                _ = try Topology.parse(source: source, path: "l.toml")
                return []
            } catch {
                return error.diagnostics.map(\.description)
            }
        }
        let unix = lines(text)
        #expect(!unix.isEmpty)
        #expect(lines(text.replacingOccurrences(of: "\n", with: "\r\n")) == unix)
    }

    @Test func deeplyNestedArraysAreRejectedNotCrashing() {
        let source = "[network]\nname = \"x\"\nbad = " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n"
        #expect(throws: TopologyError.self) { try Topology.parse(source: source, path: "deep.toml") }
    }

    /// toml++ skips a leading BOM that the pre-scan for its asserts did not, so `[,` behind one
    /// aborted the process (found by the libFuzzer target topology-source). A BOM left after the
    /// file's own was removed is refused with a diagnostic; a file's single BOM still parses.
    @Test func aByteOrderMarkAfterTheFilesOwnIsRefused() throws {
        for source in ["\u{FEFF}[,", "\u{FEFF}[[`x]]", "\u{FEFF}a = [}1]", "\u{FEFF}[network]\nname = \"x\"\n"] {
            do {
                _ = try Topology.parse(source: source, path: "bom.toml")
                Issue.record("parsed \(source.debugDescription)")
            } catch {
                #expect(error.description == "bom.toml:1:1: error: the text starts with a byte-order mark (U+FEFF) after the file's own one was removed; remove it")
            }
        }
        #expect(throws: TopologyError.self) { try Topology.parse(bytes: [0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF] + Array("[,".utf8), path: "bom.toml") }
        _ = try Topology.parse(bytes: [0xEF, 0xBB, 0xBF] + Self.valid, path: "explicit.toml")
    }

    @Test(arguments: [
        ("10.0.0.11:7400", "10.0.0.11:7400"),
        ("node-1.hospital.example:1", "node-1.hospital.example:1"),
        ("[::1]:65535", "[::1]:65535"),
        ("[fd00::11]:7400", "[fd00::11]:7400"),
        ("localhost:7400", "localhost:7400"),
    ])
    func validEndpoints(_ text: String, _ printed: String) throws {
        let endpoint = try Endpoint.parse(text).get()
        #expect(endpoint.description == printed)
    }

    @Test(arguments: [
        "", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:+80", "10.0.0.1:8 0",
        "::1:7400", "[::1]", "[::1]7400", "[zz::1]:7400", "[::1:7400", "256.1.1.1:80", "1.2.3:80",
        "-host:80", "host-:80", "ho st:80", ":80", "a..b:80", "10.0.0.1:99999999999999999999",
    ])
    func invalidEndpoints(_ text: String) {
        if case .success(let e) = Endpoint.parse(text) { Issue.record("'\(text)' parsed as \(e)") }
    }
}

import Foundation
import PlexusTopology
import Testing

/// Each `Fixtures/bad/X.toml` (and `Fixtures/warnings/X.toml`) is paired with `X.expected`: the
/// exact diagnostic lines `plexus topology check` prints, paths relative to the fixture's folder.
/// `Fixtures/regenerate-golden.sh` rewrites them; review the diff, the goldens are the spec.
@Suite struct GoldenDiagnosticsTests {
    static func names(_ folder: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: Fixtures.path(folder))) ?? []
        return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Diagnostics of `folder/name.toml` as lines, with the folder prefix removed from paths.
    static func lines(_ folder: String, _ name: String) -> (valid: Bool, lines: [String]) {
        let path = Fixtures.path("\(folder)/\(name).toml")
        let prefix = Fixtures.path(folder) + "/"
        let diagnostics: [Diagnostic]
        var valid = true
        do {
            diagnostics = try Topology.load(path: path).warnings
        } catch {
            diagnostics = error.diagnostics
            valid = false
        }
        return (valid, diagnostics.map { $0.description.replacingOccurrences(of: prefix, with: "") })
    }

    static func expected(_ folder: String, _ name: String) -> [String] {
        Fixtures.text("\(folder)/\(name).expected").split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    @Test func fixturesExist() {
        #expect(Self.names("bad").count >= 12)
        #expect(Self.names("warnings").count >= 2)
    }

    @Test(arguments: GoldenDiagnosticsTests.names("bad"))
    func badFile(_ name: String) {
        let (valid, lines) = Self.lines("bad", name)
        #expect(!valid, "\(name).toml should not validate")
        let expected = Self.expected("bad", name)
        #expect(!expected.isEmpty)
        #expect(lines == expected, "\(name).toml:\n\(lines.joined(separator: "\n"))\n--- expected:\n\(expected.joined(separator: "\n"))")
    }

    @Test(arguments: GoldenDiagnosticsTests.names("warnings"))
    func warningsOnly(_ name: String) {
        let (valid, lines) = Self.lines("warnings", name)
        #expect(valid, "\(name).toml should validate")
        let expected = Self.expected("warnings", name)
        #expect(!expected.isEmpty)
        #expect(lines == expected, "\(name).toml:\n\(lines.joined(separator: "\n"))\n--- expected:\n\(expected.joined(separator: "\n"))")
    }

    @Test func missingFile() {
        #expect(throws: TopologyError.self) { try Topology.load(path: "/nonexistent/x.toml") }
        do {
            _ = try Topology.load(path: "/nonexistent/x.toml")
        } catch {
            #expect(error.description == "/nonexistent/x.toml: error: no such file")
        }
    }

    @Test func directoryIsNotAFile() {
        do {
            _ = try Topology.load(path: Fixtures.path("bad"))
            Issue.record("a directory loaded")
        } catch {
            #expect(error.diagnostics.count == 1)
            #expect(error.description.hasSuffix("error: is a directory, not a file"))
        }
    }

    @Test func oversizedFile() throws {
        let path = NSTemporaryDirectory() + "plexus-oversized-\(getpid()).toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let line = Data(repeating: UInt8(ascii: "#"), count: 1 << 20)
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for _ in 0..<17 { handle.write(line) }
        try handle.close()
        do {
            _ = try Topology.load(path: path)
            Issue.record("a 17 MiB file loaded")
        } catch {
            #expect(error.diagnostics.count == 1)
            #expect(error.description.contains("larger than the 16777216-byte (16 MiB) limit"), "\(error)")
        }
    }

    @Test func planFileReportsPlanProblemsOfATopologyFile() {
        do {
            _ = try PlanFile.load(path: Fixtures.path("bad/plan-targets.toml"))
            Issue.record("expected errors")
        } catch {
            let lines = error.diagnostics.map { $0.description.replacingOccurrences(of: Fixtures.path("bad") + "/", with: "") }
            #expect(lines == [
                "plan-targets.toml:5:9: error: model 'deepsurv' needs 'event' (the 0/1 event column)",
                "plan-targets.toml:6:1: warning: 'label' is not used by model 'deepsurv'",
                "plan-targets.toml:9:9: error: unknown codec 'zstd'; expected lossless, f16, bf16, int8, int8:CHUNK, topk:F or topk:F+f32|f16|int8",
            ])
        }
    }
}

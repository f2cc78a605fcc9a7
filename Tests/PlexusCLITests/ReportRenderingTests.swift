import Foundation
import Testing

extension ProcessSuites {
/// Renders `plexus report`'s HTML with headless Chromium (Debian's `chromium`, which .ci/run
/// installs) and checks the picture is not blank.
@Suite struct ReportRenderingTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let required = ProcessInfo.processInfo.environment["PLEXUS_REQUIRE_CHROMIUM"] == "1"

    func screenshot(_ html: String, _ png: String) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.chromium!)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1400",
            "--screenshot=\(png)", "file://\(html)",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(90)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { process.terminate() }
        let data = try Data(contentsOf: URL(fileURLWithPath: png))
        #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG file")
        return data.count
    }

    @Test(.enabled(if: chromium != nil || required, "needs chromium (apt-get install chromium)"))
    func reportRendersToANonBlankPicture() throws {
        #expect(Self.chromium != nil, "PLEXUS_REQUIRE_CHROMIUM=1 but chromium is not installed")
        guard Self.chromium != nil else { return }
        let directory = temporaryDirectory("report")
        // A real (short) simulation's logs and evaluation.
        let topology = repositoryRoot + "/Topologies/tcga-brca.toml"
        let data = repositoryRoot + "/Topologies/data/tcga_brca.csv"
        let simulated = try plexus([
            "simulate", "--topology", topology, "--data", data, "--where", "split=train", "--test-where", "split=test",
            "--rounds", "60", "--log-dir", directory + "/logs",
        ])
        #expect(simulated.status == 0, "\(simulated.stderr)")
        let evaluation = try plexus([
            "evaluate", "--topology", topology, "--data", data, "--where", "split=train", "--test-where", "split=test", "--rounds", "60", "--json",
        ])
        #expect(evaluation.status == 0)
        try evaluation.stdout.write(toFile: directory + "/evaluation.json", atomically: true, encoding: .utf8)
        let report = try plexus(["report", directory + "/logs", "--evaluation", directory + "/evaluation.json", "--out", directory + "/report.html"])
        #expect(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOfFile: directory + "/report.html", encoding: .utf8)
        #expect(html.components(separatedBy: "<polyline class=\"series\"").count - 1 == 4 * 6)
        #expect(html.contains("isolated midwest"))
        // A blank page of the same size compresses to a few kilobytes; the report's plots do not.
        try "<!DOCTYPE html><html><body></body></html>".write(toFile: directory + "/blank.html", atomically: true, encoding: .utf8)
        let blank = try screenshot(directory + "/blank.html", directory + "/blank.png")
        let rendered = try screenshot(directory + "/report.html", directory + "/report.png")
        #expect(rendered > 8 * blank, "report.png is \(rendered) bytes, a blank page \(blank)")
    }

    @Test func reportAndWatchOnAMissingOrEmptyDirectory() throws {
        let missing = try plexus(["report", "/nonexistent/logs", "--out", "/tmp/x.html"])
        #expect(missing.status != 0 && missing.stderr.contains("/nonexistent/logs: cannot open the log directory"))
        let empty = temporaryDirectory("empty")
        let none = try plexus(["watch", empty, "--once"])
        #expect(none.status != 0 && none.stderr.contains("no convergence logs (*.jsonl)"))
    }
}
}

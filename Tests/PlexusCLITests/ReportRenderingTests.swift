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
        // The clinical sections: the pooled fit's hazard ratios, and leave-one-centre-out.
        let trained = try plexus(["train", "--data", data, "--plan", repositoryRoot + "/Topologies/plans/tcga-cox.toml", "--where", "split=train", "--json"])
        #expect(trained.status == 0, "\(trained.stderr)")
        try trained.stdout.write(toFile: directory + "/train.json", atomically: true, encoding: .utf8)
        let loco = try plexus(["evaluate", "--loco", "--bootstrap", "100", "--topology", topology, "--data", data, "--json"], timeout: 300)
        #expect(loco.status == 0, "\(loco.stderr)")
        try loco.stdout.write(toFile: directory + "/loco.json", atomically: true, encoding: .utf8)
        let report = try plexus([
            "report", directory + "/logs", "--evaluation", directory + "/evaluation.json", "--inference", directory + "/train.json",
            "--loco", directory + "/loco.json", "--out", directory + "/report.html",
        ])
        #expect(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOfFile: directory + "/report.html", encoding: .utf8)
        // Five line charts (metric, loss, distance, bytes, compression), one polyline per peer.
        #expect(html.components(separatedBy: "<polyline class=\"series\"").count - 1 == 5 * 6)
        #expect(html.contains("isolated midwest"))
        #expect(html.contains("<h2>Hazard ratios</h2>") && html.contains("age_at_index"))
        #expect(html.contains("<h2>Leave one centre out</h2>") && html.contains("<td>canada</td><td>51</td><td>3</td>"))
        // An evaluation of another run (its metric is not the logs') is refused.
        let wdbc = try plexus([
            "evaluate", "--topology", repositoryRoot + "/Topologies/consortium-3.toml", "--data", repositoryRoot + "/Topologies/data/wdbc.csv",
            "--partition", "split:" + repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json", "--split", repositoryRoot + "/Topologies/data/splits/wdbc_seed0.json",
            "--rounds", "5", "--json",
        ])
        try wdbc.stdout.write(toFile: directory + "/other.json", atomically: true, encoding: .utf8)
        let mismatched = try plexus(["report", directory + "/logs", "--evaluation", directory + "/other.json", "--out", directory + "/bad.html"])
        #expect(mismatched.status != 0 && mismatched.stderr.contains("other.json: the evaluation's metric is accuracy but the logs record C-index"), "\(mismatched.stderr)")
        // A blank page of the same size compresses to a few kilobytes; the report's plots do not.
        try "<!DOCTYPE html><html><body></body></html>".write(toFile: directory + "/blank.html", atomically: true, encoding: .utf8)
        let blank = try screenshot(directory + "/blank.html", directory + "/blank.png")
        let rendered = try screenshot(directory + "/report.html", directory + "/report.png")
        #expect(rendered > 8 * blank, "report.png is \(rendered) bytes, a blank page \(blank)")
    }

    /// `plexus watch` (not --once) on a directory that does not exist yet waits for it, says so,
    /// and follows the first log that appears, with the plan's rounds.
    @Test func watchWaitsForLogsToAppear() throws {
        let root = temporaryDirectory("watch-wait")
        let directory = root + "/logs"
        let watch = try Background(["watch", directory, "--interval", "0.1"], output: root + "/watch.out")
        defer { watch.kill9() }
        usleep(600_000)
        #expect(watch.process.isRunning, "it waits rather than exiting: \(watch.log)")
        #expect(watch.log.contains("plexus watch: waiting for convergence logs (*.jsonl) in \(directory)…"), "\(watch.log)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let header = #"{"schema":"plexus.convergence","version":1,"peer":"hospital-a","network":"t","plan_hash":"00","model":"logistic","codec":"lossless","parameters":31,"samples":100,"rounds":2}"#
        let round = #"{"type":"round","time":1000,"peer":"hospital-a","round":2,"loss":0.5,"consensus_distance":0.1,"consensus_distance_relative":0.1,"bytes_sent":10,"bytes_received":10,"compression_ratio":1,"accepted":1,"rejected":{},"staleness":{},"seconds":{"train":0,"encode":0,"apply":0}}"#
        try (header + "\n" + round + "\n").write(toFile: directory + "/hospital-a.jsonl", atomically: true, encoding: .utf8)
        let deadline = Date().addingTimeInterval(20)
        while !watch.log.contains("hospital-a round=2/2") && Date() < deadline { usleep(50_000) }
        #expect(watch.log.contains("hospital-a round=2/2 loss=0.5 distance=0.1 finished"), "\(watch.log)")
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

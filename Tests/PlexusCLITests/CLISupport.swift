import Foundation
import PlexusNode
import PlexusTopology
import Testing

/// The result of running the `plexus` executable.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The `plexus` binary SwiftPM built next to this test bundle.
let plexusExecutable: URL = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    // Linux runs `<products>/plexusPackageTests.xctest`; macOS runs inside the bundle.
    while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("plexus").path),
        directory.path != "/"
    {
        directory.deleteLastPathComponent()
    }
    return directory.appendingPathComponent("plexus")
}()

/// Runs `plexus arguments…` with `input` on standard input, waiting at most `timeout` seconds
/// (then the process is killed and the result says so with status -1 … the test fails on it).
func plexus(_ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) throws -> CommandResult {
    let dir = temporaryDirectory("run")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let outPath = dir + "/stdout"
    let errPath = dir + "/stderr"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = plexusExecutable
    process.arguments = arguments
    // Files rather than pipes: a chatty child can never block on a full pipe.
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let inPipe = Pipe()
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inPipe.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    var timedOut = false
    if process.isRunning {
        timedOut = true
        process.terminate()
    }
    process.waitUntilExit()
    return CommandResult(
        status: timedOut ? -1 : process.terminationStatus,
        stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    )
}

func temporaryDirectory(_ label: String) -> String {
    let path = NSTemporaryDirectory() + "plexus-\(label)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// `count` consecutive TCP ports on 127.0.0.1 that are free now.
func freePorts(_ count: Int) -> Int {
    guard let base = LocalPorts.freeRange(count: count) else { fatalError("no \(count) free ports on 127.0.0.1") }
    return base
}

/// A `plexus` process started in the background.
final class Background {
    let process = Process()
    let output: String

    /// Runs `plexus arguments…`, behind `prefix` when one is given (e.g. `LinkEmulator.command(in:)`,
    /// `ip netns exec <ns>`, which execs the program: the process id stays plexus's).
    init(_ arguments: [String], output: String, workingDirectory: String? = nil, prefix: [String] = []) throws {
        self.output = output
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        if let launcher = prefix.first {
            process.executableURL = URL(fileURLWithPath: launcher)
            process.arguments = prefix.dropFirst() + [plexusExecutable.path] + arguments
        } else {
            process.executableURL = plexusExecutable
            process.arguments = arguments
        }
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    /// Waits at most `timeout` seconds; kills the process and returns nil if it is still running.
    func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var log: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port`, for scraping `/metrics`; nil if nothing answers.
func httpGet(port: Int, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard connected else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}

/// The value of a Prometheus sample line starting with `prefix`.
func sample(_ exposition: String, _ prefix: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(prefix) {
        return Double(line.split(separator: " ").last!)
    }
    return nil
}

/// `plexus topology generate --shape full --peers count` with the wdbc logistic plan, keys in
/// `directory/keys`, on 127.0.0.1 from `basePort`, written to `out` and loaded.
func generateFullMesh(peers count: Int, basePort: Int, directory: String, out: String) throws -> Topology {
    let generated = try plexus([
        "topology", "generate", "--shape", "full", "--peers", String(count), "--keys-dir", directory + "/keys", "--host", "127.0.0.1",
        "--base-port", String(basePort), "--plan", repositoryRoot + "/Topologies/plans/wdbc-logistic.toml", "--out", out,
    ])
    #expect(generated.status == 0, "\(generated.stderr)")
    return try Topology.load(path: out, spectralAnalysis: false)
}

/// Waits (bounded) until `condition` holds, polling every 50 ms without holding a thread (the
/// async suites' way to wait, see ``ProcessSuites``); false if it never did.
func eventually(_ timeout: TimeInterval, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await _Concurrency.Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

import Foundation

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

// The fuzzing harness for every decoder of outside bytes (see README, "Fuzzing").
//
// One executable, one libFuzzer entry point; the target is chosen by PLEXUS_FUZZ_TARGET.
// Built with `-sanitize=fuzzer,address -DPLEXUS_FUZZ_DRIVER` (the recipe is in .ci/fuzz), `main`
// hands control to libFuzzer's driver. In the ordinary build it replays files instead:
//
//     PLEXUS_FUZZ_TARGET=envelope plexus-fuzz Tests/Fuzz/Corpus/envelope/*
//     plexus-fuzz --list
//
// A harness traps (`fuzzCheck`) when an oracle is violated; a decoder that throws is fine.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

typealias FuzzTarget = @Sendable (_ input: [UInt8]) -> Void

/// Every target by name (the names are the corpus directories under Tests/Fuzz/Corpus/).
let fuzzTargets: [(name: String, run: FuzzTarget)] = [
    ("envelope", EnvelopeFuzz.run),
    ("delta", DeltaFuzz.run),
    ("gossip", GossipFuzz.run),
    ("handshake-message", HandshakeMessageFuzz.run),
    ("handshake", HandshakeFuzz.run),
    ("framing", FramingFuzz.run),
    ("statistics-round", StatisticsRoundFuzz.run),
    ("site-summary", SiteSummaryFuzz.run),
    ("completed-statistics", CompletedStatisticsFuzz.run),
    ("state-file", StateFileFuzz.run),
    ("topology-bytes", TopologyFuzz.runBytes),
    ("topology-source", TopologyFuzz.runSource),
    ("csv", CSVFuzz.run),
    ("key-file", KeyFileFuzz.run),
    ("safetensors", SafetensorsFuzz.run),
    ("convergence-log", ConvergenceLogFuzz.run),
]

/// The target named by PLEXUS_FUZZ_TARGET, resolved once.
nonisolated(unsafe) var selectedTarget: FuzzTarget?

func selectTarget() -> FuzzTarget {
    if let selectedTarget { return selectedTarget }
    let name = getenv("PLEXUS_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = fuzzTargets.first(where: { $0.name == name }) else {
        let names = fuzzTargets.map(\.name).joined(separator: " ")
        printError("plexus-fuzz: set PLEXUS_FUZZ_TARGET to one of: \(names)\n")
        exit(2)
    }
    selectedTarget = target.run
    return target.run
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    selectTarget()(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Writes `text` to standard error.
func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Traps with `message` when `condition` is false — an oracle violation is a crash for libFuzzer.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition() {
        printError("plexus-fuzz: oracle violated: \(message())\n")
        fatalError(message(), file: file, line: line)
    }
}

#if PLEXUS_FUZZ_DRIVER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32
#endif

@main
struct PlexusFuzz {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["--list"] {
            for target in fuzzTargets { print(target.name) }
            return
        }
        if arguments.count == 2, arguments[0] == "--write-seeds" {
            writeSeeds(to: arguments[1])
            return
        }
        _ = selectTarget()
        #if PLEXUS_FUZZ_DRIVER
        // SwiftPM links executables with `--defsym main=<module>_main`, so this `main` is the
        // process's; libFuzzer's own main is never linked in. Hand the arguments to its driver.
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
        #else
        // Ordinary build: replay each file (or every file of each directory) once.
        var count = 0
        for path in arguments {
            for file in filesAt(path) {
                guard let bytes = readWholeFile(file) else {
                    printError("plexus-fuzz: cannot read \(file)\n")
                    exit(1)
                }
                bytes.withUnsafeBufferPointer { _ = fuzz($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
                count += 1
            }
        }
        print("plexus-fuzz: replayed \(count) inputs without a crash")
        #endif
    }

    static func writeSeeds(to directory: String) {
        for (target, inputs) in Seeds.all() {
            mkdir(directory + "/" + target, 0o755)
            for (i, bytes) in inputs.enumerated() {
                let path = directory + "/" + target + "/seed-\(i)"
                guard let f = fopen(path, "wb") else { printError("plexus-fuzz: cannot write \(path)\n"); exit(1) }
                _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
                fclose(f)
            }
        }
    }

    static func filesAt(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    static func readWholeFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }
}

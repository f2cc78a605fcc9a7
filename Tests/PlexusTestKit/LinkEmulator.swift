import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A packet-level link emulator between Linux network namespaces, for tests that need the real
/// kernel TCP stacks (handshakes, retransmits, RTO backoff, FIN/RST) in the loop — what
/// `tc qdisc … netem` would give, on a kernel without the netem module.
///
/// ```
///   namespace plx-<pid>-<k>-0        namespace plx-<pid>-<k>-1        …
///   10.77.0.1/24 on TUN "plx0"       10.77.0.2/24 on TUN "plx0"
///        │ fd                              │ fd
///        └──────────── forwarder thread (this process) ──────────────┘
///          IPv4 destination → namespace; per directed link: partition?, loss,
///          rate (serialisation + tail-drop queue), delay ± jitter, FIFO
/// ```
///
/// ``init(nodes:conditions:seed:)`` creates `nodes` namespaces with unique names
/// (`plx-<pid>-<counter>-<i>`), brings `lo` up in each, and gives namespace *i* a TUN device
/// `plx0` (`IFF_TUN | IFF_NO_PI`, MTU 1500) holding ``address(_:)`` = `10.77.0.<i+1>/24`, so
/// every other node's address routes into the TUN. One thread polls all TUN file descriptors,
/// reads each IPv4 packet, looks up its destination, and writes it into the destination
/// namespace's TUN after the link's conditions (``Conditions``):
///
/// - `delay` (default 0) plus uniform `jitter` (default 0), never reordering a link's packets;
/// - `loss`: the probability (0…1, default 0) that a packet is dropped, from a seeded
///   SplitMix64, so one seed gives one drop pattern for one packet sequence;
/// - `rateBitsPerSecond` (default nil: unlimited): packets leave one after another at that rate;
///   a packet that would make the link's backlog exceed `queueBytes` (default 256 KiB) is dropped;
/// - ``partition(_:_:)`` drops every packet between two nodes, both ways, until ``heal(_:_:)`` or
///   ``heal()``; ``partition(_:_:for:)`` heals by itself, timed by the forwarder thread.
///   Packets already on the link (inside their delay) are still delivered, like packets already
///   on a wire.
///
/// Numbers (2-core development machine): the poll loop sleeps until the next due packet (`ppoll`,
/// nanoseconds), so a TCP round trip through 5 ms each way takes 10.1–10.4 ms; one thread forwards
/// for all links, and a 2 MB TCP echo between two namespaces (no delay) took 0.12 s, about
/// 130 Mbit/s each way — far above what the tests need. The rate limit was checked by hand only
/// (2 MB echoed at 50 Mbit/s with 1 % loss and 5 ms delay: 0.55 s, bound 0.32 s).
/// Limits: IPv4 only (other packets, e.g. IPv6 router solicitations, are dropped and counted);
/// at most 250 nodes; one subnet, no routing between labs; no duplication or corruption.
///
/// **How a TUN device ends up in another namespace.** `TUNSETIFF` creates the device in the
/// network namespace of the *calling thread*, and `ip netns exec` cannot hand back a file
/// descriptor. So a short-lived `Thread` opens `/var/run/netns/<name>` (the bind mount
/// `ip netns add` made), `setns(fd, CLONE_NEWNET)` — which moves only that thread — opens
/// `/dev/net/tun`, issues `TUNSETIFF`, and exits. (``inNamespace(_:_:)`` offers the same trick
/// to tests, for sockets inside a namespace.) The descriptor stays bound to the device in
/// that namespace and is then read and written from the forwarder thread in the root namespace.
/// The device is not persistent: it disappears when the descriptor is closed.
///
/// Requirements: root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `/dev/net/tun` (created with
/// `mknod /dev/net/tun c 10 200` when missing), and iproute2's `ip` (Debian package `iproute2`).
/// When any is missing, `init` throws an ``Error`` that says which: a test using the lab fails
/// rather than silently passing.
///
/// Processes: ``command(in:)`` is the argv prefix (`ip netns exec <name>`) that starts a program
/// inside a namespace; `ip netns exec` execs the program, so the process id is the program's.
/// ``shutdown()`` (also run by `deinit`) stops the forwarder, SIGKILLs any process still inside
/// the lab's namespaces (`ip netns pids`), closes the TUNs and deletes the namespaces. A lab left
/// behind by a crashed test process is deleted by the next lab's `init` (its pid is dead).
///
/// NOT FOR PUBLIC CONSUMPTION: a test fixture, shared by the CLI tests and the performance tests.
package final class LinkEmulator: @unchecked Sendable {
    /// What one direction of a link does to packets. See the type's documentation for defaults.
    package struct Conditions: Sendable, Equatable {
        package var delay: Duration
        package var jitter: Duration
        package var loss: Double
        package var rateBitsPerSecond: Int?
        package var queueBytes: Int

        package init(
            delay: Duration = .zero, jitter: Duration = .zero, loss: Double = 0, rateBitsPerSecond: Int? = nil,
            queueBytes: Int = 256 << 10
        ) {
            precondition(delay >= .zero && jitter >= .zero, "delay and jitter must be ≥ 0")
            precondition(loss >= 0 && loss <= 1, "loss must be a probability, got \(loss)")
            precondition(rateBitsPerSecond.map { $0 > 0 } ?? true, "rate must be > 0 bit/s")
            precondition(queueBytes > 0, "queueBytes must be > 0")
            self.delay = delay
            self.jitter = jitter
            self.loss = loss
            self.rateBitsPerSecond = rateBitsPerSecond
            self.queueBytes = queueBytes
        }
    }

    /// Packet counts of one directed link since the lab started.
    package struct Statistics: Sendable, Equatable {
        package var forwarded = 0
        package var forwardedBytes = 0
        package var lost = 0
        package var partitioned = 0
        package var queueFull = 0
    }

    package struct Error: Swift.Error, CustomStringConvertible {
        package var description: String
    }

    /// The namespaces, node 0 first.
    package let namespaces: [String]
    /// The TUN device's name inside every namespace.
    package static let device = "plx0"
    package static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    private let tuns: [Int32]
    private let wake: (read: Int32, write: Int32)
    /// Shared with the forwarder thread, which must not retain the lab (so that `deinit` runs).
    private let shared: Shared
    private let finished = DispatchSemaphore(value: 0)
    private let isShutDown = Mutex(false)

    private final class Shared: Sendable {
        let state: Mutex<State>
        init(_ state: State) { self.state = Mutex(state) }
    }

    private struct State: Sendable {
        var conditions: [[Conditions]]
        var partitioned: Set<[Int]> = []
        /// Scheduled heals (monotonic nanoseconds), carried out by the forwarder thread.
        var healAt: [[Int]: UInt64] = [:]
        var lastHeal: Double?
        var statistics: [[Statistics]]
        var unroutable = 0
        var stop = false
        var rng: SplitMix64
    }

    nonisolated(unsafe) private static var counter = 0
    private static let counterLock = Mutex(())

    /// Node `i`'s address, `10.77.0.<i+1>`.
    package func address(_ i: Int) -> String { "10.77.0.\(i + 1)" }

    /// The argv prefix that runs a program inside node `i`'s namespace.
    package func command(in i: Int) -> [String] { [Self.ipTool ?? "ip", "netns", "exec", namespaces[i]] }

    /// Creates `nodes` namespaces joined by links that all start with `conditions`.
    package init(nodes: Int, conditions: Conditions = Conditions(), seed: UInt64 = 1) throws {
        precondition(nodes >= 1 && nodes <= 250, "1…250 nodes")
        try Self.checkRequirements()
        Self.removeStaleLabs()
        let serial = Self.counterLock.withLock { _ in
            Self.counter += 1
            return Self.counter
        }
        let names = (0..<nodes).map { "plx-\(getpid())-\(serial)-\($0)" }
        var created: [String] = []
        var fds: [Int32] = []
        do {
            for (i, name) in names.enumerated() {
                try Self.ip(["netns", "add", name])
                created.append(name)
                try Self.ip(["-n", name, "link", "set", "lo", "up"])
                fds.append(try Self.openTUN(inNamespace: name))
                try Self.ip(["-n", name, "addr", "add", "10.77.0.\(i + 1)/24", "dev", Self.device])
                try Self.ip(["-n", name, "link", "set", Self.device, "up"])
            }
        } catch {
            for fd in fds { close(fd) }
            for name in created { _ = try? Self.ip(["netns", "del", name]) }
            throw error
        }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            for fd in fds { close(fd) }
            for name in created { _ = try? Self.ip(["netns", "del", name]) }
            throw Error(description: "pipe2: \(String(cString: strerror(errno)))")
        }
        for fd in pipeFDs { _ = fcntl(fd, F_SETFL, O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        namespaces = names
        tuns = fds
        wake = (pipeFDs[0], pipeFDs[1])
        shared = Shared(State(
            conditions: Array(repeating: Array(repeating: conditions, count: nodes), count: nodes),
            statistics: Array(repeating: Array(repeating: Statistics(), count: nodes), count: nodes),
            rng: SplitMix64(seed: seed)
        ))
        let (shared, tuns, wake, finished) = (shared, fds, pipeFDs[0], finished)
        let thread = Thread {
            Self.forward(tuns: tuns, wake: wake, shared: shared)
            finished.signal()
        }
        thread.name = "LinkEmulator"
        thread.start()
    }

    deinit { shutdown() }

    // MARK: Controls

    /// Sets the conditions of the link from node `a` to node `b` (one direction).
    package func set(_ conditions: Conditions, from a: Int, to b: Int) {
        shared.state.withLock { $0.conditions[a][b] = conditions }
    }

    /// Sets the conditions of every link, both directions.
    package func setAll(_ conditions: Conditions) {
        shared.state.withLock { s in
            for a in s.conditions.indices { for b in s.conditions.indices { s.conditions[a][b] = conditions } }
        }
    }

    /// Drops every packet between `a` and `b`, both ways. Returns the wall-clock time (Unix
    /// seconds) at which the partition began.
    @discardableResult
    package func partition(_ a: Int, _ b: Int) -> Double {
        shared.state.withLock { s in
            s.partitioned.insert([min(a, b), max(a, b)])
            s.healAt[[min(a, b), max(a, b)]] = nil
            return Self.wallClock()
        }
    }

    /// Drops every packet between `a` and `b`, both ways, for `duration`: the forwarder thread
    /// heals the link itself, on time even when the test's threads are starved (a test that sleeps
    /// on a busy cooperative pool wakes late). ``lastHeal`` then says when it happened. Returns
    /// the wall-clock time at which the partition began.
    @discardableResult
    package func partition(_ a: Int, _ b: Int, for duration: Duration) -> Double {
        let began = shared.state.withLock { s in
            s.partitioned.insert([min(a, b), max(a, b)])
            s.healAt[[min(a, b), max(a, b)]] = Self.monotonicNanoseconds() + Self.nanoseconds(duration)
            return Self.wallClock()
        }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        return began
    }

    /// The wall-clock time (Unix seconds) at which a partition last ended, nil before any did.
    package var lastHeal: Double? { shared.state.withLock { $0.lastHeal } }

    /// Cuts node `a` off from every other node.
    package func isolate(_ a: Int) {
        for b in namespaces.indices where b != a { partition(a, b) }
    }

    package func heal(_ a: Int, _ b: Int) {
        shared.state.withLock { s in
            s.healAt[[min(a, b), max(a, b)]] = nil
            if s.partitioned.remove([min(a, b), max(a, b)]) != nil { s.lastHeal = Self.wallClock() }
        }
    }

    /// Ends every partition.
    package func heal() {
        shared.state.withLock { s in
            s.healAt.removeAll()
            if !s.partitioned.isEmpty { s.lastHeal = Self.wallClock() }
            s.partitioned.removeAll()
        }
    }

    package func statistics(from a: Int, to b: Int) -> Statistics {
        shared.state.withLock { $0.statistics[a][b] }
    }

    /// Packets whose destination was not a node of the lab, or that were not IPv4.
    package var unroutable: Int { shared.state.withLock { $0.unroutable } }

    /// Runs `body` on a new thread inside node `i`'s network namespace and waits for it. Sockets
    /// it creates live in that namespace and stay there, usable from any thread afterwards — for
    /// in-process endpoints (a listener or a client in a namespace) without a subprocess.
    package func inNamespace<T>(_ i: Int, _ body: @escaping @Sendable () throws -> T) throws -> T {
        try Self.onThread(inNamespace: namespaces[i], body)
    }

    /// Runs `arguments` inside node `i`'s namespace and waits (at most `timeout` seconds, then
    /// kills it); returns its exit status (-1 on timeout) and its combined output.
    package func run(in i: Int, _ arguments: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        try Self.execute(command(in: i) + arguments, timeout: timeout)
    }

    /// Stops the forwarder, kills what still runs inside the namespaces, closes the TUN devices
    /// and deletes the namespaces. Idempotent.
    package func shutdown() {
        let already = isShutDown.withLock { done in
            defer { done = true }
            return done
        }
        if already { return }
        shared.state.withLock { $0.stop = true }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        finished.wait()
        for name in namespaces { Self.killProcesses(inNamespace: name) }
        for fd in tuns { close(fd) }
        close(wake.read)
        close(wake.write)
        for name in namespaces { _ = try? Self.ip(["netns", "del", name]) }
    }

    // MARK: The forwarder

    private struct Queued {
        var due: UInt64
        var packet: [UInt8]
    }

    /// The poll loop: reads every TUN, queues each packet on its link, writes out what is due.
    private static func forward(tuns: [Int32], wake: Int32, shared: Shared) {
        let n = tuns.count
        var queues = Array(repeating: Array(repeating: [Queued](), count: n), count: n)
        var heads = Array(repeating: Array(repeating: 0, count: n), count: n)
        var lastDue = Array(repeating: Array(repeating: UInt64(0), count: n), count: n)
        var linkFree = Array(repeating: Array(repeating: UInt64(0), count: n), count: n)
        var pollFDs = tuns.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        pollFDs.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            // Deliver what is due, and find the next due time.
            var now = Self.monotonicNanoseconds()
            var next = UInt64.max
            for a in 0..<n {
                for b in 0..<n where heads[a][b] < queues[a][b].count {
                    while heads[a][b] < queues[a][b].count, queues[a][b][heads[a][b]].due <= now {
                        let packet = queues[a][b][heads[a][b]].packet
                        _ = packet.withUnsafeBytes { write(tuns[b], $0.baseAddress, $0.count) }
                        heads[a][b] += 1
                    }
                    if heads[a][b] == queues[a][b].count {
                        queues[a][b].removeAll(keepingCapacity: true)
                        heads[a][b] = 0
                    } else {
                        if heads[a][b] > 1024 {
                            queues[a][b].removeFirst(heads[a][b])
                            heads[a][b] = 0
                        }
                        next = min(next, queues[a][b][heads[a][b]].due)
                    }
                }
            }
            let nextHeal: UInt64? = shared.state.withLock { s in
                for (pair, at) in s.healAt where at <= now {
                    s.healAt[pair] = nil
                    s.partitioned.remove(pair)
                    s.lastHeal = Self.wallClock()
                }
                return s.healAt.values.min()
            }
            if let nextHeal { next = min(next, nextHeal) }
            var timeout = timespec(tv_sec: 0, tv_nsec: 100_000_000)
            if next != .max {
                let wait = next > now ? next - now : 0
                if wait < 100_000_000 { timeout = timespec(tv_sec: 0, tv_nsec: Int(wait)) }
            }
            for i in pollFDs.indices { pollFDs[i].revents = 0 }
            let ready = Self.ppoll(&pollFDs, nfds_t(pollFDs.count), &timeout, nil)
            if ready < 0 && errno != EINTR { break }
            if shared.state.withLock({ $0.stop }) { break }
            guard ready > 0 else { continue }
            if pollFDs[n].revents & Int16(POLLIN) != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while drain.withUnsafeMutableBytes({ read(wake, $0.baseAddress, $0.count) }) > 0 {}
            }
            now = Self.monotonicNanoseconds()
            for a in 0..<n where pollFDs[a].revents & Int16(POLLIN) != 0 {
                // Drain this TUN (non-blocking) before polling again.
                for _ in 0..<256 {
                    let size = buffer.withUnsafeMutableBytes { read(tuns[a], $0.baseAddress, $0.count) }
                    if size <= 0 { break }
                    let packet = Array(buffer[0..<size])
                    guard let b = Self.destination(of: packet), b < n, b != a else {
                        shared.state.withLock { $0.unroutable += 1 }
                        continue
                    }
                    let due: UInt64? = shared.state.withLock { s in
                        if s.partitioned.contains([min(a, b), max(a, b)]) {
                            s.statistics[a][b].partitioned += 1
                            return nil
                        }
                        let c = s.conditions[a][b]
                        if c.loss > 0, Double(s.rng.next() >> 11) / Double(1 << 53) < c.loss {
                            s.statistics[a][b].lost += 1
                            return nil
                        }
                        var leaves = now
                        if let rate = c.rateBitsPerSecond {
                            let start = max(now, linkFree[a][b])
                            let backlog = Double(start - now) * Double(rate) / 8e9
                            if backlog + Double(size) > Double(c.queueBytes) {
                                s.statistics[a][b].queueFull += 1
                                return nil
                            }
                            leaves = start + UInt64(Double(size) * 8e9 / Double(rate))
                            linkFree[a][b] = leaves
                        }
                        var delay = Self.nanoseconds(c.delay)
                        let jitter = Self.nanoseconds(c.jitter)
                        if jitter > 0 {
                            let offset = Int64(s.rng.next() % (2 * jitter + 1)) - Int64(jitter)
                            delay = UInt64(max(0, Int64(delay) + offset))
                        }
                        s.statistics[a][b].forwarded += 1
                        s.statistics[a][b].forwardedBytes += size
                        return max(leaves + delay, lastDue[a][b])
                    }
                    guard let due else { continue }
                    lastDue[a][b] = due
                    if due <= now && heads[a][b] == queues[a][b].count {
                        _ = packet.withUnsafeBytes { write(tuns[b], $0.baseAddress, $0.count) }
                    } else {
                        queues[a][b].append(Queued(due: due, packet: packet))
                    }
                }
            }
        }
    }

    /// The node an IPv4 packet is addressed to (10.77.0.<k> → k-1), nil for anything else.
    private static func destination(of packet: [UInt8]) -> Int? {
        guard packet.count >= 20, packet[0] >> 4 == 4 else { return nil }
        guard packet[16] == 10, packet[17] == 77, packet[18] == 0, packet[19] >= 1 else { return nil }
        return Int(packet[19]) - 1
    }

    // MARK: Set-up helpers

    // Glibc declares setns and ppoll only under _GNU_SOURCE, which Swift's Glibc module does not
    // define; both are plain glibc symbols, so they are looked up once instead of adding a C target.
    private static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET
    private static let setns: @convention(c) (Int32, Int32) -> Int32 = symbol("setns")
    private static let ppoll: @convention(c) (UnsafeMutablePointer<pollfd>?, nfds_t, UnsafePointer<timespec>?, UnsafeRawPointer?) -> Int32 =
        symbol("ppoll")

    private static func symbol<F>(_ name: String) -> F {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { fatalError("glibc has no \(name)") }
        return unsafeBitCast(address, to: F.self)
    }

    private static func checkRequirements() throws {
        guard geteuid() == 0 else {
            throw Error(description: "LinkEmulator needs root (network namespaces, TUN devices); running as uid \(geteuid())")
        }
        guard ipTool != nil else {
            throw Error(description: "LinkEmulator needs iproute2's `ip` (Debian: apt-get install iproute2); not found in /usr/sbin, /sbin, /usr/bin, /bin")
        }
        var info = stat()
        if stat("/dev/net/tun", &info) != 0 {
            // Containers often lack the node even where the kernel has the driver: make it (10, 200).
            mkdir("/dev/net", 0o755)
            guard mknod("/dev/net/tun", S_IFCHR | 0o666, (10 << 8) | 200) == 0 else {
                throw Error(description: "LinkEmulator needs /dev/net/tun; it is missing and mknod c 10 200 failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Opens a TUN device `plx0` inside namespace `name`, from a thread that joins the namespace.
    private static func openTUN(inNamespace name: String) throws -> Int32 {
        try onThread(inNamespace: name) { try openTUNHere() }
    }

    /// Runs `body` on a new thread that has joined namespace `name` (`setns` moves only the
    /// calling thread), waits for it, and returns what it returned. The thread then exits.
    private static func onThread<T>(inNamespace name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ThreadResult<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            do {
                let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
                guard target >= 0 else { throw Error(description: "open /var/run/netns/\(name): \(String(cString: strerror(errno)))") }
                defer { close(target) }
                guard setns(target, cloneNewNet) == 0 else {
                    throw Error(description: "setns into \(name): \(String(cString: strerror(errno)))")
                }
                box.result = .success(try body())
            } catch {
                box.result = .failure(error)
            }
        }
        thread.start()
        done.wait()
        return try box.result!.get()
    }

    private static func openTUNHere() throws(Error) -> Int32 {
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Error(description: "open /dev/net/tun: \(String(cString: strerror(errno)))") }
        // struct ifreq: char ifr_name[16]; short ifr_flags; … (40 bytes on x86-64 and arm64).
        var request = [UInt8](repeating: 0, count: 40)
        for (i, byte) in device.utf8.enumerated() { request[i] = byte }
        let flags: UInt16 = 0x0001 | 0x1000  // IFF_TUN | IFF_NO_PI
        request[16] = UInt8(flags & 0xff)
        request[17] = UInt8(flags >> 8)
        let tunsetiff: UInt = 0x4004_54ca  // _IOW('T', 202, int)
        let rc = request.withUnsafeMutableBytes { ioctl(fd, tunsetiff, $0.baseAddress!) }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Error(description: "TUNSETIFF \(device): \(message)")
        }
        return fd
    }

    @discardableResult
    private static func ip(_ arguments: [String]) throws -> String {
        let (status, output) = try execute([ipTool ?? "ip"] + arguments, timeout: 10)
        guard status == 0 else {
            throw Error(description: "`ip \(arguments.joined(separator: " "))` failed (\(status)): \(output)")
        }
        return output
    }

    private static func execute(_ argv: [String], timeout: TimeInterval) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let path = NSTemporaryDirectory() + "plx-ip-\(getpid())-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(2_000) }
        var timedOut = false
        if process.isRunning {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return (timedOut ? -1 : process.terminationStatus, output)
    }

    private static func killProcesses(inNamespace name: String) {
        for _ in 0..<3 {
            guard let output = try? ip(["netns", "pids", name]) else { return }
            let pids = output.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(50_000)
        }
    }

    /// Deletes `plx-<pid>-…` namespaces whose process is gone (a test process that crashed).
    private static func removeStaleLabs() {
        guard let list = try? ip(["netns", "list"]) else { return }
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count == 4, parts[0] == "plx", let pid = pid_t(parts[1]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                killProcesses(inNamespace: name)
                _ = try? ip(["netns", "del", name])
            }
        }
    }

    private static func wallClock() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    private static func nanoseconds(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto / 1_000_000_000))
    }
}

/// A result handed from a thread to the one waiting for it (the semaphore orders the accesses).
private final class ThreadResult<T>: @unchecked Sendable {
    var result: Result<T, any Swift.Error>?
}

/// Sebastiano Vigna's SplitMix64: the emulator's seeded loss and jitter.
struct SplitMix64: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

import Foundation
import PlexusTestKit
import Testing

/// The test kit's packet-level emulator, checked with in-process sockets inside its namespaces:
/// its delay, its loss, its partition and its teardown. Needs root and /dev/net/tun (fails, with
/// the emulator's message, where they are missing).
@Suite(.serialized) struct LinkEmulatorTests {
    /// A TCP round trip through 5 ms each way takes 10 ms (plus well under a millisecond), and a
    /// partition stops a connect until it heals.
    @Test func delayAndPartition() throws {
        let lab = try LinkEmulator(nodes: 2, conditions: .init(delay: .milliseconds(5)))
        defer { lab.shutdown() }
        let listener = try lab.inNamespace(1) { try Sockets.listen(on: "10.77.0.2", port: 9100) }
        defer { close(listener) }
        let client = try lab.inNamespace(0) { try Sockets.connect(to: "10.77.0.2", port: 9100, timeout: 2) }
        defer { close(client) }
        let server = accept(listener, nil, nil)
        #expect(server >= 0)
        defer { close(server) }
        var rtts: [Double] = []
        for _ in 0..<20 {
            var byte: UInt8 = 7
            let start = Date()
            #expect(send(client, &byte, 1, 0) == 1)
            #expect(recv(server, &byte, 1, 0) == 1)
            #expect(send(server, &byte, 1, 0) == 1)
            #expect(recv(client, &byte, 1, 0) == 1)
            rtts.append(Date().timeIntervalSince(start))
        }
        let median = rtts.sorted()[10]
        print("link emulator: TCP round trip through 5 ms each way, median \(median * 1000) ms, min \(rtts.min()! * 1000) ms")
        #expect(median >= 0.010 && median < 0.015, "median round trip \(median) s through 5 ms each way")

        let began = lab.partition(0, 1, for: .milliseconds(1500))
        #expect(throws: (any Error).self) { try lab.inNamespace(0) { try Sockets.connect(to: "10.77.0.2", port: 9100, timeout: 1) } }
        #expect(lab.statistics(from: 0, to: 1).partitioned > 0)
        let reconnected = try lab.inNamespace(0) { try Sockets.connect(to: "10.77.0.2", port: 9100, timeout: 5) }
        close(reconnected)
        let healed = try #require(lab.lastHeal)
        #expect(abs(healed - began - 1.5) < 0.1, "healed \(healed - began) s after the cut, asked for 1.5 s")
    }

    /// 50 % loss on one direction drops about half of 2,000 datagrams; what the emulator counts
    /// as forwarded is exactly what arrives. The other direction is untouched.
    @Test func seededLoss() throws {
        let lab = try LinkEmulator(nodes: 2, seed: 7)
        defer { lab.shutdown() }
        lab.set(.init(loss: 0.5), from: 0, to: 1)
        let receiver = try lab.inNamespace(1) { try Sockets.udp(boundTo: "10.77.0.2", port: 9200) }
        defer { close(receiver) }
        let sender = try lab.inNamespace(0) { try Sockets.udp(boundTo: "10.77.0.1", port: 9201) }
        defer { close(sender) }
        var target = Sockets.address("10.77.0.2", 9200)
        for i in 0..<2000 {
            var payload = UInt32(i)
            _ = withUnsafePointer(to: &target) { t in
                t.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(sender, &payload, 4, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if i % 100 == 99 { usleep(2_000) }  // stay far below the receive buffer
        }
        usleep(200_000)
        var received = 0
        var payload: UInt32 = 0
        while recv(receiver, &payload, 4, Int32(MSG_DONTWAIT)) == 4 { received += 1 }
        let statistics = lab.statistics(from: 0, to: 1)
        print("link emulator: 50 % loss, 2000 datagrams: \(statistics.lost) lost, \(received) received")
        #expect(statistics.lost + statistics.forwarded == 2000, "\(statistics)")
        #expect((900...1100).contains(statistics.lost), "\(statistics)")
        #expect(received == statistics.forwarded, "received \(received), \(statistics)")
        #expect(lab.statistics(from: 1, to: 0).lost == 0)
    }

    /// Teardown deletes the namespaces and kills what still runs inside them.
    @Test func shutdownRemovesNamespacesAndProcesses() throws {
        let lab = try LinkEmulator(nodes: 2)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: lab.command(in: 1)[0])
        sleeper.arguments = Array(lab.command(in: 1).dropFirst()) + ["sleep", "60"]
        try sleeper.run()
        usleep(300_000)
        lab.shutdown()
        let deadline = Date().addingTimeInterval(5)
        while sleeper.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!sleeper.isRunning, "the process inside the namespace was killed")
        if sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) }
        let list = Process()
        list.executableURL = URL(fileURLWithPath: LinkEmulator.ipTool!)
        list.arguments = ["netns", "list"]
        let pipe = Pipe()
        list.standardOutput = pipe
        try list.run()
        list.waitUntilExit()
        let names = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        for name in lab.namespaces { #expect(!names.contains(name), "\(name) deleted") }
    }
}

/// Blocking IPv4 sockets, for the emulator tests.
enum Sockets {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func address(_ host: String, _ port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr(host)
        return a
    }

    static func bind(_ fd: Int32, _ host: String, _ port: Int) throws {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = address(host, port)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
        guard ok else {
            close(fd)
            throw Failure(description: "bind \(host):\(port): \(String(cString: strerror(errno)))")
        }
    }

    static func listen(on host: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try bind(fd, host, port)
        guard Glibc.listen(fd, 16) == 0 else { throw Failure(description: "listen: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func udp(boundTo host: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var size: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        try bind(fd, host, port)
        return fd
    }

    /// Connects with TCP_NODELAY, giving up after `timeout` seconds (SO_SNDTIMEO bounds connect).
    static func connect(to host: String, port: Int, timeout: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var a = address(host, port)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
        guard ok else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect \(host):\(port): \(message)")
        }
        return fd
    }
}

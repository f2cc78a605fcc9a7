import Testing

import PlexusNode

/// The demo and the real-process tests draw their listening ports here; a port in the kernel's
/// ephemeral range can be taken at any moment by an outgoing connection's local end.
@Suite struct LocalPortsTests {
    @Test func rangesAreFreeAndBelowTheEphemeralRange() {
        let top = LocalPorts.ephemeralStart()
        #expect(top > 1024 && top <= 65535)
        for count in [1, 8, 32] {
            let base = LocalPorts.freeRange(count: count)
            #expect(base != nil, "no \(count) free ports")
            if let base {
                #expect(base >= 1024 && base + count <= top, "\(base)..<\(base + count) vs ephemeral start \(top)")
                #expect((base..<base + count).allSatisfy(LocalPorts.isFree))
            }
        }
    }

    @Test func impossibleCountsAreNil() {
        #expect(LocalPorts.freeRange(count: 0) == nil)
        #expect(LocalPorts.freeRange(count: 70_000) == nil)
    }
}

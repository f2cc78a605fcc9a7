/// The trailer of the files a node keeps beside its state (`<peer>.state`, `<peer>.statistics`):
/// version 2 ends in a keyed BLAKE2b-256 MAC under the node-local state key, version 1 (older
/// builds) in a plain BLAKE2b-256 checksum, which anyone can recompute — so a node reads version 1
/// only while it upgrades (it had no state key before this start), never as a downgrade.
public enum LocalFileMAC {
    /// The 32-byte MAC of `body` under `key`.
    public static func mac(_ body: [UInt8], key: SecureBytes) -> [UInt8] {
        var h = BLAKE2b(key: key)
        h.update(body)
        return h.finalize()
    }

    /// `nil` when `trailer` authenticates `body` for a file of `version`; otherwise why not, as a
    /// sentence about `what` ("state file", "statistics file").
    public static func problem(
        version: UInt8, body: [UInt8], trailer: [UInt8], key: SecureBytes?, acceptChecksum: Bool, what: String,
        authenticatedVersions: ClosedRange<UInt8> = 2...2
    ) -> String? {
        switch version {
        case authenticatedVersions:  // 2, and 3 for a state file that also keeps peer scoring
            guard let key else {
                return "\(what) is authenticated by a state key, and the state key (<peer>.statekey) is missing from the state directory"
            }
            guard constantTimeEquals(mac(body, key: key), trailer) else {
                return "\(what) does not authenticate under this node's state key (torn, altered, or another node's)"
            }
            return nil
        case 1:
            guard acceptChecksum else {
                return "\(what) of version 1 (a plain checksum) where this node writes authenticated ones: a downgraded or forged file"
            }
            guard BLAKE2b.hash256(body) == trailer else { return "\(what) checksum does not match (torn or altered file)" }
            return nil
        default:
            return "not a Plexus \(what) of version 1…\(authenticatedVersions.upperBound)"
        }
    }
}

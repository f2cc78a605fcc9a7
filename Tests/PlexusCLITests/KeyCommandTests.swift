import Foundation
import Testing

@Suite struct KeyCommandTests {
    @Test func keygenWritesA0600FileAndPubkeyAgrees() throws {
        let dir = temporaryDirectory("keygen")
        let path = dir + "/node.key"
        let generated = try plexus(["keygen", "--out", path])
        #expect(generated.status == 0, "\(generated.stderr)")
        let publicKey = generated.stdout.trimmingCharacters(in: .newlines)
        #expect(publicKey.count == 44)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
        #expect(mode == 0o600)
        let fromFile = try plexus(["pubkey", "--key", path])
        #expect(fromFile.status == 0 && fromFile.stdout == publicKey + "\n")
        let privateKey = try String(contentsOfFile: path, encoding: .utf8)
        let fromStdin = try plexus(["pubkey"], input: privateKey)
        #expect(fromStdin.stdout == publicKey + "\n")
        // The private key never shows up on either stream.
        #expect(!generated.stdout.contains(privateKey.trimmingCharacters(in: .newlines)))
    }

    @Test func keygenRefusesToOverwrite() throws {
        let dir = temporaryDirectory("keygen")
        let path = dir + "/node.key"
        #expect(try plexus(["keygen", "--out", path]).status == 0)
        let again = try plexus(["keygen", "--out", path])
        #expect(again.status != 0)
        #expect(again.stderr.contains("\(path): file exists; pass --force to overwrite it"))
        #expect(try plexus(["keygen", "--out", path, "--force"]).status == 0)
    }

    @Test func keygenToStdoutPipesIntoPubkey() throws {
        let privateKey = try plexus(["keygen"]).stdout
        #expect(privateKey.count == 45)
        let publicKey = try plexus(["pubkey"], input: privateKey)
        #expect(publicKey.status == 0 && publicKey.stdout.count == 45)
    }

    @Test func pubkeyOnGarbageSaysWhatWasExpected() throws {
        let result = try plexus(["pubkey"], input: "not a key\n")
        #expect(result.status != 0)
        #expect(result.stderr.contains("expected 44 base64 characters (a 32-byte Ed25519 private key), found 9 characters"))
    }

    @Test func looseKeyFilePermissionsWarn() throws {
        let dir = temporaryDirectory("keygen")
        let path = dir + "/node.key"
        #expect(try plexus(["keygen", "--out", path]).status == 0)
        chmod(path, 0o644)
        let result = try plexus(["pubkey", "--key", path])
        #expect(result.status == 0)
        #expect(result.stderr.contains("run 'chmod 600 \(path)'"))
    }
}

import Foundation
import PlexusCrypto
import Testing

@Suite struct KeyFileTests {
    let directory: String = {
        let path = NSTemporaryDirectory() + "plexus-keyfile-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    @Test func writeCreates0600AndReadsBackTheSameKey() throws {
        let path = directory + "/node.key"
        let key = Ed25519.PrivateKey()
        try KeyFile.write(key, to: path)
        #expect(try mode(path) == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.count == 45 && text.hasSuffix("\n"))
        let loaded = try KeyFile.read(from: path)
        #expect(loaded.key.publicKey == key.publicKey)
        #expect(loaded.key.rawRepresentation == key.rawRepresentation)
        #expect(loaded.warning == nil)
    }

    @Test func refusesToOverwriteWithoutForceAndTightensModeWithIt() throws {
        let path = directory + "/node.key"
        try KeyFile.write(Ed25519.PrivateKey(), to: path)
        let error = #expect(throws: KeyFile.Error.self) { try KeyFile.write(Ed25519.PrivateKey(), to: path) }
        #expect(error?.description == "\(path): file exists; pass --force to overwrite it")
        chmod(path, 0o644)
        let replacement = Ed25519.PrivateKey()
        try KeyFile.write(replacement, to: path, overwrite: true)
        #expect(try mode(path) == 0o600)
        #expect(try KeyFile.read(from: path).key.publicKey == replacement.publicKey)
    }

    @Test func warnsAboutGroupOrWorldAccess() throws {
        let path = directory + "/loose.key"
        try KeyFile.write(Ed25519.PrivateKey(), to: path)
        chmod(path, 0o640)
        let warning = try KeyFile.read(from: path).warning
        #expect(warning?.description == "warning: private key file '\(path)' is accessible by group or others (mode 640); run 'chmod 600 \(path)'")
    }

    @Test(arguments: [
        ("", "file is empty; expected one line of 44 base64 characters (a 32-byte Ed25519 private key)"),
        ("\n\n", "file is empty; expected one line of 44 base64 characters (a 32-byte Ed25519 private key)"),
        ("c2VjcmV0", "expected 44 base64 characters (a 32-byte Ed25519 private key), found 8 characters"),
        ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "not valid base64 of a 32-byte Ed25519 private key"),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not valid base64 of a 32-byte Ed25519 private key"),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAAAA", "expected 44 base64 characters (a 32-byte Ed25519 private key), found 49 characters"),
        (String(repeating: "A", count: 300), "file is larger than 256 bytes; expected one line of 44 base64 characters"),
    ])
    func malformedFilesNameTheFileAndWhatWasExpected(contents: String, reason: String) throws {
        let path = directory + "/bad.key"
        _ = FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: 0o600])
        let error = #expect(throws: KeyFile.Error.self) { try KeyFile.read(from: path) }
        #expect(error?.description == "\(path): \(reason)")
        // What was read never appears in the message.
        if contents.count >= 8 { #expect(error?.description.contains(contents) == false) }
    }

    @Test func missingFileAndDirectory() throws {
        let missing = #expect(throws: KeyFile.Error.self) { try KeyFile.read(from: directory + "/absent.key") }
        #expect(missing?.description == "\(directory)/absent.key: cannot open the key file: No such file or directory")
        let dir = #expect(throws: KeyFile.Error.self) { try KeyFile.read(from: directory) }
        #expect(dir?.description == "\(directory): not a regular file or a pipe")
    }

    @Test func acceptsSurroundingWhitespaceAndCRLF() throws {
        let key = Ed25519.PrivateKey()
        let path = directory + "/crlf.key"
        try KeyFile.write(key, to: path)
        let line = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .newlines)
        try Data("  \(line)\r\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try KeyFile.read(from: path).key.publicKey == key.publicKey)
    }
}

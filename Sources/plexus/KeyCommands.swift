import ArgumentParser
import PlexusCrypto

struct KeyGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate an Ed25519 private key and print its public key.",
        discussion: """
            The private key is written to --out as one line of standard base64 (44 characters), \
            in a file created with mode 0600. The public key — the value for `public_key` in the \
            topology file — is printed on standard output.

            Without --out, the private key is written to standard output instead, like \
            `wg genkey`; pipe it to `plexus pubkey` to get the public key.
            """
    )

    @Option(name: .shortAndLong, help: "Write the private key to this file (created 0600).", completion: .file())
    var out: String?

    @Flag(help: "Overwrite --out if it exists.")
    var force = false

    func run() throws {
        let key = Ed25519.PrivateKey()
        if let out {
            do {
                try KeyFile.write(key, to: out, overwrite: force)
            } catch {
                throw CLIError(error.description)
            }
            print(key.publicKey.base64)
        } else {
            if StandardStream.output.isTerminal {
                StandardStream.error.write("warning: writing a private key to a terminal; use --out FILE or a pipe\n")
            }
            KeyFile.encodeLine(key).withUnsafeBytes { StandardStream.output.write($0) }
        }
    }
}

struct PubKey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pubkey",
        abstract: "Print the public key of a private key read from standard input or --key.",
        discussion: "Example: plexus keygen | tee node.key | plexus pubkey"
    )

    @Option(name: .shortAndLong, help: "Read the private key from this file instead of standard input.", completion: .file())
    var key: String?

    func run() throws {
        let path = key ?? "/dev/stdin"
        let loaded: (key: Ed25519.PrivateKey, warning: KeyFile.Warning?)
        do {
            loaded = try KeyFile.read(from: path)
        } catch {
            throw CLIError(error.description)
        }
        if let warning = loaded.warning, key != nil {
            StandardStream.error.write(warning.description + "\n")
        }
        print(loaded.key.publicKey.base64)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Private key files, in the spirit of WireGuard's `wg genkey`: one line holding the 32-byte
/// Ed25519 seed in standard base64 (44 characters), created with mode 0600.
///
/// Reading never copies the secret outside ``SecureBytes``: the file's bytes are read into a
/// buffer that is wiped before returning, whether the key parsed or not.
public enum KeyFile {
    /// The largest key file read, in bytes: 44 characters, a newline, and room for a CRLF or spaces.
    static let maximumByteCount = 256

    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// What loading a key found worth telling the user, without failing.
    public struct Warning: Equatable, Sendable, CustomStringConvertible {
        public let path: String
        public let mode: UInt32
        public var description: String {
            "warning: private key file '\(path)' is accessible by group or others (mode \(String(mode & 0o777, radix: 8))); run 'chmod 600 \(path)'"
        }
    }

    /// Writes `key`'s seed to a new file at `path`, created 0600.
    ///
    /// - Parameter overwrite: replace an existing file (its mode is reset to 0600).
    /// - Throws: ``Error`` when the file exists and `overwrite` is false, or cannot be written.
    public static func write(_ key: Ed25519.PrivateKey, to path: String, overwrite: Bool = false) throws(Error) {
        var flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW
        flags |= overwrite ? O_TRUNC : O_EXCL
        let fd = open(path, flags, mode_t(0o600))
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw Error(path: path, reason: "file exists; pass --force to overwrite it")
            }
            throw Error(path: path, reason: "cannot create the key file: \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        // An existing file keeps its mode under O_TRUNC: tighten it.
        guard fchmod(fd, 0o600) == 0 else {
            throw Error(path: path, reason: "cannot set mode 0600: \(String(cString: strerror(errno)))")
        }
        let line = encodeLine(key)
        let ok = line.withUnsafeBytes { bytes -> Bool in
            writeAll(fd, bytes)
        }
        guard ok, fsync(fd) == 0 else {
            throw Error(path: path, reason: "cannot write the key file: \(String(cString: strerror(errno)))")
        }
    }

    /// The key file's text, base64 seed and a newline, in secure storage.
    public static func encodeLine(_ key: Ed25519.PrivateKey) -> SecureBytes {
        key.rawRepresentation.withUnsafeBytes { seed in
            // sodium_bin2base64 writes 44 characters and a NUL; we replace the NUL by '\n'.
            SecureBytes(count: 45) { out in
                _ = Base64.encodeSecret(seed, into: out)
                out[44] = 0x0A
            }
        }
    }

    /// Reads and parses the key file at `path`.
    ///
    /// - Returns: the key, and a warning when the file is readable or writable by group or others.
    public static func read(from path: String) throws(Error) -> (key: Ed25519.PrivateKey, warning: Warning?) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw Error(path: path, reason: "cannot open the key file: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw Error(path: path, reason: "cannot stat the key file: \(String(cString: strerror(errno)))")
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFIFO || type == S_IFCHR || type == S_IFSOCK else {
            throw Error(path: path, reason: "not a regular file or a pipe")
        }
        // Group and other bits only mean something for a file on disk, not for a pipe.
        let warning =
            type == S_IFREG && (info.st_mode & 0o077) != 0 ? Warning(path: path, mode: UInt32(info.st_mode)) : nil
        var length = 0
        let contents = SecureBytes(count: maximumByteCount + 1) { buffer in
            while length < buffer.count {
                let n = Glibc.read(fd, buffer.baseAddress! + length, buffer.count - length)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                length += n
            }
        }
        do {
            return (try parse(contents, length: length), warning)
        } catch {
            throw Error(path: path, reason: error.reason)
        }
    }

    /// Parses key-file text held in `contents[0..<length]`.
    public static func parse(_ contents: SecureBytes, length: Int) throws(ParseError) -> Ed25519.PrivateKey {
        guard length <= maximumByteCount else {
            throw ParseError(reason: "file is larger than \(maximumByteCount) bytes; expected one line of 44 base64 characters")
        }
        let result = contents.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> Result<Ed25519.PrivateKey, ParseError> in
            var start = 0
            var end = length
            while start < end, isSpace(bytes[start]) { start += 1 }
            while end > start, isSpace(bytes[end - 1]) { end -= 1 }
            guard end > start else {
                return .failure(ParseError(reason: "file is empty; expected one line of 44 base64 characters (a 32-byte Ed25519 private key)"))
            }
            let text = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            guard text.count == 44 else {
                return .failure(ParseError(reason: "expected 44 base64 characters (a 32-byte Ed25519 private key), found \(text.count) characters"))
            }
            var decoded: Int? = nil
            let scratch = SecureBytes(count: Ed25519.seedByteCount + 3) { out in
                decoded = Base64.decodeSecret(text, into: out)
            }
            guard decoded == Ed25519.seedByteCount else {
                return .failure(ParseError(reason: "not valid base64 of a 32-byte Ed25519 private key"))
            }
            let seed = scratch.withUnsafeBytes {
                SecureBytes(copying: UnsafeRawBufferPointer(rebasing: $0[0..<Ed25519.seedByteCount]))
            }
            return .success(try! Ed25519.PrivateKey(rawRepresentation: seed))
        }
        return try result.get()
    }

    public struct ParseError: Swift.Error, Equatable, Sendable {
        public let reason: String
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }
}

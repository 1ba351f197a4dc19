#if canImport(Glibc)
import Glibc
#endif

/// A signal that asks a process to stop gracefully.
public struct ShutdownSignal: Sendable, Hashable, CustomStringConvertible {
    /// The signal number.
    public let number: Int32
    /// Its name as logged (`SIGTERM`).
    public let name: String

    /// SIGTERM: what `kill`, systemd and Kubernetes send to stop a process.
    public static let terminate = ShutdownSignal(number: SIGTERM, name: "SIGTERM")
    /// SIGINT: Ctrl-C in a terminal.
    public static let interrupt = ShutdownSignal(number: SIGINT, name: "SIGINT")

    /// A signal by number, e.g. `ShutdownSignal(number: SIGHUP, name: "SIGHUP")`.
    public init(number: Int32, name: String) {
        self.number = number
        self.name = name
    }

    public var description: String { name }
}

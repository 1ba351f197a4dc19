import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The default ``LogSink``: one logfmt or JSON line per event, `time`, `level` and `event` first.
///
/// ```
/// time=2026-11-29T22:01:20.123Z level=info event=started connector=orders slot=tailgate
/// {"time":"2026-11-29T22:01:20.123Z","level":"info","event":"started","connector":"orders","slot":"tailgate"}
/// ```
public struct LineLogSink: LogSink {
    /// The line format.
    public var format: EventLogger.Format
    private let write: @Sendable (String) -> Void

    /// Creates a sink writing lines to standard error, or passing each line (without a newline) to `write`.
    ///
    /// - Parameters:
    ///   - format: logfmt (default) or JSON.
    ///   - write: Receives each line; by default it goes to standard error with one `write(2)`.
    public init(format: EventLogger.Format = .logfmt, write: @escaping @Sendable (String) -> Void = LineLogSink.standardError) {
        self.format = format
        self.write = write
    }

    public func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field]) {
        let time = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        write(format.line([("time", time), ("level", level.description), ("event", event)] + fields))
    }

    /// Writes `line` and a newline to standard error in one `write(2)`, so lines from several threads do not
    /// interleave. A failed write (a closed pipe) is dropped: logging never stops the process.
    public static let standardError: @Sendable (String) -> Void = { line in
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines, samples with
/// escaped label values, histograms.
///
/// ```swift
/// var text = PrometheusText()
/// text.counter("tailgate_reconnects_total", help: "Replication reconnects.", labels: [("connector", name)], reconnects)
/// text.family("tailgate_events_delivered_total", .counter, help: "Outbox events acknowledged by Kafka.")
/// for (topic, count) in delivered { text.sample("tailgate_events_delivered_total", labels: [("connector", name), ("topic", topic)], count) }
/// return text.output
/// ```
///
/// Call ``family(_:_:help:)`` once per metric name, then write all of its samples before the next family: the
/// format requires a family's samples to be contiguous.
public struct PrometheusText: Sendable {
    /// A metric family's type, as written in its `# TYPE` line.
    public enum MetricType: String, Sendable {
        /// Only goes up (resets on restart); the name ends in `_total`.
        case counter
        /// Goes up and down.
        case gauge
        /// Bucketed observations: `_bucket{le=…}`, `_sum`, `_count`.
        case histogram
        /// No type information.
        case untyped
    }

    /// The text written so far; every line ends with a newline.
    public private(set) var output = ""

    /// Creates an empty exposition.
    public init() {}

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    ///
    /// - Parameters:
    ///   - name: The metric name (`tailgate_streaming`); characters outside `[a-zA-Z0-9_:]` become `_`.
    ///   - type: The family's type.
    ///   - help: One sentence saying what is measured; backslashes and newlines are escaped.
    public mutating func family(_ name: String, _ type: MetricType, help: String) {
        let name = Self.metricName(name)
        output += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type.rawValue)\n"
    }

    /// Writes one sample of the current family.
    ///
    /// - Parameters:
    ///   - name: The sample's name (the family's name, or `…_bucket`/`_sum`/`_count` for a histogram).
    ///   - labels: Label names and values, in order; values are escaped (`\\`, `\"`, `\n`).
    ///   - value: The value; integers are written exactly.
    public mutating func sample(_ name: String, labels: [(String, String)] = [], _ value: some BinaryInteger) {
        writeSample(name, labels, String(value))
    }

    /// Writes one sample of the current family; infinities are `+Inf`/`-Inf`, not-a-number is `NaN`.
    public mutating func sample(_ name: String, labels: [(String, String)] = [], _ value: Double) {
        writeSample(name, labels, Self.format(value))
    }

    /// A counter family with one sample.
    public mutating func counter(_ name: String, help: String, labels: [(String, String)] = [], _ value: some BinaryInteger) {
        family(name, .counter, help: help)
        sample(name, labels: labels, value)
    }

    /// A gauge family with one sample.
    public mutating func gauge(_ name: String, help: String, labels: [(String, String)] = [], _ value: some BinaryInteger) {
        family(name, .gauge, help: help)
        sample(name, labels: labels, value)
    }

    /// A gauge family with one sample.
    public mutating func gauge(_ name: String, help: String, labels: [(String, String)] = [], _ value: Double) {
        family(name, .gauge, help: help)
        sample(name, labels: labels, value)
    }

    /// A histogram family with one series.
    public mutating func histogram(_ name: String, help: String, labels: [(String, String)] = [], _ histogram: PrometheusHistogram) {
        family(name, .histogram, help: help)
        histogramSeries(name, labels: labels, histogram)
    }

    /// One series of the current histogram family: cumulative `_bucket` samples up to `le="+Inf"`, `_sum` and
    /// `_count`. Call it once per label set after ``family(_:_:help:)`` with type `.histogram`.
    public mutating func histogramSeries(_ name: String, labels: [(String, String)] = [], _ histogram: PrometheusHistogram) {
        var cumulative = 0
        for (index, bound) in histogram.upperBounds.enumerated() {
            cumulative += histogram.bucketCounts[index]
            writeSample(name + "_bucket", labels + [("le", Self.format(bound))], String(cumulative))
        }
        writeSample(name + "_bucket", labels + [("le", "+Inf")], String(histogram.count))
        writeSample(name + "_sum", labels, Self.format(histogram.sum))
        writeSample(name + "_count", labels, String(histogram.count))
    }

    private mutating func writeSample(_ name: String, _ labels: [(String, String)], _ value: String) {
        output += Self.metricName(name)
        if !labels.isEmpty {
            output += "{" + labels.map { "\(Self.labelName($0.0))=\"\(Self.escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
        }
        output += " \(value)\n"
    }

    /// A label value with `\`, `"` and newlines escaped, as the format requires.
    public static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(value.unicodeScalars.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// HELP text with `\` and newlines escaped (quotes stay as they are there).
    static func escapeHelp(_ help: String) -> String {
        var out = ""
        for scalar in help.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A float as Prometheus parses it.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return value.description
    }

    /// Names come from code; a character outside the allowed set becomes `_` rather than breaking the exposition.
    static func metricName(_ name: String) -> String {
        sanitize(name, allowColon: true)
    }

    static func labelName(_ name: String) -> String {
        sanitize(name, allowColon: false)
    }

    private static func sanitize(_ name: String, allowColon: Bool) -> String {
        var out = ""
        for (index, scalar) in name.unicodeScalars.enumerated() {
            let allowed = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || scalar == "_"
                || (allowColon && scalar == ":") || (index > 0 && ("0"..."9").contains(scalar))
            out.unicodeScalars.append(allowed ? scalar : "_")
        }
        return out.isEmpty ? "_" : out
    }
}

import Observability
import TestSupport
import Testing

@Suite struct PrometheusTextTests {
    @Test func labelValuesAndHelpAreEscaped() {
        var text = PrometheusText()
        text.family("t_total", .counter, help: "Help with \\ and\nnewline and \"quotes\".")
        text.sample("t_total", labels: [("a", #"back\slash"#), ("b", "quo\"te"), ("c", "new\nline"), ("d", "tab\tand é")], 3)
        text.gauge("bad-name.x", help: "h", labels: [("0bad label", "v")], 1.5)
        #expect(text.output == """
            # HELP t_total Help with \\\\ and\\nnewline and "quotes".
            # TYPE t_total counter
            t_total{a="back\\\\slash",b="quo\\"te",c="new\\nline",d="tab\tand é"} 3
            # HELP bad_name_x h
            # TYPE bad_name_x gauge
            bad_name_x{_bad_label="v"} 1.5

            """)
    }

    @Test func histogramsAreCumulativeWithInfSumAndCount() {
        var histogram = PrometheusHistogram(upperBounds: [1, 0.1, 1])
        for value in [0.05, 0.1, 0.5, 7, .infinity] { histogram.observe(value) }
        var text = PrometheusText()
        text.histogram("h_seconds", help: "h", labels: [("x", "y")], histogram)
        #expect(text.output == """
            # HELP h_seconds h
            # TYPE h_seconds histogram
            h_seconds_bucket{x="y",le="0.1"} 2
            h_seconds_bucket{x="y",le="1.0"} 3
            h_seconds_bucket{x="y",le="+Inf"} 5
            h_seconds_sum{x="y"} +Inf
            h_seconds_count{x="y"} 5

            """)
    }

    /// Prometheus's own parser and linter accept what the writer produces from hostile label values.
    @Test func promtoolAcceptsTheOutput() async throws {
        var text = PrometheusText()
        text.family("tailgate_test_total", .counter, help: "A counter with \"odd\" labels\nacross lines.")
        for value in ["plain", #"back\slash"#, "quo\"te", "new\nline", "", "{}=,", "é✓"] {
            text.sample("tailgate_test_total", labels: [("value", value)], 1)
        }
        var histogram = PrometheusHistogram(upperBounds: PrometheusHistogram.latencySeconds)
        histogram.observe(0.003)
        text.histogram("tailgate_test_seconds", help: "A histogram.", labels: [("value", "a\"b")], histogram)
        text.gauge("tailgate_test_ratio", help: "Not a number.", .nan)
        let (status, output) = try await promtoolCheckMetrics(text.output)
        #expect(status == 0, "\(output)\n\(text.output)")
    }
}

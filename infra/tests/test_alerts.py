"""The alert rules (infra/alerts/prometheus-rules.json, which infra/modules/alerts.bicep
deploys as Azure Monitor Prometheus rule groups): every metric they read is documented in
docs/METRICS.md, so renaming a metric cannot silently disarm an alert; and each rule carries
what the Bicep module maps (a severity Azure accepts, a duration it can turn into ISO 8601).
`promtool check rules` validates the file's syntax (scripts/check-infra runs it).

Run by scripts/check-infra: python -m unittest discover -s infra/tests
"""

import json
import re
import unittest
from pathlib import Path

INFRA = Path(__file__).resolve().parent.parent
RULES = INFRA / "alerts" / "prometheus-rules.json"
METRICS = INFRA.parent / "docs" / "METRICS.md"

# PromQL words that look like metric names but are functions, keywords or label names.
NOT_METRICS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "and", "or", "unless", "on", "ignoring", "group_left",
    "group_right", "bool", "offset",
}


def metrics_in(expression):
    """The metric names an expression reads: identifiers outside label matchers, durations
    and strings that are not PromQL words, grouping labels or numbers."""
    text = re.sub(r'"[^"]*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text) if w not in NOT_METRICS}


def documented_metrics():
    # Every `name` in the first column of a table row.
    return set(re.findall(r"^\| `([a-z_:][a-z0-9_:]*)`", METRICS.read_text(), re.MULTILINE))


class AlertRules(unittest.TestCase):
    def setUp(self):
        self.rules = [r for g in json.loads(RULES.read_text())["groups"] for r in g["rules"]]

    def test_every_metric_the_rules_read_is_documented(self):
        documented = documented_metrics()
        self.assertIn("fabrikam_queue_messages_settled_total", documented)
        for rule in self.rules:
            with self.subTest(alert=rule["alert"]):
                used = metrics_in(rule["expr"])
                self.assertTrue(used, rule["expr"])
                self.assertLessEqual(used, documented, f"not in docs/METRICS.md: {used - documented}")

    def test_the_metric_check_catches_an_undocumented_metric(self):
        used = metrics_in('sum by (function) (rate(fabrikam_queue_messages_settled_totl{outcome="x"}[5m])) > 0')
        self.assertEqual(used, {"fabrikam_queue_messages_settled_totl"})
        self.assertNotIn("fabrikam_queue_messages_settled_totl", documented_metrics())

    def test_each_rule_has_what_the_bicep_module_maps(self):
        for rule in self.rules:
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["labels"]["severity"], {"0", "1", "2", "3", "4"})
                self.assertRegex(rule["for"], r"^\d+[smh]$")
                self.assertTrue(rule["annotations"]["summary"])
        for group in json.loads(RULES.read_text())["groups"]:
            self.assertRegex(group["interval"], r"^\d+[smh]$")


if __name__ == "__main__":
    unittest.main()

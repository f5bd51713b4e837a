"""The FinOps Foundation's own validator (``focus-validator``, FOCUS 1.2's rules, offline)
reads the demo's FOCUS export and fails none of them; and a file with a broken column makes
it report failures, so the count this test reads is the one that would catch a defect.

The validator lives in a virtualenv of its own (``make focus-validator``: Python 3.12,
``tests/focus-validator-requirements.txt``). It exits 0 whatever it finds, so its console
summary (``Total: … | Pass: … | Fail: … | Skipped: …``) is parsed; it reads
``focus_validator/rules/currency_codes.csv`` relative to the working directory, so it runs
in its package's site-packages directory.
"""

import csv
import io
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from billing.focus import APPLICABILITY_CRITERIA, FOCUS_VERSION
from tests.conftest import require_service
from tests.focus_demo import NOVEMBER, OCTOBER, demo_billing

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
FOCUS_VENV = Path(os.environ.get("FOCUS_VENV", ROOT / ".venv-focus"))
SUMMARY = re.compile(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)")
RULE_STATUS = re.compile(r"^\S+ (\S+): (PASS|FAIL|SKIPPED)\b", re.MULTILINE)
# The rule model 1.2.0.1 of focus-validator 2.2.1 writes InvoiceId's nullability as an OR
# of two unconditional rules ("null" / "not null"): whatever the column holds, one of them
# fails while the OR passes. Such an alternative is not counted as a failure (see
# excused_failures), and these are the only ones expected.
EXPECTED_EXCUSED = {"InvoiceId-C-004-C"}


@dataclass
class Verdict:
    total: int
    passed: int
    failed: int  # the validator's own Fail count
    skipped: int
    failed_rules: list[str]
    excused: set[str]  # failed alternatives of an OR that passed
    output: str

    @property
    def failures(self) -> list[str]:
        """The failed rules that count: all but the excused alternatives."""
        return [rule for rule in self.failed_rules if rule not in self.excused]


def excused_failures(site: Path, statuses: dict[str, str]) -> set[str]:
    """Failed rules that are items of an OR rule that passed: one alternative of several
    (the OR is the requirement; its other item held)."""
    model = json.loads((site / "focus_validator/rules/model-1.2.0.1.json").read_text())
    alternatives: dict[str, set[str]] = {}
    for rule_id, rule in model["ModelRules"].items():
        requirement = rule["ValidationCriteria"].get("Requirement") or {}
        if requirement.get("CheckFunction") != "OR":
            continue
        for item in requirement.get("Items", []):
            if item.get("CheckFunction") == "CheckModelRule":
                alternatives.setdefault(item["ModelRuleId"], set()).add(rule_id)
    return {
        rule
        for rule, status in statuses.items()
        if status == "FAIL"
        and any(statuses.get(parent) == "PASS" for parent in alternatives.get(rule, ()))
    }


def _validator() -> tuple[Path, Path]:
    """The validator's command and its site-packages directory (its working directory)."""
    command = FOCUS_VENV / "bin" / "focus-validator"
    require_service(
        "focus-validator",
        command.exists(),
        f"no {command}; `make focus-validator` installs it (it needs Python 3.12)",
    )
    site = subprocess.run(
        [
            FOCUS_VENV / "bin" / "python",
            "-c",
            "import focus_validator, os; "
            "print(os.path.dirname(os.path.dirname(focus_validator.__file__)))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return command, Path(site)


def validate(path: Path) -> Verdict:
    command, site = _validator()
    result = subprocess.run(
        [
            command,
            "--data-file",
            str(path.resolve()),
            "--validate-version",
            FOCUS_VERSION,
            "--block-download",
            "--applicability-criteria",
            ",".join(APPLICABILITY_CRITERIA),
            "--output-type",
            "console",
            "--show-violations",
        ],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    summary = SUMMARY.search(output)
    assert summary, (
        f"the validator printed no summary (exit {result.returncode}):\n{output[-3000:]}"
    )
    total, passed, failed, skipped = map(int, summary.groups())
    statuses = dict(RULE_STATUS.findall(output))
    failed_rules = sorted(rule for rule, status in statuses.items() if status == "FAIL")
    assert len(failed_rules) == failed, "the per-rule lines disagree with the summary"
    excused = excused_failures(site, statuses)
    return Verdict(total, passed, failed, skipped, failed_rules, excused, output)


@pytest.fixture
def exports(settings, api_client, tmp_path) -> dict[str, Path]:
    demo_billing(settings)
    api_client.force_authenticate(get_user_model().objects.get(username="finance"))
    files = {}
    for month in (OCTOBER, NOVEMBER):
        response = api_client.get("/api/v1/exports/focus/", {"period": f"{month:%Y-%m}"})
        assert response.status_code == 200
        path = tmp_path / f"focus-{month:%Y-%m}.csv"
        path.write_bytes(response.content)
        files[f"{month:%Y-%m}"] = path
    return files


def test_the_demos_export_passes_every_focus_rule(exports):
    for month, path in exports.items():
        rows = path.read_text().count("\n") - 1
        assert rows > 10, month
        verdict = validate(path)
        assert not verdict.failures, f"{month}: {verdict.failures}\n{verdict.output[-6000:]}"
        assert verdict.excused == EXPECTED_EXCUSED
        assert verdict.failed == len(EXPECTED_EXCUSED)
        # The rules ran: most of FOCUS 1.2's rules passed, not skipped.
        assert verdict.passed > 150, verdict.output[-3000:]


def _broken(path: Path, target: Path, *, column: str, value: str) -> Path:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        row[column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    target.write_text(out.getvalue())
    return target


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("ChargeCategory", "Spending", "ChargeCategory-C-003-M"),
        ("BilledCost", "1,234.50", "BilledCost-C-002-M"),
        ("BillingPeriodStart", "1 October 2026", "BillingPeriodStart-C-002-M"),
    ],
)
def test_a_broken_column_makes_the_validator_report_failures(
    exports, tmp_path, column, value, rule
):
    path = _broken(exports["2026-11"], tmp_path / "broken.csv", column=column, value=value)
    verdict = validate(path)
    assert rule in verdict.failures, verdict.failures
    assert verdict.failed > len(EXPECTED_EXCUSED)

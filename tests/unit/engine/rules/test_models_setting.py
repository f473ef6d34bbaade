"""`settings: {models: FILE, discount_rate: R}`: fitted models, read with the rules."""

from __future__ import annotations

import pytest

from streams.engine.clv import CustomerModels
from streams.engine.rules import RulesError, load_rules

MODELS = """\
model: mbgnbd
calibration_end: '2026-01-31'
bgnbd: {r: 0.5, alpha: 2.0, a: 0.8, b: 3.0, log_likelihood: -100.0, customers: 40}
gamma_gamma: {p: 6.0, q: 4.0, v: 15.0, customers: 20}
"""


def write(tmp_path, rules: str, models: str = MODELS):
    (tmp_path / "fitted").mkdir(exist_ok=True)
    (tmp_path / "fitted" / "models.yaml").write_text(models)
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return path


def test_the_models_file_is_found_beside_the_rules_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    path = write(tmp_path, "settings:\n  models: fitted/models.yaml\n  discount_rate: 0.1\n")
    models = load_rules(path).settings.models
    assert models == CustomerModels((0.5, 2.0, 0.8, 3.0), (6.0, 4.0, 15.0), True, 0.1)


def test_the_rules_version_changes_with_the_models(tmp_path):
    path = write(tmp_path, "settings:\n  models: fitted/models.yaml\n")
    before = load_rules(path).version
    write(tmp_path, "settings:\n  models: fitted/models.yaml\n", MODELS.replace("0.5", "0.6"))
    after = load_rules(path)
    assert after.version != before and after.settings.models.bgnbd[0] == 0.6


@pytest.mark.parametrize(
    ("rules", "models", "where", "message"),
    [
        ("settings:\n  models: nope.yaml\n", MODELS, (2, 11), "cannot read models file"),
        ("settings:\n  models: fitted/models.yaml\n", "bgnbd: {r: 1}\n", (2, 11),
         "bgnbd.alpha must be a number"),
        ("settings:\n  models: fitted/models.yaml\n", MODELS.replace("mbgnbd", "pareto"), (2, 11),
         "model must be one of bgnbd, mbgnbd"),
        ("settings:\n  models: fitted/models.yaml\n  bgnbd: {r: 1, alpha: 1, a: 1, b: 1}\n",
         MODELS, (3, 3), "both 'bgnbd' and 'models'"),
        ("settings:\n  discount_rate: -1\n", MODELS, (2, 18), "discount_rate must be a yearly"),
    ],
)
def test_bad_models_settings_point_at_their_line(tmp_path, rules, models, where, message):
    path = write(tmp_path, rules, models)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    (issue,) = err.value.issues
    assert (issue.line, issue.col) == where and message in issue.message

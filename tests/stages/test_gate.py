import pydantic
import pytest

from nerwheel.stages.gate import EXIT_PROMOTE, EXIT_REFUSE, GateError, GatePolicy, gate


def metrics(overall, per_type, n=100):
    """A metrics.json-shaped dict: per_type maps label -> (f1, support)."""
    return {
        "overall": {"strict": {"precision": overall, "recall": overall, "f1": overall}},
        "per_type": {
            label: {"strict": {"precision": f1, "recall": f1, "f1": f1, "support": sup}}
            for label, (f1, sup) in per_type.items()
        },
        "n_records": n,
    }


PROD = metrics(0.80, {"road": (0.80, 200), "houseno": (0.90, 150), "subpoi": (0.50, 5)})


def test_promotes_a_clear_improvement():
    cand = metrics(0.84, {"road": (0.86, 200), "houseno": (0.90, 150), "subpoi": (0.50, 5)})
    d = gate(cand, PROD)
    assert d.verdict == "promote" and d.promote and d.exit_code == EXIT_PROMOTE == 0
    assert d.overall["delta"] == pytest.approx(0.04)
    assert d.per_type["road"]["delta"] == pytest.approx(0.06)
    assert "meets min_delta" in d.reasons[0]
    out = d.to_dict()
    assert out["candidate"] == cand and out["production"] == PROD and out["policy"]["min_delta"] == 0.005


def test_refuses_a_per_type_regression_and_names_it():
    cand = metrics(0.84, {"road": (0.95, 200), "houseno": (0.85, 150), "subpoi": (0.50, 5)})
    d = gate(cand, PROD)
    assert d.verdict == "refuse" and d.exit_code == EXIT_REFUSE == 3
    (reason,) = [r for r in d.reasons if r.startswith("type")]
    assert "'houseno'" in reason and "-0.0500" in reason and "max_type_drop 0.02" in reason


def test_low_support_types_are_reported_not_enforced():
    cand = metrics(0.84, {"road": (0.86, 200), "houseno": (0.90, 150), "subpoi": (0.0, 5)})
    d = gate(cand, PROD)
    assert d.promote
    assert d.per_type["subpoi"] == {"candidate": 0.0, "production": 0.5, "delta": -0.5, "support": 5, "checked": False,
                                    "allowed_drop": 0.4}
    assert not gate(cand, PROD, GatePolicy(min_support=5)).promote


@pytest.mark.parametrize(
    ("support", "drop", "promote"),
    [
        (51, 0.0201, True),    # the flywheel benchmark's `assist`: two spans' worth is 0.039, so 0.02 is noise
        (51, 0.0400, False),   # more than two spans' worth on the same type
        (500, 0.0201, False),  # a well-supported type: max_type_drop (0.02) decides
        (500, 0.0190, True),
    ],
)
def test_small_falls_on_modest_support_are_noise(support, drop, promote):
    prod = metrics(0.80, {"road": (0.80, 200), "assist": (0.50, support)})
    cand = metrics(0.83, {"road": (0.85, 200), "assist": (0.50 - drop, support)})
    d = gate(cand, prod)
    assert d.promote is promote
    assert d.per_type["assist"]["allowed_drop"] == pytest.approx(max(0.02, 2 / support))
    if not promote:
        (reason,) = [r for r in d.reasons if r.startswith("type")]
        assert "'assist'" in reason and f"support {support}" in reason
    if drop > 0.02:  # without the noise floor every fall past max_type_drop refuses
        assert not gate(cand, prod, GatePolicy(noise_spans=0)).promote


def test_a_type_the_candidate_lost_counts_as_zero():
    cand = metrics(0.84, {"road": (0.90, 200), "subpoi": (0.5, 5)})
    d = gate(cand, PROD)
    assert not d.promote and d.per_type["houseno"]["candidate"] == 0.0


@pytest.mark.parametrize("cand_f1, promote", [(0.803, False), (0.805, True), (0.80, False), (0.79, False)])
def test_min_delta_boundary(cand_f1, promote):
    cand = metrics(cand_f1, {"road": (0.80, 200), "houseno": (0.90, 150), "subpoi": (0.50, 5)})
    d = gate(cand, PROD, GatePolicy(min_delta=0.005))
    assert d.promote is promote
    if not promote:
        assert any("below min_delta 0.005" in r for r in d.reasons)


def test_first_candidate_is_promoted():
    d = gate(metrics(0.30, {"road": (0.3, 10)}), None)
    assert d.promote and "no production model" in d.reasons[0]
    assert d.overall == {"candidate": 0.3, "production": None, "delta": None}


def test_metrics_from_different_eval_sets_are_refused():
    cand = metrics(0.90, {"road": (0.9, 200), "houseno": (0.9, 150), "subpoi": (0.5, 5)}, n=99)
    d = gate(cand, PROD)
    assert not d.promote and "not comparable" in d.reasons[0]
    cand = metrics(0.90, {"road": (0.9, 201), "houseno": (0.9, 150), "subpoi": (0.5, 5)})
    assert "support of road differs" in gate(cand, PROD).reasons[0]


def test_unreadable_metrics_name_the_field():
    with pytest.raises(GateError, match="candidate metrics: missing field overall.strict"):
        gate({"overall": {"partial": {"f1": 1.0}}, "per_type": {}}, None)
    with pytest.raises(GateError, match=r"production metrics: missing field per_type"):
        gate(PROD, {"overall": {"strict": {"f1": 0.5}}})


def test_policy_refuses_unknown_keys():
    with pytest.raises(pydantic.ValidationError, match="max_drop"):
        GatePolicy(max_drop=0.1)
    with pytest.raises(pydantic.ValidationError, match="metric"):
        GatePolicy(metric="loose")

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


def f1_of(tp, fp, fn):
    """Strict F1 from span counts, so the table below speaks in spans, not in invented F1 values."""
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize(
    ("support", "prod_f1", "cand_f1", "promote", "why"),
    [
        # a 19-span type collapsing 0.90 -> 0.00: under the old min_support=20 exemption this was promoted unseen
        (19, 0.90, 0.00, False, "the noise floor of 2 spans (0.1053)"),
        # one span flipping on a 51-span type (46/51 found -> 45/51 found, 4 false positives) is noise
        (51, f1_of(46, 4, 5), f1_of(45, 4, 6), True, None),
        # a 0.05 fall on a 150-span type: the floor is 2/150 = 0.013, so max_type_drop (0.02) decides
        (150, 0.90, 0.85, False, "max_type_drop 0.02"),
        # 5 spans: a 0.4 fall is two spans' worth (noise), a collapse to 0 is not
        (5, 0.80, 0.40, True, None),
        (5, 0.80, 0.00, False, "the noise floor of 2 spans (0.4000)"),
    ],
)
def test_every_type_is_checked_against_its_noise_floor(support, prod_f1, cand_f1, promote, why):
    prod = metrics(0.80, {"road": (0.80, 200), "t": (prod_f1, support)})
    cand = metrics(0.83, {"road": (0.85, 200), "t": (cand_f1, support)})
    d = gate(cand, prod)
    assert GatePolicy().min_support == 0  # nothing is exempt by default
    assert d.promote is promote
    assert d.per_type["t"]["checked"] is True and d.per_type["t"]["regressed"] is not promote
    assert d.per_type["t"]["allowed_drop"] == pytest.approx(max(0.02, 2 / support))
    type_reasons = [r for r in d.reasons if r.startswith("type")]
    if promote:
        assert not type_reasons and "2 of 2 types checked" in d.reasons[-1]
    else:
        (reason,) = type_reasons
        assert "'t'" in reason and why in reason and f"support {support}" in reason


@pytest.mark.parametrize("support", [1, 2])
def test_one_or_two_span_types_can_never_block(support):
    # With noise_spans=2, two flipped spans are the whole type: the eval set says nothing about it either way.
    prod = metrics(0.80, {"road": (0.80, 200), "rare": (1.0, support)})
    cand = metrics(0.83, {"road": (0.85, 200), "rare": (0.0, support)})
    for policy in (GatePolicy(), GatePolicy(max_type_drop=0.0)):
        d = gate(cand, prod, policy)
        assert d.promote and d.per_type["rare"]["checked"] and d.per_type["rare"]["allowed_drop"] >= 1.0
        assert d.per_type["rare"]["delta"] == -1.0  # still reported
    assert not gate(cand, prod, GatePolicy(noise_spans=0)).promote  # a policy may choose to trust them


def test_types_without_gold_spans_are_not_checked():
    prod = metrics(0.80, {"road": (0.80, 200), "ghost": (0.0, 0)})
    cand = metrics(0.83, {"road": (0.85, 200), "ghost": (0.0, 0)})
    d = gate(cand, prod)
    assert d.promote and d.per_type["ghost"]["checked"] is False and d.per_type["ghost"]["allowed_drop"] is None


def test_min_support_is_an_explicit_opt_out():
    cand = metrics(0.84, {"road": (0.86, 200), "houseno": (0.90, 150), "subpoi": (0.0, 5)})
    assert not gate(cand, PROD).promote  # a 5-span type collapsing 0.5 -> 0 blocks by default
    d = gate(cand, PROD, GatePolicy(min_support=20))
    assert d.promote and "types under min_support 20 not enforced" in d.reasons[-1]
    assert d.per_type["subpoi"] == {"candidate": 0.0, "production": 0.5, "delta": -0.5, "support": 5, "checked": False,
                                    "allowed_drop": 0.4, "regressed": False}


def test_production_source_is_the_first_reason():
    cand = metrics(0.84, {"road": (0.86, 200), "houseno": (0.90, 150), "subpoi": (0.50, 5)})
    d = gate(cand, PROD, production_source="version 3 of 'nerwheel', live in repo")
    assert d.reasons[0] == "production: version 3 of 'nerwheel', live in repo" and d.promote
    first = gate(cand, None, production_source="repo has no live version of 'nerwheel'")
    assert first.reasons == ["no production model (repo has no live version of 'nerwheel'): the first candidate is "
                             "promoted (strict F1 0.8400)"]


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

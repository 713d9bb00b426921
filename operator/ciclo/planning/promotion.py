"""The way in: may a candidate version take traffic? Pure.

A candidate is the version spec.version names while another serves (or while nothing has
served yet). With spec.promotion set, it takes no traffic, and gets no pods, until its
evaluation against the champion passed every gate and, when asked, a person approved it.
Until then the champion keeps serving. Versions that have served before are not
candidates: the way in is for new versions (a rollback target, or a user naming an old
version again, goes straight back).

`verdict` answers for the Model's planner; `validated` is the ModelVersion's Validated
condition that the evaluation implies (the Model controller writes it, as it writes the
digest check's). Issue 18's rollout strategies start where `verdict` says Promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ciclo.api.meta import Condition
from ciclo.api.model import Model
from ciclo.api.modelversion import ModelVersion
from ciclo.api.promotion import LOWER_IS_BETTER, EvaluationRecord, Gate, Promotion
from ciclo.planning import conditions, versions
from ciclo.planning.training import trained_name

Reason = Literal[
    "Exempt",
    "Promoted",
    "Evaluating",
    "EvaluationFailed",
    "GateFailed",
    "AwaitingApproval",
    "Rejected",
]


@dataclass(frozen=True)
class Verdict:
    may_serve: bool
    reason: Reason
    message: str
    evaluate: bool = False
    """An evaluation Job must run (none recorded for the current dataset)."""

    @property
    def failed(self) -> bool:
        """A verdict that only a new spec.version (or a new dataset) changes."""
        return self.reason in ("EvaluationFailed", "GateFailed", "Rejected")


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def judge(gate: Gate, record: EvaluationRecord) -> tuple[bool, str]:
    """Whether the candidate meets one gate, and the sentence that says so with both numbers."""
    found = next((m for m in record.metrics if m.metric == gate.metric), None)
    if found is None:
        return False, f"{gate.metric}: not measured by the evaluation"
    value, champion = found.candidate, found.champion
    both = f"candidate {_fmt(value)}, champion {_fmt(champion)}"
    if gate.min is not None and value < gate.min:
        return False, f"{gate.metric} >= {_fmt(gate.min)} failed: {both}"
    if gate.max is not None and value > gate.max:
        return False, f"{gate.metric} <= {_fmt(gate.max)} failed: {both}"
    if gate.max_drop is not None:
        lower = gate.metric in LOWER_IS_BETTER
        sign = "+" if lower else "-"
        bound = f"{gate.metric} {'<=' if lower else '>='} champion {sign} {_fmt(gate.max_drop)}"
        if champion is None:
            return True, f"{bound} passed: no champion to compare with ({both})"
        worse = value - champion if lower else champion - value
        # A tolerance for float noise: a drop of exactly max_drop passes.
        if worse > gate.max_drop + 1e-12:
            return False, f"{bound} failed: {both}"
        return True, f"{bound} passed: {both}"
    return True, f"{gate.metric} passed: {both}"


def gates(promotion: Promotion, record: EvaluationRecord) -> tuple[bool, str]:
    """All gates judged: the first failure's sentence, or every gate's figures."""
    said = []
    for gate in promotion.gates:
        ok, sentence = judge(gate, record)
        if not ok:
            return False, sentence
        said.append(sentence)
    return True, "; ".join(said) or "no gates"


def current_record(promotion: Promotion, version: ModelVersion) -> EvaluationRecord | None:
    """The version's evaluation, if it was made on the dataset spec.promotion names now."""
    record = version.status.evaluation
    evaluation = promotion.evaluation
    if record is None or evaluation is None:
        return None
    return record if record.dataset_sha256 == evaluation.dataset.sha256 else None


def is_candidate(model: Model, version: ModelVersion, serving: str | None) -> bool:
    """Whether the way in applies to this version: promotion is set, spec.version names it,
    it does not serve, and it never served."""
    return (
        model.spec.promotion is not None
        and version.spec.version in (model.spec.version, trained_name(model))
        and version.spec.version != serving
        and version.status.served_at is None
    )


def review(version: ModelVersion) -> tuple[str, str] | None:
    """The decision that stands: a rejection, for good, else the latest approval, with the
    sentence that says who, when and why."""
    for wanted in ("Reject", "Approve"):
        found = next((r for r in version.status.reviews if r.decision == wanted), None)
        if found is not None:
            why = f": {found.comment}" if found.comment else ""
            verb = "rejected" if wanted == "Reject" else "approved"
            return wanted, f"{verb} by {found.user} at {found.at.isoformat()}{why}"
    return None


def verdict(model: Model, version: ModelVersion, serving: str | None) -> Verdict:
    """May `version` take traffic now, and if not, why not."""
    promotion = model.spec.promotion
    if promotion is None or not is_candidate(model, version, serving):
        return Verdict(True, "Exempt", "no promotion applies")
    name = version.spec.version
    decided = review(version)
    if decided is not None and decided[0] == "Reject":
        return Verdict(False, "Rejected", f"{name} {decided[1]}")
    passed = "no evaluation asked"
    if promotion.evaluation is not None:
        record = current_record(promotion, version)
        if record is None:
            against = f" against {serving}" if serving else ""
            return Verdict(
                False, "Evaluating", f"{name} is being evaluated{against}", evaluate=True
            )
        if record.error:
            return Verdict(False, "EvaluationFailed", f"{name}: evaluation failed: {record.error}")
        ok, sentence = gates(promotion, record)
        if not ok:
            return Verdict(False, "GateFailed", f"{name}: gate {sentence}")
        passed = f"gates passed ({sentence})"
    # A retrained version without spec.training.autoPromote goes no further than Validated
    # without a person (docs/training.md).
    training = model.spec.training
    retrained = name != model.spec.version and not (training and training.auto_promote)
    if promotion.require_approval or retrained:
        if decided is None:
            return Verdict(
                False,
                "AwaitingApproval",
                f"{name}: {passed}; awaiting approval (ciclo approve {model.metadata.name} {name})",
            )
        return Verdict(True, "Promoted", f"{name}: {passed}; {decided[1]}")
    return Verdict(True, "Promoted", f"{name}: {passed}")


def validated(model: Model, version: ModelVersion) -> Condition | None:
    """The Validated condition the evaluation implies for a version that has not served;
    None when the evaluation says nothing of it (no promotion, no record, it served)."""
    promotion = model.spec.promotion
    if promotion is None or promotion.evaluation is None or version.status.served_at is not None:
        return None
    record = current_record(promotion, version)
    generation = version.metadata.generation
    if record is None:
        if version.spec.version not in (model.spec.version, trained_name(model)):
            return None
        return Condition(
            type="Validated",
            status="Unknown",
            reason="Evaluating",
            message="the evaluation against the champion is running",
            observed_generation=generation,
        )
    if record.error:
        return Condition(
            type="Validated",
            status="False",
            reason="EvaluationFailed",
            message=record.error,
            observed_generation=generation,
        )
    ok, sentence = gates(promotion, record)
    return Condition(
        type="Validated",
        status="True" if ok else "False",
        reason="GatesPassed" if ok else "GateFailed",
        message=sentence if ok else f"gate {sentence}",
        observed_generation=generation,
    )


def validated_of(
    model: Model, version: ModelVersion, fetched: tuple[bool, str] | None
) -> Condition | None:
    """The Validated condition to write now, if any: a failed digest check wins; else the
    evaluation's verdict for a version that has not served; else the digest check's
    (versions.validated), which leaves a Validated=True from the gates as it was."""
    digest = versions.validated(version, fetched, version.metadata.generation)
    if digest is not None and digest.status == "False":
        return digest
    gated = validated(model, version)
    if gated is not None:
        return gated
    current = conditions.find(version.status.conditions, "Validated")
    if digest is not None and current is not None and current.reason == "GatesPassed":
        return None
    return digest

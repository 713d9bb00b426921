"""How a new spec.version takes traffic: switch, canary, shadow or abtest (`spec.rollout`),
and what the operator observed of it (`status.canary`).

The rules that span fields are CEL on the CRD, so a bad spec stops at admission with the
field named: weights above 100, steps whose weights do not increase, shadow without a
Gateway, a canary without steps.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from ciclo.api.meta import Duration, Name, Schema, cel, validations

Strategy = Literal["switch", "canary", "shadow", "abtest"]


class CanaryStep(Schema):
    """One step of a canary: the candidate's share of requests, held for a pause."""

    weight: int = Field(ge=1, le=100)
    """Percent of requests the candidate answers during this step (100 is the last)."""
    pause: Duration = "1m"
    """How long the step holds while the MonitorPolicy judges the candidate alone, before
    the next step (or, after the last, the promotion)."""


class Shadow(Schema):
    """The candidate gets a mirror of live traffic; its answers are discarded. After
    `duration` its quality on the same labels, its agreement with the champion and its
    latency are compared with the champion's, and it is promoted only if all pass."""

    duration: Duration = "10m"
    """How long the comparison runs before it is judged."""
    min_samples: int = Field(default=100, ge=1, le=10_000_000)
    """Labelled predictions each version needs by then; with fewer the shadow is aborted
    (too little evidence to promote on)."""
    max_accuracy_drop: float = Field(default=0.02, ge=0, le=1)
    """How far the candidate's accuracy may fall below the champion's (absolute). The two
    are read from windows of different labelled rows (the champion's holds rows from
    before the shadow), so even an identical model differs by sampling noise: about
    0.007 at 1,000 rows and 97% accuracy; 0 would fail it about half the time."""
    max_disagreement: float = Field(default=0.1, ge=0, le=1)
    """The largest share of labelled mirrored rows on which the candidate may answer
    differently from the champion."""
    max_latency_ratio: float | None = Field(default=2.0, gt=0)
    """The candidate's p99 latency over the champion's at most; unset: latency not judged."""


ABTEST_RULES = validations(
    cel(
        "has(self.duration) || has(self.sampleSize)",
        "an A/B test ends at a duration or a sample size: set one",
        field_path=".duration",
    ),
)


class ABTest(Schema):
    """A fixed split judged at its end by a significance test on the chosen metric."""

    split: int = Field(default=50, ge=1, le=99)
    """Percent of requests the candidate answers."""
    duration: Duration | None = None
    """How long the test runs; or stop at sampleSize labelled predictions per version."""
    sample_size: int | None = Field(default=None, ge=10, le=10_000_000)
    """Labelled predictions per version at which the test ends."""
    metric: Literal["accuracy"] = "accuracy"
    """The metric compared: accuracy, a proportion of correct predictions."""
    test: Literal["ztest", "bootstrap"] = "ztest"
    """ztest (two-proportion z-test) or bootstrap (resampled difference of the proportions)."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """The significance level: a winner is named only when p < alpha."""
    promote_winner: bool = False
    """Promote the candidate when it wins; otherwise the result is only reported."""


class GatewayReference(Schema):
    """A Gateway API Gateway the operator attaches its HTTPRoute to."""

    name: Name
    """The Gateway's name."""
    namespace: Name | None = None
    """The Gateway's namespace; the Model's when unset."""
    section_name: Name | None = None
    """The Gateway listener to attach to; every listener that allows the route when unset."""
    mirror: Literal["RequestMirror", "TraefikService"] = "RequestMirror"
    """How a shadow's mirror is expressed: the Gateway API's RequestMirror filter (Envoy
    Gateway, NGINX Gateway Fabric, Istio), or a Traefik TraefikService of the mirroring
    kind that the route names as its backend (Traefik's Gateway provider has no
    RequestMirror; docs/rollout.md)."""


ROLLOUT_RULES = validations(
    cel(
        "self.strategy != 'canary' || (has(self.steps) && size(self.steps) > 0)",
        "a canary needs at least one step",
        field_path=".steps",
    ),
    cel(
        "!has(self.steps) || (self.steps.map(s, s.weight).isSorted() && "
        "self.steps.all(a, self.steps.exists_one(b, b.weight == a.weight)))",
        "step weights must increase",
        field_path=".steps",
    ),
    cel(
        "self.strategy != 'abtest' || has(self.abtest)",
        "an A/B test needs its split and length: set abtest",
        field_path=".abtest",
    ),
    cel(
        "self.strategy != 'shadow' || has(self.gateway)",
        "shadow mirrors requests through a Gateway: set gateway",
        field_path=".gateway",
    ),
)


class Rollout(Schema):
    """How a new spec.version takes traffic from the one that serves."""

    strategy: Strategy = "switch"
    """switch (all traffic once ready), canary (steps of weight), shadow (a mirror whose
    answers are discarded) or abtest (a fixed split ended by a significance test)."""
    steps: list[CanaryStep] = Field(default_factory=list, max_length=10)
    """The canary's steps, by increasing weight."""
    shadow: Shadow | None = None
    """The shadow's duration and rule."""
    abtest: Annotated[ABTest, Field(json_schema_extra=ABTEST_RULES)] | None = None
    """The A/B test's split, length and test."""
    gateway: GatewayReference | None = None
    """A Gateway: traffic is split by the weights of an HTTPRoute the operator owns (and
    mirrored for shadow). Without one, canary and abtest split by replica ratio behind the
    Model's Service."""


RolloutSpec = Annotated[Rollout, Field(json_schema_extra=ROLLOUT_RULES)]

CanaryPhase = Literal["Progressing", "Promoted", "Aborted", "Concluded"]


class CanaryStatus(Schema):
    """A gradual rollout of `version` beside `champion`, as the operator last moved it.

    Its timestamps make it level-based: re-applying the same Model neither restarts nor
    skips a step, and a restarted operator resumes where it was."""

    version: str
    """The candidate."""
    champion: str
    """The version that serves meanwhile and takes all traffic back on an abort."""
    strategy: Strategy = "canary"
    """The strategy this rollout follows."""
    phase: CanaryPhase = "Progressing"
    """Progressing, Promoted (the candidate serves), Aborted (the champion serves after a
    breach) or Concluded (an A/B test ended without promoting: the champion serves)."""
    step: int = Field(default=0, ge=0)
    """The index of the current step in spec.rollout.steps."""
    weight: int = Field(default=0, ge=0, le=100)
    """The candidate's share of requests now, in percent, as the traffic is really split
    (a replica ratio rounds it)."""
    step_since: dt.datetime
    """When the current step began; its pause counts from here."""
    since: dt.datetime
    """When the rollout began."""
    until: dt.datetime | None = None
    """When it was promoted or aborted."""
    message: str = Field(default="", max_length=4096)
    """Why it ended, or what it waits for, for people."""


class PromoteRequest(Schema):
    """`ciclo promote`: the running canary's candidate is promoted at the operator's next
    plan, whatever step it is at. Written under a field manager of its own."""

    version: str
    """The candidate promoted."""
    reason: str = Field(default="", max_length=1024)
    """Who or what asked, for people."""
    at: dt.datetime
    """When it was asked."""


class ABTestArm(Schema):
    """One version's labelled predictions during an A/B test."""

    version: str
    """The version."""
    correct: int = Field(ge=0)
    """Its labelled predictions that were right."""
    total: int = Field(ge=0)
    """Its labelled predictions."""


class ShadowResult(Schema):
    """A shadow's verdict, written by the monitoring loop (it reads the labels and the
    latencies) when the shadow's duration has passed; the Model controller promotes the
    candidate or aborts the shadow on it."""

    version: str
    """The candidate."""
    champion: str
    """The version that answered the requests meanwhile."""
    since: dt.datetime
    """The start of the shadow it judges (status.canary.since)."""
    promote: bool
    """Whether every comparison passed."""
    accuracy: float | None = None
    """The candidate's accuracy on the labels of the mirrored requests."""
    champion_accuracy: float | None = None
    """The champion's accuracy over the same span."""
    samples: int = Field(default=0, ge=0)
    """The candidate's labelled predictions."""
    agreement: float | None = None
    """The share of labelled rows on which the candidate answered as the champion did."""
    latency_p99: float | None = None
    """The candidate's p99 latency in seconds, on the mirrored requests."""
    champion_latency_p99: float | None = None
    """The champion's p99 latency in seconds."""
    failed: list[str] = Field(default_factory=list, max_length=8)
    """The comparisons that failed, each with both numbers."""
    message: str = Field(default="", max_length=4096)
    """The verdict for people."""
    at: dt.datetime
    """When the shadow was judged."""


class ABTestResult(Schema):
    """An A/B test's verdict, written by the monitoring loop (it reads the labels) when the
    test's duration or sample size is reached; the Model controller acts on it."""

    version: str
    """The candidate."""
    champion: str
    """The version it was compared with."""
    since: dt.datetime
    """The start of the A/B test it concludes (status.canary.since)."""
    test: Literal["ztest", "bootstrap"]
    """The significance test used."""
    winner: str | None = None
    """The better version; unset when the difference is not significant."""
    effect: float
    """The candidate's accuracy minus the champion's."""
    p_value: float = Field(ge=0, le=1)
    """The two-sided p-value of the difference."""
    arms: list[ABTestArm] = Field(default_factory=list, max_length=2)
    """The champion's and the candidate's labelled predictions."""
    message: str = Field(default="", max_length=4096)
    """The verdict for people."""
    at: dt.datetime
    """When the test was concluded."""

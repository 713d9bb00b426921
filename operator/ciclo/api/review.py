"""Review: a person's decision on a candidate version (approve, reject or comment).

Its own kind so that reviewing can be granted apart from editing Models, and so that the
API server itself records who decided: a ValidatingAdmissionPolicy (charts/ciclo) requires
`spec.user` to be the authenticated user of the create request, and the spec is
immutable, so no client can type someone else's name."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ciclo.api.meta import (
    CONDITIONS_LIST,
    Condition,
    Name,
    ObjectMeta,
    Schema,
    cel,
    validations,
)
from ciclo.api.promotion import Decision


class ReviewSpec(Schema):
    """Who decided what about which version, and why; immutable once created."""

    model: Name
    """The Model the version belongs to."""
    version: str = Field(pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$", max_length=40)
    """The version reviewed."""
    decision: Decision
    """Approve (it may take traffic once its gates pass), Reject (it never will), or Comment."""
    comment: str = Field(default="", max_length=4096)
    """Why, in the reviewer's words."""
    user: str = Field(min_length=1, max_length=256)
    """The reviewer: admission requires the authenticated user of the create request."""


SPEC_RULES = validations(cel("self == oldSelf", "a Review is immutable once created"))


class ReviewStatus(Schema):
    """Not written so far: the operator's record of a Review is its ModelVersion's
    status.reviews."""

    conditions: Annotated[list[Condition], Field(json_schema_extra=CONDITIONS_LIST)] = Field(
        default_factory=list
    )
    """Reserved for conditions about the Review; none is written yet."""


class Review(Schema):
    api_version: Literal["ciclo.dev/v1alpha1"] = "ciclo.dev/v1alpha1"
    kind: Literal["Review"] = "Review"
    metadata: ObjectMeta
    spec: ReviewSpec
    status: ReviewStatus = Field(default_factory=ReviewStatus)

"""The pydantic types of every ciclo resource: the single source of truth for the CRDs."""

from ciclo.api.meta import API_VERSION, GROUP, VERSION, Condition
from ciclo.api.model import Model, ModelSpec, ModelStatus
from ciclo.api.modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from ciclo.api.monitorpolicy import MonitorPolicy, MonitorPolicySpec, MonitorPolicyStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "MonitorPolicy",
    "MonitorPolicySpec",
    "MonitorPolicyStatus",
]

"""The models a scoring run uses, and their checks against the features.

Every configured model (schemas/models.py) with a champion is scored from the same
feature rows: the primary model always (no champion is an error), each additional
definition once it has one; each champion brings its distinct challenger for shadow
scoring, and the versions a traffic split serves by number (``api.experiments``:
role ``pinned``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql.types import NumericType

from jobs.platform import (
    CHALLENGER,
    CHAMPION,
    configure_mlflow,
    load_booster,
    version_by_alias,
)
from schemas.models import PINNED
from schemas.settings import Settings, model_definitions, pinned_versions

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ModelToScore:
    model_name: str  # the registered model (a definition of schemas.models)
    role: str  # champion or challenger
    version: str
    booster: lgb.Booster
    signature_inputs: tuple[str, ...] = ()  # column names of the registered signature


def resolve_models(
    settings: Settings, *, error: type[Exception]
) -> tuple[list[ModelToScore], list[str]]:
    """Every configured model to score tonight, and the additional ones skipped.

    The primary model's champion is required (``error`` without one); each
    ``model.additional`` definition is scored when it has a champion and skipped
    (named in the second list) when it has none yet. Each champion brings its
    distinct challenger, if any, for shadow scoring.
    """
    client = configure_mlflow(settings)
    primary, *additional = model_definitions(settings)
    models = _aliased(client, primary.name, pinned=pinned_versions(settings, primary.name))
    if not models:
        raise error(
            f"model {primary.name!r} has no {CHAMPION!r} alias in the registry at "
            f"{settings.mlflow.tracking_uri}: train and promote a model first"
        )
    skipped = []
    for definition in additional:
        found = _aliased(client, definition.name, pinned=pinned_versions(settings, definition.name))
        models += found
        if not found:
            skipped.append(definition.name)
    return models, skipped


def _aliased(client: MlflowClient, name: str, *, pinned: Sequence[str] = ()) -> list[ModelToScore]:
    """The champion, a distinct challenger and the distinct ``pinned`` versions of ``name``,
    loaded; empty without a champion. A pinned version that is not registered (or was
    deleted) is skipped with a warning: its split serves the champion instead."""
    champion = version_by_alias(client, model_name=name, alias=CHAMPION)
    if champion is None:
        return []
    roles = [(CHAMPION, str(champion.version))]
    challenger = version_by_alias(client, model_name=name, alias=CHALLENGER)
    if challenger is not None and str(challenger.version) != roles[0][1]:
        roles.append((CHALLENGER, str(challenger.version)))
    for version in pinned:
        if version in {v for _, v in roles}:
            continue
        try:
            client.get_model_version(name, version)
        except MlflowException as exc:
            log.warning(
                "api.experiments pins %s version %s, which the registry does not have (%s): "
                "not scored; its arm is served the champion",
                name,
                version,
                exc.error_code,
            )
            continue
        roles.append((PINNED, version))
    return [
        ModelToScore(
            model_name=name,
            role=role,
            version=version,
            booster=load_booster(model_name=name, version=version),
            signature_inputs=_signature_inputs(name, version),
        )
        for role, version in roles
    ]


def _signature_inputs(name: str, version: str) -> tuple[str, ...]:
    from mlflow.models import get_model_info

    signature = get_model_info(f"models:/{name}/{version}").signature
    if signature is None or signature.inputs is None:
        return ()
    return tuple(n for n in signature.inputs.input_names() if isinstance(n, str))


def check_features(
    features: DataFrame, *, models: list[ModelToScore], error: type[Exception]
) -> None:
    """Every feature a model needs exists and is numeric, else ``error`` naming them."""
    types = {f.name: f.dataType for f in features.schema.fields}
    for model in models:
        needed = list(dict.fromkeys([*model.booster.feature_name(), *model.signature_inputs]))
        missing = [n for n in needed if n not in types]
        if missing:
            raise error(
                f"{model.role} {model.model_name} v{model.version} needs features missing from "
                f"gold.customer_features: {', '.join(missing)}"
            )
        wrong = [f"{n} ({types[n].simpleString()})" for n in needed if not _numeric(types[n])]
        if wrong:
            raise error(
                f"{model.role} {model.model_name} v{model.version} needs numeric features; "
                f"gold.customer_features has: {', '.join(wrong)}"
            )


def _numeric(data_type: object) -> bool:
    return isinstance(data_type, NumericType)


def feature_columns(models: list[ModelToScore]) -> list[str]:
    """Every feature column any of the models reads, each once, in the models' order."""
    return list(dict.fromkeys(n for m in models for n in m.booster.feature_name()))

"""Fitting the application to the cluster it is built on.

``build_app`` runs inside the Ray cluster, so it can see what the cluster has: GPUs
are used when there are some (``num_gpus_if_available``), a CPU-only cluster gets
the CPU default Whisper model (``transcription.cpu_default_model``), the replicas'
logical CPUs are shrunk to fit a small machine (``fit_to_cluster``), and whatever
still cannot be placed is logged with the setting that fixes it. Otherwise Serve
waits silently forever for a replica no node can take.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from config import AppArgs, DeploymentArgs

log = logging.getLogger(__name__)

__all__ = ["ClusterResources", "Sizing", "placement_problems", "report", "size_for"]

DEPLOYMENTS = ("ingress", "coordinator", "demucs_worker", "transcriber")
MODEL_DEPLOYMENTS = ("demucs_worker", "transcriber")
CPU_STEP = 0.05
"""Shrunk CPU shares are rounded down to this step (and never below it)."""


@dataclass(frozen=True)
class ClusterResources:
    """Logical resources Ray reports: cluster totals and the largest single node."""

    cpus: float
    gpus: float
    node_cpus: float
    node_gpus: float
    custom: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_nodes(cls, nodes: list[dict[str, float]]) -> ClusterResources:
        """From each alive node's resources (``ray.nodes()[i]["Resources"]``)."""
        custom: dict[str, float] = {}
        for node in nodes:
            for name, amount in node.items():
                if name not in ("CPU", "GPU", "memory", "object_store_memory"):
                    custom[name] = custom.get(name, 0.0) + amount
        return cls(
            cpus=sum(n.get("CPU", 0.0) for n in nodes),
            gpus=sum(n.get("GPU", 0.0) for n in nodes),
            node_cpus=max((n.get("CPU", 0.0) for n in nodes), default=0.0),
            node_gpus=max((n.get("GPU", 0.0) for n in nodes), default=0.0),
            custom=custom,
        )

    @classmethod
    def current(cls) -> ClusterResources:
        """What the cluster this process is connected to has now."""
        import ray

        return cls.of_nodes([n["Resources"] for n in ray.nodes() if n.get("Alive")])


@dataclass(frozen=True)
class Sizing:
    """The args to deploy, what was changed to get them, and what still cannot be placed."""

    args: AppArgs
    changes: list[str]
    problems: list[str]


def size_for(args: AppArgs, cluster: ClusterResources) -> Sizing:
    """``args`` adapted to ``cluster`` (see the module docstring)."""
    args, changes = _use_gpus(args, cluster)
    if args.fit_to_cluster:
        args, shrunk = _fit_cpus(args, cluster)
        changes += shrunk
    return Sizing(args, changes, placement_problems(args, cluster))


def _use_gpus(args: AppArgs, cluster: ClusterResources) -> tuple[AppArgs, list[str]]:
    update: dict[str, Any] = {}
    changes: list[str] = []
    if cluster.gpus > 0:
        for name in MODEL_DEPLOYMENTS:
            shape: DeploymentArgs = getattr(args, name)
            if not shape.num_gpus and shape.num_gpus_if_available:
                gpus = shape.num_gpus_if_available
                update[name] = shape.model_copy(update={"num_gpus": gpus})
                changes.append(f"{name}: {gpus:g} GPU per replica (the cluster has GPUs)")
    else:
        transcription = args.transcription
        cpu_model = transcription.cpu_default_model
        if cpu_model and cpu_model != transcription.default_model:
            update["transcription"] = transcription.model_copy(update={"default_model": cpu_model})
            changes.append(
                f"transcription: default model {cpu_model!r} instead of "
                f"{transcription.default_model!r} (no GPU: cpu_default_model)"
            )
    return args.model_copy(update=update), changes


def replicas_at_start(shape: DeploymentArgs) -> int:
    """Replicas Serve starts with; at least one must be placed for the app to work."""
    if shape.autoscaling is None:
        return shape.num_replicas
    scaling = shape.autoscaling
    start = scaling.initial_replicas if scaling.initial_replicas is not None else 0
    return max(1, scaling.min_replicas, start)


def cpu_demand(args: AppArgs) -> float:
    """Logical CPUs every deployment's starting replicas reserve together."""
    return sum(
        replicas_at_start(getattr(args, name)) * getattr(args, name).num_cpus
        for name in DEPLOYMENTS
    )


def _fit_cpus(args: AppArgs, cluster: ClusterResources) -> tuple[AppArgs, list[str]]:
    demand = cpu_demand(args)
    if demand <= cluster.cpus or cluster.cpus <= 0:
        return args, []
    factor = cluster.cpus / demand
    update: dict[str, Any] = {}
    for name in DEPLOYMENTS:
        shape: DeploymentArgs = getattr(args, name)
        if shape.num_cpus > 0:
            cpus = max(CPU_STEP, math.floor(shape.num_cpus * factor / CPU_STEP) * CPU_STEP)
            update[name] = shape.model_copy(update={"num_cpus": round(cpus, 2)})
    fitted = args.model_copy(update=update)
    shares = ", ".join(f"{n} {getattr(fitted, n).num_cpus:g}" for n in DEPLOYMENTS)
    change = (
        f"replicas ask for {demand:g} logical CPUs, the cluster has {cluster.cpus:g}: "
        f"num_cpus shrunk to fit ({shares}); set them in the config, or fit_to_cluster: false "
        "to keep them as written"
    )
    return fitted, [change]


def placement_problems(args: AppArgs, cluster: ClusterResources) -> list[str]:
    """One sentence per replica the cluster cannot place: what, and what to change."""
    problems: list[str] = []
    for name in DEPLOYMENTS:
        shape: DeploymentArgs = getattr(args, name)
        if shape.num_gpus > cluster.node_gpus:
            problems.append(
                f"{name} asks for {shape.num_gpus:g} GPU per replica but no node has that many "
                f"(largest: {cluster.node_gpus:g}): set {name}.num_gpus: 0 and "
                f"{name}.num_gpus_if_available to a fraction (GPUs are then used only where "
                "there are some), or add a GPU node"
            )
        if shape.num_cpus > cluster.node_cpus:
            problems.append(
                f"{name} asks for {shape.num_cpus:g} CPUs per replica but the largest node has "
                f"{cluster.node_cpus:g}: lower {name}.num_cpus or add a bigger node"
            )
        missing = [r for r, q in shape.resources.items() if q > cluster.custom.get(r, 0.0)]
        problems.extend(
            f"{name} needs resource {r!r} that no node offers: start a node with "
            f"`ray start --resources '{{\"{r}\": 1}}'` or remove {name}.resources.{r}"
            for r in missing
        )
    demand = cpu_demand(args)
    if demand > cluster.cpus:
        problems.append(
            f"replicas ask for {demand:g} logical CPUs in all but the cluster has "
            f"{cluster.cpus:g}: the rest wait for nodes; lower num_cpus (or num_replicas, "
            "min_replicas) in the config, set fit_to_cluster: true, or add nodes"
        )
    return problems


def report(sizing: Sizing) -> None:
    """Log what was adapted and what cannot be placed."""
    for change in sizing.changes:
        log.warning("stemscribe sizing: %s", change)
    for problem in sizing.problems:
        log.error("stemscribe cannot place every replica: %s", problem)

"""Training on several devices or machines with `tf.distribute`, chosen by one flag.

    --distribute none            one device (the default)
    --distribute mirrored        every local device (GPUs; on a CPU-only machine `--devices N` splits the
                                 CPU into N logical devices, which is how it is tested here)
    --distribute multi_worker    several processes or machines: run the same command on every worker, each
                                 with its own TF_CONFIG ({"cluster": {"worker": [...]}, "task": {...}})

What stays the same as on one device, so the metrics agree within float summation order:
- **The batch is global.** `--batch_size` is the batch of one optimizer step across all replicas; each
  global batch (the same permutation of (seed, epoch) a single-device run uses) is cut into one
  contiguous slice per replica (`replica_batches`). No per-worker batch or learning-rate scaling is
  applied, because the step is the same step.
- **Summed losses, summed gradients.** The families' losses are sums over the batch; the replicas'
  gradients are summed by the optimizer's all-reduce, which gives the single-device gradient. A penalty
  every replica adds in full (L2 on embedding tables) is divided by the number of replicas
  (`per_replica_penalty`).
- **In-batch negatives across replicas.** The two-tower's softmax ranks each query against the positives
  of the whole global batch, not only its replica's slice (`cross_replica_candidates`: an all-gather
  whose gradient flows back to the replica that produced each candidate).

Checkpoints and saved models are written by the chief (worker 0); the other workers write theirs under
`<models dir>/.workers/<task>/` (every worker must take part in a save, and they must not write the same
files on a shared disk). Resuming works as on one device: each worker reads its own last checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi_worker")


class DistributeError(ValueError):
    """A strategy that cannot be set up as asked (the message says why and what to do)."""


def make_strategy(name: str = "none", devices: int = 0) -> tf.distribute.Strategy:
    """The strategy of `--distribute` (call before any TensorFlow op has run: logical devices are fixed then).

    devices: for `mirrored` on a machine without GPUs, split the CPU into this many logical devices
      (0: GPUs if any, else the one CPU); for `multi_worker`, logical CPU devices per worker (0: 1).
    """
    if name not in STRATEGIES:
        raise DistributeError(f"unknown --distribute {name!r}; choose from {', '.join(STRATEGIES)}")
    if devices < 0:
        raise DistributeError(f"--devices must be >= 0, got {devices}")
    if name == "none":
        if devices > 1:
            raise DistributeError("--devices needs --distribute mirrored or multi_worker")
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        cluster = _check_tf_config()
        if devices > 1:
            _split_cpu(devices)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = len(cluster["cluster"].get("worker", [])) + len(cluster["cluster"].get("chief", []))
        print(f"multi-worker training: {workers} workers, {strategy.num_replicas_in_sync} replicas; "
              f"this is {cluster['task']['type']} {cluster['task']['index']}", flush=True)
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and devices:
        raise DistributeError("--devices splits a CPU; with GPUs every visible GPU is a replica "
                              "(choose them with CUDA_VISIBLE_DEVICES)")
    if not gpus:
        _split_cpu(max(devices, 1))
    names = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
    strategy = tf.distribute.MirroredStrategy(names)
    print(f"mirrored training on {len(names)} devices: {', '.join(names)}", flush=True)
    return strategy


def _split_cpu(devices: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * devices
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError as error:  # TensorFlow already started: the devices it has are the devices there are
        have = len(tf.config.list_logical_devices("CPU"))
        if have != devices:
            raise DistributeError(f"cannot split the CPU into {devices} devices after TensorFlow has started "
                                  f"(it has {have}); set --devices before anything runs") from error


def _check_tf_config() -> dict:
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        raise DistributeError("--distribute multi_worker needs TF_CONFIG on every worker, e.g. "
                              '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                              '"task": {"type": "worker", "index": 0}} (README: "Several devices or machines")')
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if not isinstance(workers, list) or task["type"] not in ("worker", "chief") or int(task["index"]) < 0:
            raise ValueError("task type must be worker or chief and index >= 0")
    except (ValueError, KeyError, TypeError) as error:
        raise DistributeError(f"TF_CONFIG is not a valid cluster description ({error}): {text[:200]}") from None
    return config


def num_replicas() -> int:
    """Replicas of the strategy in scope (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def per_replica_penalty(weight: float) -> float:
    """A regularisation weight for a penalty every replica adds to its loss: the all-reduced gradient sums
    the replicas' copies, so each carries 1 / replicas of it (build the model inside the strategy's scope)."""
    return weight / num_replicas()


def task() -> tuple[str, int]:
    """(task type, index) of this process in TF_CONFIG; ("chief", 0) without one."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    found = config.get("task") or {}
    return found.get("type", "chief"), int(found.get("index", 0))


def is_chief() -> bool:
    """The worker that writes results: the `chief` task, or worker 0 when the cluster has no chief."""
    if not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return True
    kind, index = task()
    has_chief = bool(json.loads(os.environ["TF_CONFIG"])["cluster"].get("chief"))
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def models_root(root: Path) -> Path:
    """Where this process keeps models and checkpoints: `root` on the chief, a per-worker folder otherwise."""
    if is_chief():
        return Path(root)
    kind, index = task()
    if Path(root).parts[-2:] == (".workers", f"{kind}-{index}"):  # already this worker's (an ensemble's members)
        return Path(root)
    return Path(root) / ".workers" / f"{kind}-{index}"


def replica_batches(make_epochs, strategy: tf.distribute.Strategy):
    """A distributed dataset giving each replica its contiguous slice of every global batch.

    make_epochs: () -> the global batches (every worker builds the same stream: its order is a function of
      (seed, epoch) only). Global batch of n rows, R replicas: replica g gets rows [n*g//R, n*(g+1)//R), so
      the slices of one step are exactly the single-device batch (the last, smaller batch included).
    """
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def slices(*batch):  # tf.data passes a tuple element's parts as separate arguments
            batch = batch[0] if len(batch) == 1 else batch
            n = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]

            def piece(g):
                begin, end = n * g // replicas, n * (g + 1) // replicas
                return tf.nest.map_structure(lambda t: t[begin:end], batch)

            return tf.data.Dataset.range(first, first + local).map(piece)

        # Local replicas take consecutive elements in turn (tf.distribute's multi-device iterator).
        return make_epochs().flat_map(slices).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def global_batch_mean(total: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """This replica's share of a mean over the whole global batch: its `total` / the `count` summed over
    replicas. The replicas' shares (and their gradients, which the optimizer sums) add up to the
    one-device mean; on one replica it is total / count. Empty batches count as 1 (a zero loss)."""
    count = tf.cast(count, total.dtype)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        with tf.device(_replica_device(context)):
            count = tf.identity(count)
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total / tf.maximum(count, 1.0)


def cross_replica_candidates(candidates: tf.Tensor, *aligned: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Every replica's in-batch candidates, this replica's own first: ([C, d], *[C]) from ([B, d], *[B]).

    On one replica it returns its inputs. Otherwise the candidates of the whole global batch are gathered
    (the gradient of the gather sums each replica's use of a candidate back onto the replica that made it)
    and rolled so this replica's slice comes first, which keeps row i's positive in column i: the
    convention of `tfrs.tasks.Retrieval` (extra candidates after the positives).
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return (candidates, *aligned)
    # MultiWorkerMirroredStrategy gathers to the value's device, which must therefore be set.
    with tf.device(_replica_device(context)):
        local = [tf.identity(t) for t in (tf.shape(candidates)[:1], candidates, *aligned)]
    sizes = context.all_gather(local[0], axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    gathered = [context.all_gather(t, axis=0) for t in local[1:]]
    return tuple(tf.roll(t, -offset, axis=0) for t in gathered)


def _replica_device(context) -> str:
    """This replica's device: MirroredStrategy lists it ([[device]]); a one-device worker of
    MultiWorkerMirroredStrategy lists nothing, and its worker has that one device."""
    try:
        listed = tf.nest.flatten(context.devices)
    except IndexError:  # MultiWorkerMirroredStrategy's replica context has no device list to index
        listed = []
    device = listed[0] if listed else ""
    if not device:
        local = tf.distribute.get_strategy().extended.worker_devices
        device = local[0] if len(local) == 1 else ""
    return device

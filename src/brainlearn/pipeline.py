"""Layer-pipelined Forward-Forward: one process per layer, activities passed forward with send/recv.

An FF layer needs nothing back from the layers above it (Hinton 2022, sec. 1): its update depends
only on its own input and output. So layer k can train on minibatch i while layer k+1 trains on
minibatch i - 1. Backprop cannot do this without stale gradients, because layer k's update waits
for the error signal of every layer above it.

Stage k (process k of `stages`) owns hidden layer k; the last stage also owns the linear softmax.
For each minibatch stage k receives from stage k - 1 one message: the positive and negative
activities, the neutral-label activity, and the softmax's input so far (stage 0 builds them from
the images). It computes its layer's outputs with the weights from *before* this minibatch, takes
its own local step, and sends the outputs on (asynchronously: it goes on to the next minibatch). Each layer therefore gets exactly the inputs it
gets in sequential training, whatever the timing: the pipeline's weights equal those of
`ForwardForward.train_step` called batch after batch (tested), and it only runs faster.

Hard negatives need the softmax, which reads the top layers, before layer 1 can take its step:
a dependency backwards through the pipeline. The pipeline therefore draws random negative labels
(stage 0, from the learner's generator, as the sequential learner does with negatives="random").
"""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .algorithms.forward_forward import ForwardForward, layer_norm
from .data import Dataset
from .distributed import collective
from .train import TrainConfig, apply_lr_schedule, minibatches


def check_pipeline(learner: ForwardForward, stages: int) -> None:
    if learner.config.negatives != "random":
        raise ValueError("the layer pipeline needs negatives='random': hard negatives read the softmax "
                         "over the top layers before layer 1 can learn")
    if stages != len(learner.layers):
        raise ValueError(f"one process per hidden layer: {len(learner.layers)} layers need {len(learner.layers)} "
                         f"processes, not {stages}")


def stage_step(learner: ForwardForward, stage: int, x: torch.Tensor, y: torch.Tensor,
               received: torch.Tensor | None) -> tuple[torch.Tensor | None, dict[str, float]]:
    """Stage `stage`'s share of `ForwardForward.train_step` on one minibatch: the message for the next
    stage (computed before this layer learns), then this layer's local step (and, last, the softmax's)."""
    batch, widths = len(x), learner.config.hidden
    layer = learner.layers[stage]
    in_width = learner.n_inputs if stage == 0 else widths[stage - 1]
    readout_below = sum(widths[j] for j in learner.readout if j < stage)
    if stage == 0:  # layer 1's product with the image, shared by the three passes as in train_step
        first = learner.first_layer(x)
        with torch.no_grad():
            neutral_out = F.relu(first(None))
        pre = first(y, learner.negative_labels(y, None))
        readout = x.new_zeros(batch, 0)
    else:
        h, neutral, readout = received.split([2 * batch * in_width, batch * in_width, batch * readout_below])
        h, neutral, readout = h.view(2 * batch, in_width), neutral.view(batch, in_width), readout.view(batch, -1)
        with torch.no_grad():
            neutral_out = F.relu(layer(layer_norm(neutral)))
        pre = layer(layer_norm(h))
    with torch.no_grad():
        if stage in learner.readout:
            readout = torch.cat([readout, layer_norm(neutral_out)], 1)
    out = learner.activation(pre)
    message = None
    if stage + 1 < len(learner.layers):
        message = torch.cat([out.detach().flatten(), neutral_out.flatten(), readout.flatten()])
    metrics = {}
    if stage + 1 == len(learner.layers):  # the softmax learns first, as in train_step
        _, classifier_loss = learner.train_readout(readout, y)
        metrics["loss_classifier"] = classifier_loss.item()
    metrics[f"loss_layer{stage + 1}"] = learner.learn_layer(stage, out, batch).item()
    return message, metrics


def message_size(learner: ForwardForward, stage: int, batch: int) -> int:
    """Floats stage `stage` receives for a minibatch of `batch` images."""
    widths = learner.config.hidden
    in_width = widths[stage - 1]
    return 3 * batch * in_width + batch * sum(widths[j] for j in learner.readout if j < stage)


def pipeline_fit(learner: ForwardForward, data: Dataset, config: TrainConfig) -> dict:
    """Train `learner` with one process per layer (torch.distributed initialised, rank = stage).

    Every process builds the same learner and walks the same minibatches; each trains only its own
    layer. At the end rank 0 holds every layer's weights (sent to it), so it can evaluate or save the
    whole net. Returns this stage's timing and mean losses."""
    stage, stages = dist.get_rank(), dist.get_world_size()
    check_pipeline(learner, stages)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    sums: dict[str, float] = {}
    start = time.perf_counter()
    sending = None  # (work, tensor) of the message in flight
    for epoch in range(config.epochs):
        for step, idx in enumerate(minibatches(n, config, epoch)):
            apply_lr_schedule(learner.optimizers, config.lr_schedule, (epoch * steps_per_epoch + step) / total_steps)
            received = None
            if stage > 0:
                received = torch.empty(message_size(learner, stage, len(idx)))
                collective(dist.recv, received, stage - 1)
            message, metrics = stage_step(learner, stage, data.x_train[idx], data.y_train[idx], received)
            if message is not None:
                if sending is not None:
                    collective(sending[0].wait)
                sending = (dist.isend(message, stage + 1), message)  # travels while this stage goes on
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
    if sending is not None:
        collective(sending[0].wait)
    seconds = time.perf_counter() - start
    gather_layers(learner, stage, stages)
    steps = config.epochs * steps_per_epoch
    return {"stage": stage, "seconds": seconds, "samples_per_s": config.epochs * n / seconds,
            **{key: value / steps for key, value in sums.items()}}


def gather_layers(learner: ForwardForward, stage: int, stages: int) -> None:
    """Send every stage's layer (and the last stage's softmax) to rank 0."""
    for owner in range(1, stages):
        modules = [learner.layers[owner]] + ([learner.classifier] if owner == stages - 1 else [])
        for tensor in (t for module in modules for t in module.state_dict().values()):
            if stage == owner:
                collective(dist.send, tensor.contiguous(), 0)
            elif stage == 0:
                collective(dist.recv, tensor, owner)

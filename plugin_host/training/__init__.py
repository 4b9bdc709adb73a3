"""Training for methods that train (AdaIN decoders, perceptual networks, GANs): one scaffold and its parts.

A trainer builds its networks and writes a step function; :class:`TrainingRun` does the rest — torchrun/DDP,
exact resume, the data stream, the JSONL log, preview grids, progress and cancel, checkpoints, the fp16
export and its card — for any number of networks, optimisers and schedulers (a GAN's generator,
discriminator and EMA copy included). The parts stay usable on their own:

* :mod:`.data` — :class:`ImageFolder` crops and :func:`infinite_batches`, a stream that resumes at any step;
* :mod:`.checkpoint` — :func:`save_checkpoint` / :func:`restore` (RNG states included), :func:`export_model`;
* :mod:`.records` — :class:`JsonlLog` and :func:`save_grid`;
* :mod:`.distributed` — :func:`init_distributed`, :func:`wrap_ddp`, :func:`cleanup`;
* :mod:`.loop` — :func:`run_steps`.

What pytorch/examples' short scripts leave out is the point: data order and crops follow from the seed and
the sample's position, RNG states travel in the checkpoint, checkpoints are atomic and load with
``torch.load(weights_only=True)``, the log stays consistent on resume, and under DDP only rank 0 writes.
"""
from .checkpoint import CHECKPOINT_FORMAT, export_model, load_checkpoint, restore, save_checkpoint, unwrap
from .data import ImageFolder, infinite_batches
from .distributed import LEAVE_TIMEOUT_S, DistributedInfo, cleanup, init_distributed, wrap_ddp
from .loop import run_steps
from .records import JsonlLog, save_grid
from .run import TrainingRun, update_ema

__all__ = ["CHECKPOINT_FORMAT", "LEAVE_TIMEOUT_S", "DistributedInfo", "ImageFolder", "JsonlLog", "TrainingRun",
           "cleanup", "export_model", "infinite_batches", "init_distributed", "load_checkpoint", "restore",
           "run_steps", "save_checkpoint", "save_grid", "unwrap", "update_ema", "wrap_ddp"]

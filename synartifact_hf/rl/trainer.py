"""`RLTrainer`: the RL core DDPO (`synartifact_hf.ddpo.DDPOTrainer`) and Flow-GRPO
(`synartifact_hf.grpo.FlowGRPOTrainer`) share, on accelerate + peft: the Accelerator and trackers, freezing
the frozen parts and putting LoRA (or full training) on the denoiser (the UNet or the transformer), the
optimizer, the epoch loop (sample -> reward -> advantages -> train), prompt draws, reward collection (sync
or in a thread pool, see `rewards.py`), gathering rewards across processes, per-step gradient accumulation
with logging, saving in diffusers' LoRA format, checkpoints and resume, and image logging.

A method subclass provides what differs — the step kernel and the objective:

- ``_sample_batch(epoch, index, prompts, condition) -> (trajectory, images)``: one sampling batch;
  ``trajectory`` is a dict of batch-first tensors (``timesteps``, ``latents``, ``next_latents``,
  ``log_probs`` of shape (B, T, ...), plus the stored condition);
- ``_advantages(prompts, rewards) -> array``: rewards of every process (gathered) -> advantages;
- ``_step_loss(batch, j, condition) -> dict``: the loss (``"loss"``) of trained step ``j`` of a training
  batch, and what to log (``approx_kl``, ``clipfrac``, ...);
- ``_num_train_timesteps()``: trained steps per trajectory; ``_timestep_order``: their order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import RLConfig
from .rewards import RewardCollector, SampledBatch

__all__ = ["LORA_WEIGHT_NAME", "RLTrainer"]

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
_STATE_NAME = "trainer_state.json"
_CHECKPOINT_PREFIX = "checkpoint_"


class RLTrainer:
    """The shared RL trainer; see the module docstring. Subclasses set ``method`` (a name for messages and
    progress bars) and ``config_class``."""

    method = "RL"
    config_class: type = RLConfig

    def __init__(self, config, reward_function: Callable[..., Any], prompt_function: Callable[[], tuple[str, Any]],
                 pipeline, image_samples_hook: Callable[..., Any] | None = None):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__module__}.{self.config_class.__name__}; got "
                            f"{type(config).__name__}")
        for name, fn in (("reward_function", reward_function), ("prompt_function", prompt_function)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable; got {type(fn).__name__}")
        self.family = family = self._pipeline_family(pipeline, config)
        self.config, self.pipeline, self.image_samples_callback = config, pipeline, image_samples_hook
        self.reward_fn, self.prompt_fn = reward_function, prompt_function
        self.run_dir = Path(config.logdir) / config.run_name
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.num_train_timesteps = self._num_train_timesteps()

        self.accelerator = Accelerator(
            log_with=config.log_with,
            mixed_precision=config.mixed_precision,
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir)),
            # one backward pass per trained timestep: accumulate over all of them, so that
            # train_gradient_accumulation_steps counts training *batches* per optimizer step
            gradient_accumulation_steps=config.train_gradient_accumulation_steps * self.num_train_timesteps,
            **config.accelerator_kwargs,
        )
        self._check_batch_sizes()
        if config.log_with is not None:
            hparams = {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
            self.accelerator.init_trackers(config.tracker_project_name, config=hparams, init_kwargs=config.tracker_kwargs)
        set_seed(config.seed, device_specific=True)
        if config.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True

        self.inference_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            self.accelerator.mixed_precision, torch.float32
        )
        self.family.freeze(self.accelerator.device, self.inference_dtype)
        model = self._prepare_model(family.model, self.inference_dtype)
        self.trainable_parameters = [p for p in model.parameters() if p.requires_grad]
        if not self.trainable_parameters:
            raise ValueError(f"no trainable {family.model_name} parameter; check lora_target_modules="
                             f"{config.lora_target_modules}")
        optimizer = torch.optim.AdamW(
            self.trainable_parameters,
            lr=config.train_learning_rate,
            betas=(config.train_adam_beta1, config.train_adam_beta2),
            weight_decay=config.train_adam_weight_decay,
            eps=config.train_adam_epsilon,
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_save_state_pre_hook(self._save_model_hook)
        self.accelerator.register_load_state_pre_hook(self._load_model_hook)
        self.rewards = RewardCollector(reward_function, self.accelerator.device, config.async_reward_computation,
                                       config.max_workers)
        self.history: list[dict[str, float]] = []
        self.first_epoch = 0
        self.global_step = 0
        self._init_method()
        if config.resume_from:
            self._resume(config.resume_from)

    # ------------------------------------------------------------------ what a method provides
    def _pipeline_family(self, pipeline, config):
        """The pipeline's family (``rl/families.py``), refusing pipelines the method does not train."""
        raise NotImplementedError

    def _num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def _init_method(self):
        """Method state made after the model is ready (negative conditions, stat trackers)."""

    def _encode(self, prompt_batches: list[tuple[str, ...]]) -> list[dict[str, torch.Tensor]]:
        return [self.family.encode(prompts) for prompts in prompt_batches]

    def _draw_prompts(self) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        prompts, metadata = zip(*[self.prompt_fn() for _ in range(self.config.sample_batch_size)])
        return prompts, metadata

    def _sample_batch(self, epoch: int, index: int, prompts, condition) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def _advantages(self, prompts: list[str], rewards: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _training_condition(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _step_loss(self, batch: dict[str, torch.Tensor], j: int, condition) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _timestep_order(self, total: int, num_steps: int, device) -> torch.Tensor | None:
        """Per-trajectory order of the stored steps for training (None: as stored)."""
        return None

    def _state(self) -> dict:
        """Method state saved with each checkpoint (and given back to `_load_state` on resume)."""
        return {}

    def _load_state(self, state: dict):
        pass

    # ------------------------------------------------------------------ model set-up
    def _prepare_model(self, model, inference_dtype: torch.dtype):
        config, device, name = self.config, self.accelerator.device, self.family.model_name
        if getattr(model, "peft_config", None):
            raise ValueError(
                f"the pipeline's {name} already carries a LoRA adapter; {type(self).__name__} adds its own. To "
                "continue a run, use config.resume_from; to start from merged weights, call pipe.fuse_lora() and "
                "pipe.unload_lora_weights() first"
            )
        if config.use_lora:
            from peft import LoraConfig

            model.requires_grad_(False).to(device)
            if model.dtype != inference_dtype:
                model.to(dtype=inference_dtype)
            model.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, init_lora_weights="gaussian",
                                         target_modules=list(config.lora_target_modules)))
            for param in model.parameters():
                if param.requires_grad:  # LoRA weights train in fp32 whatever the frozen weights' dtype
                    param.data = param.data.float()
        else:
            model.requires_grad_(True).to(device)
            if model.dtype != torch.float32:  # the optimizer needs fp32 master weights
                model.to(dtype=torch.float32)
        if config.gradient_checkpointing:
            model.enable_gradient_checkpointing()  # active only with gradients on: sampling runs at full speed
        return model

    def _check_batch_sizes(self):
        cfg = self.config
        per_process = cfg.samples_per_epoch
        if per_process % cfg.train_batch_size:
            raise ValueError(
                f"sample_batch_size * sample_num_batches_per_epoch ({per_process}) must be divisible by "
                f"train_batch_size ({cfg.train_batch_size})"
            )
        if (per_process // cfg.train_batch_size) % cfg.train_gradient_accumulation_steps:
            raise ValueError(
                f"the {per_process // cfg.train_batch_size} training batches per epoch must be divisible by "
                f"train_gradient_accumulation_steps ({cfg.train_gradient_accumulation_steps}) so that every "
                "epoch ends on an optimizer step"
            )

    # ------------------------------------------------------------------ public API
    def train(self, epochs: int | None = None) -> list[dict[str, float]]:
        """Train until epoch ``epochs`` (default ``config.num_epochs``; counted from 0, so a resumed run
        continues where it stopped). Returns ``history``. The reward thread pool is shut down when it returns
        or fails."""
        epochs = self.config.num_epochs if epochs is None else epochs
        bar = tqdm(range(self.first_epoch, epochs), desc=f"{self.method} epochs",
                   disable=not self.accelerator.is_local_main_process)
        try:
            for epoch in bar:
                self.global_step = self.step(epoch, self.global_step)
                bar.set_postfix(reward=f"{self.history[-1]['reward_mean']:.4f}")
                self.first_epoch = epoch + 1
                if self.config.save_freq and (epoch + 1) % self.config.save_freq == 0:
                    self.save_checkpoint(epoch)
        finally:
            self.rewards.close()
            self.family.finish()
        self.accelerator.wait_for_everyone()
        return self.history

    def step(self, epoch: int, global_step: int) -> int:
        """One epoch: sample, reward, train. Returns the updated global (optimizer) step."""
        acc = self.accelerator
        trajectories, batches = self._generate_samples(epoch)
        samples = {k: torch.cat([s[k] for s in trajectories]) for k in trajectories[0]}
        all_rewards = acc.gather(self.rewards.collect(batches)).cpu().numpy().astype(np.float64)
        prompts = self._gather_prompts([p for b in batches for p in b.prompts])
        advantages = np.asarray(self._advantages(prompts, all_rewards), dtype=np.float64)
        samples["advantages"] = (
            torch.as_tensor(advantages, dtype=torch.float32).reshape(acc.num_processes, -1)[acc.process_index]
            .to(acc.device)
        )
        record = {"epoch": epoch, "reward_mean": float(all_rewards.mean()), "reward_std": float(all_rewards.std())}
        acc.log(dict(record), step=global_step)
        self._log_images(batches, global_step)

        total, num_steps = samples["timesteps"].shape[:2]
        train_info = defaultdict(list)
        for inner_epoch in range(self.config.train_num_inner_epochs):
            perm = torch.randperm(total, device=acc.device)
            batch = {k: v[perm] for k, v in samples.items()}
            order = self._timestep_order(total, num_steps, acc.device)
            if order is not None:
                rows = torch.arange(total, device=acc.device)[:, None]
                for key in ("timesteps", "latents", "next_latents", "log_probs"):
                    batch[key] = batch[key][rows, order]
            size = self.config.train_batch_size
            train_batches = [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, total, size)]
            self.model.train()
            global_step = self._train_batches(train_batches, epoch, inner_epoch, global_step, train_info)
            if not acc.sync_gradients:
                raise RuntimeError("internal: an inner epoch ended between optimizer steps")
        record.update({k: float(np.mean(v)) for k, v in train_info.items()})
        record["global_step"] = global_step
        self.history.append(record)
        return global_step

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Save the trained weights: LoRA -> ``pytorch_lora_weights.safetensors`` in diffusers' format (load it
        with the pipeline's ``load_lora_weights(save_directory)``); full training -> the whole pipeline (reload
        with its class's ``from_pretrained(save_directory)``). With mixed precision the frozen parts are saved
        in the dtype they were cast to."""
        save_directory = Path(save_directory)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_directory.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=save_directory.parent, prefix=f".{save_directory.name}.") as tmp:
                if self.config.use_lora:
                    self._save_lora(tmp)
                else:
                    setattr(self.pipeline, self.family.model_name, self.accelerator.unwrap_model(self.model))
                    self.pipeline.save_pretrained(tmp, safe_serialization=True)
                _move_into(Path(tmp), save_directory)
        self.accelerator.wait_for_everyone()
        return save_directory

    def save_checkpoint(self, epoch: int) -> Path:
        """Save trainable weights, optimizer, RNG and trainer state to ``checkpoints/checkpoint_<epoch>``."""
        acc = self.accelerator
        final = self.checkpoint_dir / f"{_CHECKPOINT_PREFIX}{epoch}"
        tmp = self.checkpoint_dir / f".{_CHECKPOINT_PREFIX}{epoch}.partial"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # every process has written its RNG state before the folder is renamed
        if acc.is_main_process:
            state = {
                "epoch": epoch,
                "global_step": self.global_step,
                "history": self.history,
                "use_lora": self.config.use_lora,
                "method": self.method,
                **self._state(),
                "config": self.config.to_dict(),
            }
            (tmp / _STATE_NAME).write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self._prune_checkpoints()
        acc.wait_for_everyone()
        return final

    # ------------------------------------------------------------------ sampling and rewards
    def _generate_samples(self, epoch: int) -> tuple[list[dict[str, torch.Tensor]], list[SampledBatch]]:
        """Sample the epoch's batches (scoring each as it comes out); returns their trajectories and batches."""
        iterations = self.config.sample_num_batches_per_epoch
        drawn = [self._draw_prompts() for _ in range(iterations)]
        conditions = self._encode([prompts for prompts, _ in drawn])
        self.model.eval()
        trajectories, batches = [], []
        show = self.accelerator.is_local_main_process
        for index in tqdm(range(iterations), desc="sampling", leave=False, disable=not show):
            prompts, metadata = drawn[index]
            trajectory, images = self._sample_batch(epoch, index, prompts, conditions[index])
            trajectories.append(trajectory)
            # scored now, or in the pool while the next batch samples
            batches.append(self.rewards.submit(SampledBatch(images, tuple(prompts), tuple(metadata))))
        return trajectories, batches

    def _gather_prompts(self, prompts: list[str]) -> list[str]:
        """Every process's prompts in ``accelerator.gather`` order (process 0's first)."""
        if self.accelerator.num_processes == 1:
            return list(prompts)
        from accelerate.utils import gather_object

        return list(gather_object(list(prompts)))

    def _log_images(self, batches: list[SampledBatch], global_step: int):
        acc = self.accelerator
        tracker = acc.trackers[0] if acc.trackers else None
        if self.image_samples_callback is not None:
            self.image_samples_callback([b.as_trl_list() for b in batches], global_step, tracker)
        if not (self.config.log_images and acc.is_main_process):
            return
        first = batches[0]
        array = (first.images.detach().float().cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for tracker in acc.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"samples": array}, step=global_step, dataformats="NHWC")
                captions = "\n".join(
                    f"{i}: {p} | reward {r:.4f}  " for i, (p, r) in enumerate(zip(first.prompts, first.rewards.tolist()))
                )
                tracker.writer.add_text("sample_prompts", captions, global_step=global_step)
            elif hasattr(tracker, "log_images"):
                tracker.log_images({"samples": list(array)}, step=global_step)

    # ------------------------------------------------------------------ training
    def _train_batches(self, batches, epoch, inner_epoch, global_step, train_info):
        acc = self.accelerator
        info = defaultdict(list)
        show = acc.is_local_main_process
        for batch in tqdm(batches, desc="training", leave=False, disable=not show):
            condition = self._training_condition(batch)  # paired with the negative once per batch
            for j in range(self.num_train_timesteps):
                with acc.accumulate(self.model):
                    out = self._step_loss(batch, j, condition)
                    for key, value in out.items():
                        info[key].append(value.detach())
                    acc.backward(out["loss"])
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.trainable_parameters, self.config.train_max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                if acc.sync_gradients:
                    logged = acc.reduce({k: torch.stack(v).mean() for k, v in info.items()}, reduction="mean")
                    logged = {k: float(v) for k, v in logged.items()}
                    for k, v in logged.items():
                        train_info[k].append(v)
                    acc.log(logged | {"epoch": epoch, "inner_epoch": inner_epoch}, step=global_step)
                    global_step += 1
                    info = defaultdict(list)
        return global_step

    # ------------------------------------------------------------------ checkpoints
    def _lora_state_dict(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.accelerator.unwrap_model(self.model))
        if self.family.kind == "ddim":  # diffusers' UNet LoRA naming, as its SD training scripts write it
            from diffusers.utils import convert_state_dict_to_diffusers

            state = convert_state_dict_to_diffusers(state)
        return state

    def _save_lora(self, folder):
        name = self.family.model_name
        model = self.accelerator.unwrap_model(self.model)
        self.family.lora_pipeline_class.save_lora_weights(
            save_directory=folder,
            safe_serialization=True,
            weight_name=LORA_WEIGHT_NAME,
            **{f"{name}_lora_layers": self._lora_state_dict(),
               f"{name}_lora_adapter_metadata": model.peft_config["default"].to_dict()},
        )

    def _save_model_hook(self, models, weights, output_dir):
        # accelerate would save the whole denoiser (base weights included) under a generic name; save just
        # the trainable part, in the format diffusers loads, and drop the default copy
        if self.accelerator.is_main_process:
            if self.config.use_lora:
                self._save_lora(output_dir)
            else:
                self.accelerator.unwrap_model(self.model).save_pretrained(
                    os.path.join(output_dir, self.family.model_name), safe_serialization=True, max_shard_size="1000GB"
                )
        while weights:
            weights.pop()

    def _load_model_hook(self, models, input_dir):
        # load in place into the parameters the optimizer already holds, so training goes on with them
        from safetensors.torch import load_file

        model = self.accelerator.unwrap_model(self.model)
        name = self.family.model_name
        device = str(self.accelerator.device)
        if self.config.use_lora:
            from diffusers.utils import convert_unet_state_dict_to_peft
            from peft import set_peft_model_state_dict

            path = os.path.join(input_dir, LORA_WEIGHT_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{input_dir} has no {LORA_WEIGHT_NAME}: not a LoRA {self.method} checkpoint")
            prefix = f"{name}."
            state = {k[len(prefix):]: v for k, v in load_file(path, device=device).items() if k.startswith(prefix)}
            result = set_peft_model_state_dict(model, convert_unet_state_dict_to_peft(state), adapter_name="default")
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected or not state:
                raise ValueError(f"LoRA checkpoint {path} does not match this {name}/LoRA config: {unexpected[:5]}")
        else:
            path = os.path.join(input_dir, name, "diffusion_pytorch_model.safetensors")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found: not a full-{name} {self.method} checkpoint")
            model.load_state_dict(load_file(path, device=device), strict=True)
        while models:
            models.pop()

    def _resume(self, resume_from: str):
        path = self._resolve_checkpoint(Path(resume_from).expanduser())
        state = json.loads((path / _STATE_NAME).read_text(encoding="utf-8"))
        if state.get("method", self.method) != self.method:
            raise ValueError(f"checkpoint {path} is a {state['method']} checkpoint, not {self.method}")
        if bool(state.get("use_lora")) != self.config.use_lora:
            raise ValueError(
                f"checkpoint {path} was trained with use_lora={state.get('use_lora')}, but config.use_lora="
                f"{self.config.use_lora}"
            )
        logger.info("resuming from %s", path)
        self.accelerator.load_state(str(path))
        self.first_epoch = int(state["epoch"]) + 1
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))
        self._load_state(state)

    def _prune_checkpoints(self):
        limit = self.config.num_checkpoint_limit
        if not limit:
            return
        found = sorted(_list_checkpoints(self.checkpoint_dir))
        for _, old in found[:-limit]:
            shutil.rmtree(old, ignore_errors=True)

    def _resolve_checkpoint(self, path: Path) -> Path:
        if (path / _STATE_NAME).is_file():
            return path
        found = _list_checkpoints(path) or _list_checkpoints(path / "checkpoints")
        if not found:
            raise FileNotFoundError(
                f"resume_from={str(path)!r}: no {self.method} checkpoint there (expected a checkpoint_<epoch> folder "
                f"with {_STATE_NAME}, or a folder holding such folders)"
            )
        return max(found)[1]


def _list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    out = []
    if folder.is_dir():
        for child in folder.iterdir():
            suffix = child.name[len(_CHECKPOINT_PREFIX):]
            if child.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit() and (child / _STATE_NAME).is_file():
                out.append((int(suffix), child))
    return out


def _move_into(src: Path, dst: Path):
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dst / item.name
        if target.is_dir() and item.is_dir():
            _move_into(item, target)
        else:
            os.replace(item, target)

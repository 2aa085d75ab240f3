"""What the baseline studies share: cells run in worker processes, CPU-time accounting, mean ± std over seeds.

A study is a list of independent *cells* (one model × operator × seed, say), each a call of a
top-level function with keyword arguments. :func:`run_cells` runs them in order in this
process, or in ``workers`` spawned processes of one thread each (CPU only), and returns the
results in the order given. Every cell reports the CPU seconds it used, so a run on a
shared, busy machine can still say what it would take on idle cores (CPU seconds / cores).
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

__all__ = ["run_cells", "mean_std", "fmt_mean_std", "check_seeds", "CpuClock"]


class CpuClock:
    """Wall and CPU seconds since construction (CPU: this process, all its threads)."""

    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def _call(fn: Callable, kwargs: dict, threads: int | None):
    if threads is not None:
        torch.set_num_threads(threads)
    return fn(**kwargs)


def run_cells(fn: Callable, cells: Sequence[dict], *, workers: int = 1, device: torch.device | str = "cpu",
              progress: bool = True, desc: str = "cells", label: Callable[[dict], str] | None = None,
              on_result: Callable | None = None) -> list:
    """``[fn(**kwargs) for kwargs in cells]``, in ``workers`` processes when > 1 on the CPU (spawned, one thread
    each: a forked child inherits torch's thread pool in an undefined state). ``on_result`` sees each result in
    order. ``fn`` and the arguments must pickle (top-level function, tensors, plain dataclasses)."""
    if type(workers) is not int or workers < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    workers = 1 if torch.device(device).type != "cpu" else min(workers, max(1, len(cells)))
    results = []
    with tqdm(total=len(cells), desc=f"{desc} ({workers} process{'es' if workers > 1 else ''})", unit="cell",
              disable=not progress) as bar:
        if workers == 1:
            for kwargs in cells:
                if label is not None:
                    bar.set_postfix_str(label(kwargs))
                results.append(fn(**kwargs))
                bar.update()
                if on_result is not None:
                    on_result(results[-1])
        else:
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(_call, fn, dict(kwargs, progress=False), 1) if "progress" in kwargs
                           else pool.submit(_call, fn, kwargs, 1) for kwargs in cells]
                for kwargs, future in zip(cells, futures):
                    results.append(future.result())
                    if label is not None:
                        bar.set_postfix_str(label(kwargs))
                    bar.update()
                    if on_result is not None:
                        on_result(results[-1])
    return results


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value: a spread needs two seeds)."""
    v = torch.tensor([float(x) for x in values], dtype=torch.float64)
    if v.numel() == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std()) if v.numel() > 1 else math.nan


def fmt_mean_std(values: Sequence[float], digits: int = 3, *, signed: bool = False) -> str:
    """"m ± s" (just "m" for one value) with ``digits`` decimals; ``signed`` prints a + on positive means."""
    m, s = mean_std(values)
    head = f"{m:+.{digits}f}" if signed else f"{m:.{digits}f}"
    return head if math.isnan(s) else f"{head} ± {s:.{digits}f}"


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """Seeds as a list of distinct ints >= 0, in order; ``ValueError`` otherwise."""
    seeds = list(seeds)
    if not seeds or any(type(s) is not int or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct ints >= 0; got {seeds}")
    return seeds

"""A small real job: split a text into chunks, count words in parallel, merge and report."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import List

from flowmancer.task import Task, task


@task
class SplitText(Task):
    source: str
    chunks: int = 4

    def run(self) -> None:
        words = re.findall(r"[a-z']+", Path(self.source).read_text(encoding="utf-8").lower())
        size = -(-len(words) // self.chunks)
        for i in range(self.chunks):
            self.shared_dict[f"chunk-{i}"] = words[i * size : (i + 1) * size]
        self.logger.info(f"{len(words)} words in {self.chunks} chunks of up to {size}")


@task
class CountWords(Task):
    chunk: int

    def run(self) -> None:
        counts = collections.Counter(self.shared_dict[f"chunk-{self.chunk}"])
        self.shared_dict[f"counts-{self.chunk}"] = dict(counts)
        print(f"chunk {self.chunk}: {sum(counts.values())} words, {len(counts)} distinct")


@task
class MergeCounts(Task):
    chunks: List[int]
    top: int = 5
    output: str = "wordcount.json"

    def run(self) -> None:
        total: collections.Counter[str] = collections.Counter()
        for i in self.chunks:
            total.update(self.shared_dict[f"counts-{i}"])
        Path(self.output).write_text(json.dumps(dict(total.most_common()), indent=1), encoding="utf-8")
        for word, n in total.most_common(self.top):
            print(f"{word:>10} {n}")

"""What every op is given: the task, where to report progress, the server, the storage node.

The agent builds one ``OpContext`` per task and calls the op with it (``OPS[task["type"]](ctx)``);
the CLI and tests build one with ``OpContext.local``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from imager.errors import InvalidTask
from imager.progress import Progress
from contract.task import Task

if TYPE_CHECKING:
    from imager.api import TaskClient


@dataclass
class OpContext:
    task: Task
    progress: Progress = field(default_factory=Progress)
    client: TaskClient | None = None   # None: no server (the CLI, tests)
    storage: str | None = None         # root of the mounted storage node (capture, deploy, multicast)

    @classmethod
    def local(cls, progress: Progress | None = None, *, storage: str | None = None, image: str | None = None,
              image_type: str | None = None, **task: Any) -> OpContext:
        """A context without a server: ``image`` names an image in ``storage``; other keywords are task fields."""
        fields: dict[str, Any] = dict(task)
        if image is not None:
            fields["image"] = {"name": image, **({"type": image_type} if image_type else {})}
        return cls(task=cast(Task, fields), progress=progress or Progress(), storage=storage)

    @property
    def storage_root(self) -> str:
        if self.storage is None:
            raise InvalidTask(f"a {self.task.get('type', 'storage')} task needs its storage node")
        return self.storage

    @property
    def image_name(self) -> str:
        image = self.task.get("image")
        name = image.get("name") if image else None
        if not name:
            raise InvalidTask("the task names no image")
        return name

    def option(self, key: str, default: Any = None) -> Any:
        return (self.task.get("options") or {}).get(key, default)

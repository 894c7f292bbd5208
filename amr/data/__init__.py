"""Task streams from real data that ships with the install (see `amr.data.tasks`)."""

from amr.data.tasks import SOURCES, Task, default_data_config, make_tasks

__all__ = ["SOURCES", "Task", "default_data_config", "make_tasks"]

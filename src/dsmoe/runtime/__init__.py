"""Process-level settings that make CPU training fast (nothing here changes numerics)."""

from dsmoe.runtime.cpu_allocator import retain_freed_memory, unmap_freed_memory

__all__ = ["retain_freed_memory", "unmap_freed_memory"]

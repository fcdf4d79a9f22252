"""Process-level settings: where and in what precision a command computes (devices), and CPU memory reuse that
makes CPU training fast (cpu_allocator)."""

from dsmoe.runtime.cpu_allocator import retain_freed_memory, unmap_freed_memory

__all__ = ["retain_freed_memory", "unmap_freed_memory"]

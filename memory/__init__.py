"""Memories that methods carry between versions (replay buffers, neural memory); later issues."""

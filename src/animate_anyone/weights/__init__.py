"""Checkpoint formats: the released Moore/MusePose ``.pth`` files and our native safetensors layout."""

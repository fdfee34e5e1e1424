"""PyTorch definitions of the Open-Sora 1.2 models split into the blocks of models/README.md."""

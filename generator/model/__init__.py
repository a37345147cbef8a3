"""Stage 2: the network: backbones, runtime, features, heads, checkpoints."""

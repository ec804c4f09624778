"""The benchmark behind ``python -m gan_kernels bench`` and the ``demo`` command (see bench/README.md).

* :mod:`.cases`  -- the ops, kinds and size sweeps, their inputs, implementations and byte counts;
* :mod:`.eager`  -- each op written out in plain PyTorch: the baseline of every ratio;
* :mod:`.floor`  -- a back end's raw ops under one autograd node: the floor of a call's host time;
* :mod:`.timing` -- interleaved rounds, the noisy flag, CUDA-graph replay, copy bandwidth, counts;
* :mod:`.run`    -- the op sweep and the ``bench`` command;
* :mod:`.host`   -- per-call host time at small sizes: eager vs each back end vs the floor;
* :mod:`.e2e`    -- whole WGAN-GP critic steps, library vs the hand-written recipe;
* :mod:`.report`, :mod:`.plots` -- tables, JSON / CSV and PNG output;
* :mod:`.demo`   -- the ``demo`` command.
"""

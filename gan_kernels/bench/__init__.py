"""The benchmark suite behind ``python -m gan_kernels bench`` (see bench/README.md).

* :mod:`.cases`  -- the ops, kinds and size sweeps, their inputs, implementations and byte counts;
* :mod:`.timing` -- timers (do_bench / CUDA events on GPU, perf_counter on CPU), copy bandwidth,
  dispatch counting and peak memory;
* :mod:`.run`    -- the sweep and the ``bench`` command;
* :mod:`.e2e`    -- one WGAN-GP critic step, library vs the hand-written eager recipe;
* :mod:`.report`, :mod:`.plots` -- tables, JSON / CSV and PNG output;
* :mod:`.demo`   -- the ``demo`` command.
"""

"""Small helpers every layer may use. Imports nothing else of transformer_jit.

    atomic   atomic_write: a temporary file, fsynced, renamed over the target; replaced_directory:
             a new directory built beside the old one, switched in one step
    signals  HeldInterrupts: Ctrl-C and SIGTERM wait while a step must not be cut in two
    overlap  check_apart: refuse an output that is or contains an input
    config   ConfigError and the checks of configuration dataclasses (check_fields, check_range,
             config_from_dict, is_int, is_number)
"""

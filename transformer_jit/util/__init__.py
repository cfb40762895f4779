"""Small helpers every layer may use. Imports nothing else of transformer_jit.

    atomic   atomic_write: a temporary file, fsynced, renamed over the target
    config   ConfigError and the checks of configuration dataclasses (check_fields, check_range,
             config_from_dict, is_int, is_number)
    extras   optional dependencies: the pip command that installs one (install_hint), require
"""

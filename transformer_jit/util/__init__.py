"""Small helpers every layer may use. Imports nothing else of transformer_jit.

    atomic        atomic_write: a temporary file, fsynced, renamed over the target; replaced_directory:
                  a new directory built beside the old one, switched in one step
    signals       HeldInterrupts: Ctrl-C and SIGTERM wait while a step must not be cut in two
    overlap       check_apart: refuse an output that would destroy an input
    config        ConfigError and the checks of configuration dataclasses (check_fields, check_range,
                  config_from_dict, is_int, is_number)
    regular_file  open_regular_file, read_regular_file, check_readable_file: input files that must
                  be regular files (a pipe or a device would block a read)
    json_file     read_json, parse_json: untrusted JSON, every failure one ValueError naming the file
    extras        optional dependencies: the pip command that installs one (install_hint), require
    npz           check_npz_members: an .npz whose arrays' headers claim more than the file holds
"""

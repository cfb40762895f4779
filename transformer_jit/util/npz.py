"""An .npz archive checked before NumPy reads it: np.load allocates each array as its header
declares, and only then finds out whether the data is there, so a crafted shape would take all
the memory (or fail as a MemoryError that names nothing)."""
import math
import os
import zipfile

import numpy as np

# The most that deflate can expand: a 258-byte match coded in about 2 bits.
DEFLATE_EXPANSION = 1032


def check_npz_members(f, compressed):
    """Raise ValueError, naming the member, if any member of the open archive `f` declares an array
    larger than the member's bytes, or claims more bytes than its storage can hold (the file's size
    if stored; DEFLATE_EXPANSION times its compressed size if deflated, as np.savez_compressed
    writes; other compressions are refused). compressed=False refuses deflated members too (np.savez
    writes none). Leaves f at its start."""
    size = os.fstat(f.fileno()).st_size
    with zipfile.ZipFile(f) as archive:
        for info in archive.infolist():
            name = repr(info.filename)
            if info.compress_type == zipfile.ZIP_STORED:
                room = size
            elif info.compress_type == zipfile.ZIP_DEFLATED and compressed:
                room = DEFLATE_EXPANSION * info.compress_size
            else:
                raise ValueError(f"member {name} is compressed" + (" other than by deflate" if compressed else ""))
            if info.file_size > room:
                raise ValueError(f"member {name} claims {info.file_size:,} bytes, more than its storage can hold")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise ValueError(f"member {name} declares a {dtype} array of shape {shape}, more than its "
                                 f"{info.file_size:,} bytes")
    f.seek(0)

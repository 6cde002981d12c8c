"""torchrun with the TCPStore's libuv backend off.

PyTorch 2.4 and later ask TCPStore for its libuv backend by default, and
torchrun gives no way to ask otherwise; a build without libuv (Debian
trixie's python3-torch 2.6) therefore cannot start torchrun at all
("use_libuv was requested but PyTorch was build without libuv support").
This runs torchrun's own main with TCPStore defaulting to the classic
backend, so the tests can check fertorch under that torchrun too. The
arguments are torchrun's.
"""

import sys

import torch.distributed as dist

_TCPStore = dist.TCPStore


class TCPStore(_TCPStore):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("use_libuv", False)
        super().__init__(*args, **kwargs)


# Before torch.distributed.run imports the rendezvous modules, which take
# TCPStore by name from torch.distributed.
dist.TCPStore = TCPStore

from torch.distributed.run import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "torchrun"
    sys.exit(main())

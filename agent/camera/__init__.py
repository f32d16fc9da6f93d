"""The camera as a volume: what model it is, what it holds, and safe reads of it.

- `profile`: camera profiles (TOML data in `profiles/`): where a model keeps what.
- `volume`: safe access to a mounted volume (O_NOFOLLOW, regular files only, bounded reads),
  and the one unlink a wipe uses.
- `deviceinfo`: what the camera says about itself (DEVICE.INF), checked.
- `scan`: the list of recordings and logs on a volume, every name treated as hostile.

Nothing here writes to a camera but that unlink, copies evidence or decides whether a device
is allowed.
"""

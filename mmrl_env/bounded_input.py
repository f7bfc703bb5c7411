"""Reading files a user hands us with a bound on what they can cost (see :mod:`mmrl_env.limits`).

Configs (YAML/JSON) are read at most :data:`~mmrl_env.limits.MAX_CONFIG_BYTES` bytes (so
``-c /dev/zero`` is refused at once, not read until the machine runs out of memory), and a
YAML file is parsed by one loader, :func:`load_yaml`, used wherever the project reads YAML:
PyYAML's ``SafeLoader`` (no tags that build objects), whose anchors and aliases are kept —
the shipped configs share sections with ``<<: *default`` — but bounded: a document whose
values, counted with every alias expanded, exceed ``MAX_CONFIG_VALUES`` (a "billion
laughs"), that nests deeper than ``MAX_CONFIG_DEPTH``, or that holds a recursive anchor is
refused with the file named, before any code walks it.

Archives (``.npz``, ``state.pt``, ``model.zip``) are zip files: :func:`check_zip` reads the
members' declared sizes (the central directory, nothing is inflated) and refuses a total
above ``MAX_DATA_BYTES`` or a member that inflates more than ``MAX_COMPRESSION_RATIO``
times; :func:`npz_headers` also reads each ``.npy`` header and checks that its shape and
dtype fit the member's size, so ``np.load`` never allocates for a lying header.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import mmrl_env.limits as limits


def read_bytes(path: str | Path, what: str = "config file", limit: int | None = None) -> bytes:
    """At most ``limit`` (default ``MAX_CONFIG_BYTES``) bytes of ``path``; a longer file (or an
    endless one like ``/dev/zero``) is a ``ValueError`` naming it and the limit."""
    limit = limits.MAX_CONFIG_BYTES if limit is None else limit
    try:
        with open(path, "rb") as f:  # in 1 MiB reads: read(limit + 1) would allocate the whole limit at once
            chunks, total = [], 0
            while total <= limit and (chunk := f.read(min(1 << 20, limit + 1 - total))):
                chunks.append(chunk)
                total += len(chunk)
        data = b"".join(chunks)
    except OSError as err:
        raise ValueError(f"cannot read the {what} {path} ({err.strerror or err})") from err
    if len(data) > limit:
        raise ValueError(f"the {what} {path} is larger than {limit:,} bytes (mmrl_env.limits.MAX_CONFIG_BYTES); "
                         "is it the right file?")
    return data


def read_text(path: str | Path, what: str = "config file", limit: int | None = None) -> str:
    """:func:`read_bytes` decoded as UTF-8 (an undecodable file is a ``ValueError`` naming it)."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"the {what} {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a merge (``<<``) whose flattened mapping exceeds the value bound
    (merges of merges grow exponentially while the nodes are composed, before any check could
    walk the result)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > limits.MAX_CONFIG_DEPTH:
                raise ConfigTooLarge(f"nests deeper than {limits.MAX_CONFIG_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        super().flatten_mapping(node)
        if len(node.value) > limits.MAX_CONFIG_VALUES:
            raise ConfigTooLarge(f"a merge ('<<') expands to more than {limits.MAX_CONFIG_VALUES:,} keys")


class ConfigTooLarge(ValueError):
    """A config whose expanded size or nesting is beyond :mod:`mmrl_env.limits`."""


def check_tree(value: Any, source: str) -> None:
    """Refuse a loaded config that is recursive, nests deeper than ``MAX_CONFIG_DEPTH`` or counts
    more than ``MAX_CONFIG_VALUES`` values once shared (aliased) parts are counted each time
    they appear. Stops as soon as a bound is passed, so a billion laughs costs microseconds."""
    budget = [limits.MAX_CONFIG_VALUES]
    fix = ("anchors and aliases (&name, *name) are supported only while they expand to a bounded config; "
           "write the values out")

    def walk(node: Any, depth: int, path: tuple[int, ...]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigTooLarge(f"{source}: expands to more than {limits.MAX_CONFIG_VALUES:,} values "
                                 f"(nested anchors/aliases, e.g. a 'billion laughs'); {fix}")
        if not isinstance(node, (dict, list)):
            return
        if id(node) in path:
            raise ConfigTooLarge(f"{source}: holds a recursive anchor (an alias used inside its own anchor); {fix}")
        if depth >= limits.MAX_CONFIG_DEPTH:
            raise ConfigTooLarge(f"{source}: nests deeper than {limits.MAX_CONFIG_DEPTH} levels")
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        for child in children:
            walk(child, depth + 1, (*path, id(node)))

    walk(value, 0, ())


def load_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML (safe tags only), bounded as the module says; ``source`` (a file
    name, or ``the value of <key>``) is named in every error. Malformed YAML raises
    ``yaml.YAMLError`` (callers word it); a bound raises :class:`ConfigTooLarge`."""
    try:
        value = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigTooLarge as err:
        raise ConfigTooLarge(f"{source}: {err}") from err
    check_tree(value, source)
    return value


def read_yaml_file(path: str | Path, what: str = "config file") -> Any:
    """A YAML file read with :func:`read_text`'s size bound and parsed by :func:`load_yaml`."""
    return load_yaml(read_text(path, what), str(path))


def read_json_file(path: str | Path, what: str = "JSON file", limit: int | None = None) -> Any:
    """A JSON file read with :func:`read_text`'s size bound (``limit``, default ``MAX_CONFIG_BYTES``);
    too deep or too large is a ``ValueError`` (``json.JSONDecodeError`` for malformed JSON)."""
    text = read_text(path, what, limit)
    try:
        value = json.loads(text)
    except RecursionError as err:
        raise ConfigTooLarge(f"{path}: nests too deeply to read") from err
    check_tree(value, str(path))
    return value


def check_zip(path: str | Path, what: str = "archive") -> list[zipfile.ZipInfo]:
    """The members of the zip file ``path`` after checking their declared sizes (nothing is
    inflated): the total must be at most ``MAX_DATA_BYTES``, and a member larger than
    ``RATIO_CHECKED_ABOVE`` must not inflate more than ``MAX_COMPRESSION_RATIO`` times.
    ``zipfile.BadZipFile`` for a file that is not a zip."""
    with zipfile.ZipFile(path) as z:
        members = z.infolist()
    total = sum(m.file_size for m in members)
    if total > limits.MAX_DATA_BYTES:
        raise ValueError(f"{what} {path} would take {total / 2**30:,.1f} GiB once decompressed, above the limit of "
                         f"{limits.MAX_DATA_BYTES / 2**30:,.0f} GiB (mmrl_env.limits.MAX_DATA_BYTES)")
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > limits.RATIO_CHECKED_ABOVE and ratio > limits.MAX_COMPRESSION_RATIO:
            raise ValueError(f"{what} {path}: member {m.filename!r} inflates {ratio:,.0f}x (from "
                             f"{m.compress_size:,} to {m.file_size:,} bytes), above the limit of "
                             f"{limits.MAX_COMPRESSION_RATIO}x (mmrl_env.limits.MAX_COMPRESSION_RATIO): it looks "
                             "like a zip bomb; save real data with numpy.savez or savez_compressed")
    return members


def _npy_header(f: Any, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``.npy`` stream ``f`` (positioned after its header on return)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f".npy format version {version} (this reader knows 1.0 and 2.0)")
        shape, _, dtype = read(f, max_header_size=10_000)
    except (ValueError, EOFError, SyntaxError) as err:
        raise ValueError(f"{where} has a damaged .npy header ({err})") from err
    return tuple(shape), dtype


def npz_headers(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of every array of the ``.npz`` ``path``, read from the ``.npy``
    headers only, after :func:`check_zip`; a header whose shape and dtype do not fit the member's
    size, or an object dtype, is a ``ValueError`` (so loading never allocates for a lie)."""
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    members = check_zip(path, "the .npz file")
    with zipfile.ZipFile(path) as z:
        for m in members:
            if not m.filename.endswith(".npy"):
                continue
            name = m.filename[:-4]
            with z.open(m) as f:
                shape, dtype = _npy_header(f, f"{path}: array {name!r}")
                header_len = f.tell()
            if dtype.hasobject:
                raise ValueError(f"{path}: array {name!r} holds Python objects (dtype {dtype}); "
                                 "save numbers only")
            need = math.prod(shape) * dtype.itemsize
            if need != m.file_size - header_len:
                raise ValueError(f"{path}: array {name!r} says shape {shape} of {dtype} ({need:,} bytes) but holds "
                                 f"{m.file_size - header_len:,} bytes; the file is damaged or crafted")
            out[name] = (tuple(shape), dtype)
    return out

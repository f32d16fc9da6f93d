"""What each file of one camera directory is, by the profile: the classification the scan and
`dockagent profile try` share.

A file's name says its kind, start, segment and channel (Profile.classify); its place and its
siblings say the rest: only files in the layout's roots are recordings (and wipeable), a
recording is important by its folder, its suffix or a sidecar marker beside it, a partner
(`<stem>.THM` beside `<stem>.MOV`) belongs to its clip and takes its times and marker, and a
file an ignore glob names is accounted for as ignored with the reason. Linear in the names
(RE2; sibling lookups by dictionary).

Pure: names in, classifications out; opens nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from agent.camera.profile_model import NameInfo, Profile
from agent.core.model import FileKind

NO_CLIP = "partner file without its clip beside it: sealed alone"
# Directories of up to this many files keep what each name says while they are classified (one
# RE2 pass); larger ones read each name again instead of holding it (a few hundred bytes each).
_KEEP_NAMES = 4096


class Names(Protocol):
    """A directory's file names, read again for each pass (a list, or the scan's
    agent.camera.dirnames.SortedNames)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class FileClass:
    """One file of a directory as the profile sees it."""

    rel_path: bytes
    info: NameInfo  # what the name says (a partner: its clip's times and channel)
    in_root: bool  # in one of the layout's roots and not the station's own metadata
    important: bool
    marked_by: str  # "folder", "suffix", "sidecar", or ""
    partner_of: bytes  # the clip's path below the volume root, or b""
    note: str  # for a person: why a file is what it is ("" for a plain recording)
    ignored: str  # the reason it is ignored, or "" (then it is taken in)

    @property
    def kind(self) -> FileKind:
        return self.info.kind if self.in_root else FileKind.OTHER


class DirectoryClassifier:
    """The profile's reading of directories, one at a time."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.layout = profile.layout
        self.roots = tuple(r.encode() + b"/" for r in self.layout.roots)
        self.folders = tuple(f.encode() for f in self.layout.marker_folders)
        self.metadata = frozenset(p.encode() for p in profile.metadata)

    def in_root(self, rel: bytes) -> bool:
        return rel not in self.metadata and any(rel.startswith(r) for r in self.roots)

    def ignored(self, name: bytes, rel: bytes) -> str:
        """Why the profile ignores a file ("" when it does not). A name that is not UTF-8 is
        never ignored: it is taken in, so no odd byte can hide a file from custody."""
        if not self.layout.ignore:
            return ""
        try:
            text_name, text_rel = name.decode("utf-8"), rel.decode("utf-8")
        except UnicodeDecodeError:
            return ""
        for glob in self.layout.ignore:
            if glob.matches(text_name, text_rel):
                return f"ignored by camera profile {self.profile.name} (matches {glob.source!r})"
        return ""

    def directory(self, dir_rel: bytes, names: Names) -> Iterator[FileClass]:
        """Every file of one directory (names as listed), in the order given, one at a time:
        a camera directory of 100,000 files never holds 100,000 classifications at once.

        What a name says is kept for every name of a small directory; a large one keeps only
        its markers' stems and its partners' clips and reads each name again as it goes (a
        second RE2 pass, a third where it has partners): its memory is its listing's."""
        cache = len(names) <= _KEEP_NAMES
        infos: dict[bytes, NameInfo] = {}
        sidecar_stems: set[bytes] = set()
        partner_stems: set[bytes] = set()
        partners = self.layout.partners
        for name in names:
            info = self.profile.classify(name)
            if cache:
                infos[name] = info
            if info.is_marker:
                sidecar_stems.add(info.stem)
            if _is_partner(name, partners):
                partner_stems.add(info.stem)
        in_folder = any(dir_rel == f or dir_rel.startswith(f + b"/") for f in self.folders)
        # The clip of each partner's stem: the least name of that stem that is no partner and
        # no marker and has a kind of its own (one answer, whatever the listing order).
        clips: dict[bytes, tuple[bytes, NameInfo]] = {}
        for name in names if partner_stems else ():
            info = infos[name] if cache else self.profile.classify(name)
            if info.stem not in partner_stems or (
                info.stem in clips and clips[info.stem][0] < name
            ):
                continue
            if info.kind is not FileKind.OTHER and not _is_partner(name, partners):
                clips[info.stem] = (name, info)
        for name in names:
            rel = dir_rel + b"/" + name if dir_rel else name
            info = infos[name] if cache else self.profile.classify(name)
            yield self._one(name, rel, info, clips, sidecar_stems, in_folder)

    def _one(
        self,
        name: bytes,
        rel: bytes,
        info: NameInfo,
        clips: dict[bytes, tuple[bytes, NameInfo]],
        sidecar_stems: set[bytes],
        in_folder: bool,
    ) -> FileClass:
        in_root = self.in_root(rel)
        partner_of, note = b"", ""
        if in_root and _is_partner(name, self.layout.partners):
            clip = clips.get(info.stem)
            if clip is None:
                note = NO_CLIP
            else:
                partner_of = rel[: len(rel) - len(name)] + clip[0]
                # A partner is its clip's: same start, segment, channel and marker.
                info = replace(clip[1], kind=info.kind, stem=info.stem)
                note = "partner of its clip"
        marked_by = ""
        if in_root and not info.is_marker:
            if in_folder:
                marked_by = "folder"
            elif info.suffix_marked:
                marked_by = "suffix"
            elif info.stem in sidecar_stems:
                marked_by = "sidecar"
        if in_root and info.is_marker:
            note = "importance marker of its stem"
        return FileClass(
            rel_path=rel,
            info=info,
            in_root=in_root,
            important=bool(marked_by),
            marked_by=marked_by,
            partner_of=partner_of,
            note=note,
            ignored=self.ignored(name, rel),
        )


def _is_partner(name: bytes, partners: tuple[str, ...]) -> bool:
    _, dot, ext = name.rpartition(b".")
    return bool(dot) and ext.upper().decode("latin-1") in partners

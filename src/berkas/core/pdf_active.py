"""What a PDF can do besides being read: scripts, actions that start programs or send data,
and files carried inside it. Found by walking every object the cross-reference lists.

The walk runs over pypdf's parse, so names arrive decoded (``/J#61vaScript`` is
``/JavaScript``, ISO 32000-1 7.3.5) and objects packed in compressed object streams
(7.5.7) are seen like any other; nothing is rendered and no content stream is decoded.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterator
from typing import BinaryIO

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject


class Finding(enum.Enum):
    """A kind of active content, with the words a refusal names it by."""

    # 12.6.4.16 JavaScript actions (/S /JavaScript, /JS), and the document-level scripts of
    # the name dictionary's /JavaScript tree (7.7.4), run when the file opens. PDF
    # JavaScript is the usual way into a reader's bugs (e.g. CVE-2023-21608, Acrobat).
    JAVASCRIPT = ("JavaScript", False)
    # 12.6.4.5 launch actions start an application or open a file (CVE-2010-1240).
    LAUNCH = ("a launch action (/Launch), which starts a program", False)
    # 12.7.5.2 and 12.7.5.4: submit-form and import-data actions send form data to, or
    # load it from, a URL or file; GoToR (12.6.4.3) opens another file, which on Windows
    # leaks the user's NTLM hash to a remote share (CVE-2018-4993, "BadPDF").
    SUBMIT_FORM = ("a submit-form action (/SubmitForm), which sends data out", False)
    IMPORT_DATA = ("an import-data action (/ImportData)", False)
    REMOTE_GOTO = ("a link that opens another file (/GoToR)", False)
    # Adobe Supplement to ISO 32000 Extension Level 3, 9.6 (ISO 32000-2 13.7): Flash and
    # other rich media, run by a player inside the reader.
    RICH_MEDIA = ("rich media (/RichMedia)", False)
    # 13.6 3D annotations: U3D and PRC scenes, parsed and scripted by the reader's 3D
    # plug-in (CVE-2009-3953, CVE-2011-2462, both exploited in the wild).
    THREE_D = ("3D content (/3D)", False)
    # 12.7.8: an XFA form is an XML form with its own scripts (JavaScript or FormCalc).
    XFA = ("an XFA form (/XFA), which carries scripts", False)
    # 7.11.4 embedded file streams, reached from the /EmbeddedFiles name tree (7.7.4), a
    # file specification's /EF (7.11.3), file attachment annotations (12.5.6.15) or a
    # GoToE action (12.6.4.4): a second file a reviewer would not see on the page.
    EMBEDDED_FILE = ("an embedded file (/EmbeddedFile)", True)

    def __init__(self, words: str, is_file: bool) -> None:
        self.words = words
        self.is_file = is_file


# Action types by their /S (Table 198); /URI, /GoTo, /Named and the rest stay allowed: a
# link to a website or a page of the same document is ordinary. /OpenAction and /AA
# (12.6.3, additional actions) are triggers, not actions: what they trigger is judged by
# its own /S wherever it is, so a document that opens at page 1 is not refused.
_ACTIONS = {
    "/JavaScript": Finding.JAVASCRIPT,
    "/Launch": Finding.LAUNCH,
    "/SubmitForm": Finding.SUBMIT_FORM,
    "/ImportData": Finding.IMPORT_DATA,
    "/GoToR": Finding.REMOTE_GOTO,
    "/GoToE": Finding.EMBEDDED_FILE,
    "/RichMediaExecute": Finding.RICH_MEDIA,
}
# Keys whose mere presence is the finding: /JS (a script, in an action or a rendition),
# the name dictionary's /JavaScript and /EmbeddedFiles trees, a file spec's /EF, an
# AcroForm's /XFA, a rich media annotation's /RichMediaContent.
_KEYS = {
    "/JS": Finding.JAVASCRIPT,
    "/JavaScript": Finding.JAVASCRIPT,
    "/EmbeddedFiles": Finding.EMBEDDED_FILE,
    "/EF": Finding.EMBEDDED_FILE,
    "/XFA": Finding.XFA,
    "/RichMediaContent": Finding.RICH_MEDIA,
}
_TYPES = {"/EmbeddedFile": Finding.EMBEDDED_FILE}
_SUBTYPES = {
    "/FileAttachment": Finding.EMBEDDED_FILE,
    "/RichMedia": Finding.RICH_MEDIA,
    "/3D": Finding.THREE_D,
}

# Direct objects nest (a dictionary in an array in a dictionary...); pypdf's parser bounds
# what one object can hold, and this bounds how deep the walk follows it.
_MAX_DEPTH = 64


# An object's entry in a classic cross-reference table gives its byte offset, where
# "<number> <generation> obj" starts (ISO 32000-1 7.3.10, 7.5.4).
_OBJECT_HEADER = re.compile(rb"\s*(\d{1,10})\s+(\d{1,5})\s+obj\b")
# pypdf repairs an entry that points elsewhere by searching the whole file for the object
# (a regular expression over every byte): 2,000 such entries in an 8 MB upload cost four
# minutes of CPU. A few are a sloppy writer, and a viewer repairs them too; more is
# refused before the walk would pay for them.
MAX_MISPLACED = 16
# Belt and braces for the walk as a whole: checked between objects, so one upload's
# inspection stops within a second or so of this.
TIME_BUDGET_S = 15.0


class DamagedCrossReference(Exception):
    """More cross-reference entries than ``MAX_MISPLACED`` point away from their object."""

    def __init__(self, misplaced: int) -> None:
        super().__init__(f"{misplaced} cross-reference entries point away from their object")
        self.misplaced = misplaced


class TooComplex(Exception):
    """The PDF lists more objects than the walk may visit, or the walk ran out of time;
    ``what`` says which, as words that follow "file is a PDF"."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


# A classic cross-reference section (7.5.4): "xref", then subsections, each a header line
# "<first> <count>" and count entries of exactly 20 bytes, then the trailer, whose /Prev
# names the previous revision's section (7.5.6).
_STARTXREF = re.compile(rb"startxref\s+(\d{1,10})")
_SUBSECTION = re.compile(rb"\s*(\d{1,10})[ \t]+(\d{1,10})[ \t]*\r?\n?")
_PREV = re.compile(rb"/Prev\s+(\d{1,10})")
_ENTRY_SIZE = 20
_MAX_SECTIONS = 64


def declared_entries(fh: BinaryIO, size: int, tail: bytes) -> int:
    """How many entries the classic cross-reference sections declare, counted from their
    subsection headers along the /Prev chain, before any parser builds them.

    ``tail`` is the file's last bytes, which hold ``startxref``. pypdf builds a table into
    a dict before anything can count it: 700,000 entries (a 14 MB upload) cost it 27 s and
    140 MB. Cross-reference streams are capped in pypdf itself
    (``xref_stream_maximum_entries``); a section this cannot read counts 0 and is left to
    the parser, whose errors are the file's.
    """
    found = _STARTXREF.findall(tail)
    offset = int(found[-1]) if found else -1
    total, seen = 0, set[int]()
    while 0 <= offset < size and offset not in seen and len(seen) < _MAX_SECTIONS:
        seen.add(offset)
        fh.seek(offset)
        if fh.read(4) != b"xref":
            break  # a cross-reference stream
        position = offset + 4
        while True:
            fh.seek(position)
            line = fh.read(32)
            header = _SUBSECTION.match(line)
            if header is None:
                break  # "trailer", or damage
            count = int(header[2])
            total += count
            position += header.end() + count * _ENTRY_SIZE
        fh.seek(position)
        trailer = _PREV.search(fh.read(4096))
        offset = int(trailer[1]) if trailer else -1
    return total


def object_count(reader: PdfReader) -> int:
    """How many objects the cross-reference lists (in use or free, in any object stream)."""
    ids = {idnum for numbers in reader.xref.values() for idnum in numbers}
    return len(ids | set(reader.xref_objStm))


def findings(reader: PdfReader, *, max_objects: int) -> frozenset[Finding]:
    """Every kind of active content among the objects of ``reader``'s cross-reference.

    Every listed object is visited, reachable from the catalogue or not: a viewer that
    rebuilds a damaged file's cross-reference may find what the page tree does not
    reference. Raises ``TooComplex`` before visiting any when there are more than
    ``max_objects`` (or when the walk outlasts ``TIME_BUDGET_S``), and
    ``DamagedCrossReference`` when more than ``MAX_MISPLACED`` entries need a repair;
    pypdf's own errors (a damaged file) pass through to the caller.
    """
    count = object_count(reader)
    if count > max_objects:
        raise TooComplex(f"of {count:,} objects, more than the {max_objects:,} berkas inspects")
    misplaced = _misplaced(reader)
    if misplaced > MAX_MISPLACED:
        raise DamagedCrossReference(misplaced)
    deadline = time.monotonic() + TIME_BUDGET_S
    found: set[Finding] = set()
    for reference in _references(reader):
        if time.monotonic() > deadline:
            raise TooComplex(f"that takes more than {TIME_BUDGET_S:g} s to inspect")
        obj = reader.get_object(reference)
        _judge_tree(obj, found)
        if isinstance(obj, StreamObject) and obj.get("/Type") != "/ObjStm":
            # pypdf keeps every object it parses, a stream with its raw bytes: dropping
            # streams once judged keeps memory near the largest one, not the sum of all.
            # (An object stream stays: each object packed in it would decode it again.)
            reader.resolved_objects.pop((reference.generation, reference.idnum), None)
    _judge_tree(reader.trailer, found)
    return frozenset(found)


def _misplaced(reader: PdfReader) -> int:
    """How many in-use entries of the cross-reference do not point at their object."""
    stream = reader.stream
    packed = set(reader.xref_objStm)
    misplaced = 0
    for generation, numbers in reader.xref.items():
        free = reader.xref_free_entry.get(generation, {})
        for idnum, offset in numbers.items():
            if free.get(idnum, False) or (generation == 0 and idnum in packed):
                continue
            stream.seek(offset)
            header = _OBJECT_HEADER.match(stream.read(40))
            if header is None or (int(header[1]), int(header[2])) != (idnum, generation):
                misplaced += 1
    return misplaced


def _references(reader: PdfReader) -> Iterator[IndirectObject]:
    packed = set(reader.xref_objStm)
    for generation, numbers in sorted(reader.xref.items()):
        for idnum in sorted(numbers):
            if not (generation == 0 and idnum in packed):
                yield IndirectObject(idnum, generation, reader)
    for idnum in sorted(packed):
        yield IndirectObject(idnum, 0, reader)


def _judge_tree(root: object, found: set[Finding]) -> None:
    # Indirect references are not followed: the object they name is visited on its own.
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ValueError("objects nested too deeply")
        if isinstance(obj, DictionaryObject):
            _judge(obj, found)
            children: Iterator[object] = iter(dict.values(obj))
        elif isinstance(obj, ArrayObject):
            children = iter(obj)
        else:
            continue
        stack.extend(
            (child, depth + 1)
            for child in children
            if isinstance(child, DictionaryObject | ArrayObject)
        )


def _judge(dictionary: DictionaryObject, found: set[Finding]) -> None:
    # dict.get: the raw value, never an indirect reference resolved behind our back.
    for key, finding in _KEYS.items():
        if key in dictionary:
            found.add(finding)
    for key, table in (("/S", _ACTIONS), ("/Type", _TYPES), ("/Subtype", _SUBTYPES)):
        value = dict.get(dictionary, key)
        if isinstance(value, str) and value in table:  # a NameObject is a str
            found.add(table[value])

"""Disk images of data volumes: read as drives D, E, ... with the findings of the same files in a folder;
an image that gives nothing is a warning with the reason (issue 23)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.demo.attack import PLANTED, SHELL_PATH
from exhunt.evidence import open_evidence
from exhunt.evidence.image import FAT_LOCAL_TIMES, ImageSource
from exhunt.evidence.image_volumes import dissect_log, notable, volumes
from exhunt.evidence.manifest import image_segments
from exhunt.evidence.manifest import load as load_manifest
from tests.evidence.disk_images import (
    ToolMissing,
    fat16_volume,
    fixed_vhd,
    flat_vmdk,
    gpt_disk,
    gpt_repeated_partition,
    mbr_disk,
    ntfs_volume,
)

pytest.importorskip("dissect.target", reason="the images extra (dissect.target) is not installed")
pytest.importorskip("dissect.fat", reason="the images extra (dissect.fat) is not installed")

Files = dict[str, tuple[bytes, float]]


@pytest.fixture(scope="module")
def demo_drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Files]:
    """The demo's ProxyLogon collection as the copy of a D: drive (no Windows folder), and its files."""
    root = tmp_path_factory.mktemp("demo")
    generate(root / "gen", DemoSpec(per_day=300))
    folder = root / "folder"
    folder.mkdir()
    (root / "gen" / "C").rename(folder / "D")
    drive = folder / "D"
    files = {p.relative_to(drive).as_posix(): (p.read_bytes(), p.stat().st_mtime)
             for p in sorted(drive.rglob("*")) if p.is_file()}
    return folder, files


def _projection(doc: object) -> list[tuple[object, ...]]:
    """Findings without times (FAT keeps whole seconds in steps of two)."""
    return sorted((f.check, f.severity, f.confidence, f.key, f.count,  # type: ignore[attr-defined]
                   tuple(sorted((e.path, e.line, e.excerpt) for e in f.evidence)))  # type: ignore[attr-defined]
                  for f in doc.findings)  # type: ignore[attr-defined]


def _listing(path: Path) -> tuple[list[tuple[str, int, str]], list[tuple[str, str]]]:
    """(path, size, SHA-256 read back through the source) per file, and the warnings other than a FAT
    volume's note that its times are local (``test_a_fat_volume_says_its_times_are_local``)."""
    warnings: list[tuple[str, str]] = []
    files = list(open_evidence(path).files(
        lambda rel, msg: None if FAT_LOCAL_TIMES in msg else warnings.append((rel, msg))))
    out = []
    for f in files:
        with f.open() as stream:
            out.append((f.rel, f.size, hashlib.sha256(stream.read()).hexdigest()))
    return sorted(out), warnings


def _volume(filesystem: str, files: Files, work: Path) -> bytes:
    if filesystem == "fat16":
        return fat16_volume(files)
    try:
        return ntfs_volume(files, work)
    except ToolMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("filesystem", ["fat16", "ntfs"])
def test_data_volume_image_gives_the_findings_of_the_same_files_in_a_folder(
        tmp_path: Path, demo_drive: tuple[Path, Files], filesystem: str) -> None:
    """A bare NTFS volume holding Program Files/Microsoft/Exchange Server, inetpub and ProgramData but
    no Windows folder gave 0 files and "not assessed": dissect mounts it at / and / was skipped."""
    folder, files = demo_drive
    image = tmp_path / "exch01-d.img"
    image.write_bytes(_volume(filesystem, files, tmp_path))
    docs = {}
    for name, evidence in (("folder", folder), ("image", image)):
        docs[name] = scan([evidence], ScanOptions(out=tmp_path / name, host="EXCH01", jobs=1, quiet=True,
                                                  html_report=False)).document
    (host,) = docs["image"].hosts
    assert host.verdict == "compromised" and host.coverage.warnings == (filesystem == "fat16")  # FAT's local times
    fat_note = {"warnings": 0, "warning_samples": ()} if filesystem == "fat16" else {}
    assert dataclasses.replace(host.coverage, **fat_note) == docs["folder"].hosts[0].coverage  # files, members, events
    for step, check in PLANTED:
        assert any(f.check == check and f.confidence == "high" for f in docs["image"].findings), step
    assert _projection(docs["image"]) == _projection(docs["folder"])
    placed = {e.path for f in docs["image"].findings if f.check == "webshell.placement" for e in f.evidence}
    assert SHELL_PATH.replace("C/", "D/", 1) in placed


@pytest.mark.parametrize("table", ["mbr", "gpt"])
def test_volumes_of_one_disk_are_drives_d_and_e(tmp_path: Path, demo_drive: tuple[Path, Files], table: str) -> None:
    _, files = demo_drive
    disk = mbr_disk if table == "mbr" else gpt_disk
    exchange = {k: v for k, v in files.items() if not k.startswith("inetpub/")}
    logs = {k: v for k, v in files.items() if k.startswith("inetpub/")}
    image = tmp_path / "exch01.img"
    image.write_bytes(disk(fat16_volume(exchange, "EXCHANGE"), fat16_volume(logs, "LOGS")))
    listed, warnings = _listing(image)
    assert warnings == []
    assert {rel for rel, _, _ in listed} == ({f"D/{k}" for k in exchange} | {f"E/{k}" for k in logs})
    by_path = {rel: digest for rel, _, digest in listed}
    for rel, (data, _) in files.items():
        drive = "E" if rel.startswith("inetpub/") else "D"
        assert by_path[f"{drive}/{rel}"] == hashlib.sha256(data).hexdigest(), rel


def test_a_system_disk_keeps_c_and_its_unlettered_data_partition_becomes_d(tmp_path: Path) -> None:
    """dissect's Windows plugin mounts C: and leaves a partition the registry does not name at
    /$fs$/fs0, which was dropped as soon as any drive letter existed."""
    system = fat16_volume({"Windows/System32/winevt/Logs/Security.evtx": b"ElfFile\x00" + bytes(120),
                           "Windows/System32/drivers/etc/hosts": b"127.0.0.1 localhost"}, "SYSTEM")
    data = fat16_volume({"Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer20210303-1.LOG":
                         b"#Software: Microsoft Exchange Server\r\n"}, "DATA")
    image = tmp_path / "exch01.img"
    image.write_bytes(mbr_disk(system, data))
    listed, warnings = _listing(image)
    assert warnings == [("exch01.img", "image exch01.img: Windows' drive letters could not be read from the "
                         "registry (SYSTEM hive missing or damaged): volumes other than C are named D, E, ... "
                         "in the order found")]
    assert [rel for rel, _, _ in listed] == [
        "C/Windows/System32/winevt/Logs/Security.evtx",
        "D/Program Files/Microsoft/Exchange Server/V15/Logging/ECP/Server/ECPServer20210303-1.LOG"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian qemu-utils / ewf-tools; .ci/run installs them)")
    return path


def _split_raw(disk: bytes, tmp: Path) -> Path:
    half = len(disk) // 2
    (tmp / "exch01.001").write_bytes(disk[:half])
    (tmp / "exch01.002").write_bytes(disk[half:])
    return tmp / "exch01.001"


def _split_raw_odd(disk: bytes, tmp: Path) -> Path:
    """Segments of a size no sector or 8 KiB read divides (``split -b 2GB``): reads run past the end of
    the first, as dissect's split container expects; they had been taken for a cut image."""
    (tmp / "exch01.001").write_bytes(disk[:1_500_000])
    (tmp / "exch01.002").write_bytes(disk[1_500_000:])
    return tmp / "exch01.001"


def _vhd(disk: bytes, tmp: Path) -> Path:
    (tmp / "exch01.vhd").write_bytes(fixed_vhd(disk))
    return tmp / "exch01.vhd"


def _flat_vmdk(disk: bytes, tmp: Path) -> Path:
    flat_vmdk(disk, tmp / "exch01.vmdk")
    return tmp / "exch01.vmdk"


def _qemu(fmt: str, options: tuple[str, ...] = (), suffix: str = "") -> Callable[[bytes, Path], Path]:
    def build(disk: bytes, tmp: Path) -> Path:
        qemu = _tool("qemu-img")
        (tmp / "raw.img").write_bytes(disk)
        out = tmp / f"exch01.{suffix or fmt}"
        subprocess.run([qemu, "convert", "-f", "raw", "-O", fmt, *options, str(tmp / "raw.img"), str(out)],
                       check=True, capture_output=True, timeout=120)
        (tmp / "raw.img").unlink()
        return out
    return build


def _split_e01(disk: bytes, tmp: Path) -> Path:
    ewfacquire = _tool("ewfacquire")
    (tmp / "raw.img").write_bytes(disk)
    subprocess.run([ewfacquire, "-u", "-q", "-S", "1MiB", "-c", "none", "-t", str(tmp / "exch01"),
                    str(tmp / "raw.img")], check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    (tmp / "raw.img").unlink()
    assert (tmp / "exch01.E02").is_file()
    return tmp / "exch01.E01"


CONTAINERS: dict[str, Callable[[bytes, Path], Path]] = {
    "split-raw-001": _split_raw,
    "vhd-fixed": _vhd,
    "vmdk-flat": _flat_vmdk,
    "vhdx": _qemu("vhdx"),
    # qemu sizes a VHD by CHS geometry: not a multiple of 8 KiB, so dissect's probe of the last
    # sector reads past the file's end, as it does on any such disk (had been taken for a cut image)
    "vhd-fixed-chs": _qemu("vpc", ("-o", "subformat=fixed"), "vhd"),
    "split-raw-odd": _split_raw_odd,
    "vmdk-sparse": _qemu("vmdk"),
    "vmdk-stream": _qemu("vmdk", ("-o", "subformat=streamOptimized")),
    "qcow2": _qemu("qcow2"),
    "vdi": _qemu("vdi"),
    "e01-split": _split_e01,
}


@pytest.mark.parametrize("form", sorted(CONTAINERS))
def test_containers_of_a_data_volume_list_the_same_files(tmp_path: Path, demo_drive: tuple[Path, Files],
                                                         form: str) -> None:
    _, files = demo_drive
    disk = mbr_disk(fat16_volume(files))
    (tmp_path / "plain").mkdir()
    (tmp_path / form).mkdir()
    (tmp_path / "plain" / "exch01.img").write_bytes(disk)
    expected, _ = _listing(tmp_path / "plain" / "exch01.img")
    image = CONTAINERS[form](disk, tmp_path / form)
    assert isinstance(open_evidence(image), ImageSource)
    listed, warnings = _listing(image)
    assert warnings == [] and listed == expected
    assert len(expected) == len(files) and all(rel.startswith("D/") for rel, _, _ in expected)


def test_every_file_of_a_multi_file_image_is_an_input_of_the_case(tmp_path: Path) -> None:
    disk = mbr_disk(fat16_volume({"inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": b"#Fields: date\r\n"}))
    first = _split_raw(disk, tmp_path)
    assert [p.name for p in image_segments(first)] == ["exch01.002"]
    assert image_segments(_flat_vmdk(disk, tmp_path)) == [tmp_path / "exch01-flat.vmdk"]
    assert ImageSource(first).default_host() == "exch01"
    scan([first], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    inputs = [r.path for r in load_manifest(tmp_path / "case")]
    assert [Path(p).name for p in inputs] == ["exch01.001", "exch01.002"]


def _warnings_of(image: Path) -> list[str]:
    warnings: list[tuple[str, str]] = []
    assert list(open_evidence(image).files(lambda rel, msg: warnings.append((rel, msg)))) == []
    assert warnings and all(rel == image.name for rel, _ in warnings), warnings
    return [msg for _, msg in warnings]


def _boot_sector(oem: bytes) -> bytes:
    return b"\xeb\x52\x90" + oem + os.urandom(2_000_000)


@pytest.mark.parametrize(("content", "reason"), [
    (lambda: bytes(3_000_000), "no partition table, and the whole image (3000000 bytes) holds only zeros"),
    (lambda: os.urandom(3_000_000), "filesystem not identified"),
    (lambda: _boot_sector(b"ReFS\x00\x00\x00\x00"), "ReFS, which dissect.target does not read"),
    (lambda: _boot_sector(b"-FVE-FS-"), "BitLocker-encrypted"),
    (lambda: mbr_disk(os.urandom(1_000_000)), "partition 1 (offset 1048576, 1000448 bytes): filesystem not"),
    (lambda: b"vhdxfile" + bytes(100), "cannot open image: Failed to open container"),
], ids=["zeros", "random", "refs", "bitlocker", "unknown-partition", "damaged-vhdx"])
def test_an_image_from_which_nothing_is_read_is_a_warning_with_the_reason(
        tmp_path: Path, content: Callable[[], bytes], reason: str) -> None:
    image = tmp_path / ("exch01.vhdx" if reason.startswith("cannot open") else "exch01.img")
    image.write_bytes(content())
    (message,) = _warnings_of(image)
    assert message.startswith(f"image {image.name}: nothing read: ") and reason in message, message


def test_a_volume_without_exchange_or_iis_folders_names_what_it_holds(tmp_path: Path) -> None:
    image = tmp_path / "fileserver.img"
    image.write_bytes(fat16_volume({"Shares/plan.docx": b"x", "Data/b.txt": b"y"}, label="FILES"))
    (message,) = _warnings_of(image)
    assert message == ("image fileserver.img: nothing read: no Exchange, IIS or Windows log folder found on "
                       "D: (fat, label 'FILES'): Data, Shares")


def test_a_filesystem_whose_dissect_module_is_missing_is_named(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from dissect.target import filesystem

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dissect.fat" else real(name, *a))
    monkeypatch.setattr(filesystem, "FILESYSTEMS", [f for f in filesystem.FILESYSTEMS
                                                    if "FatFilesystem" not in repr(f)])
    image = tmp_path / "exch01-e.img"
    image.write_bytes(fat16_volume({"inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": b"#Fields: date\r\n"}))
    (message,) = _warnings_of(image)
    assert "FAT filesystem, but dissect.fat, the dissect module that reads it, is not installed" in message
    assert "pip install 'exhunt[images]'" in message


def test_a_bad_image_is_a_warning_and_the_other_evidence_is_still_analysed(tmp_path: Path) -> None:
    bad = tmp_path / "exch02.img"
    bad.write_bytes(bytes(2_000_000))
    logs = tmp_path / "logs" / "u_ex210303.log"
    logs.parent.mkdir()
    logs.write_bytes(b"#Software: Microsoft Internet Information Services 10.0\r\n#Fields: date time cs-method "
                     b"cs-uri-stem\r\n2021-03-03 02:10:01 POST /ecp/y.js\r\n")
    doc = scan([bad, logs.parent], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                               html_report=False)).document
    (host,) = doc.hosts
    assert host.coverage.files == 1 and host.coverage.warnings == 1
    assert "exch02.img: nothing read" in str(host.coverage.warning_samples)


def test_detect_raw_volumes_by_content_and_split_segments_by_their_pair(tmp_path: Path) -> None:
    volume = tmp_path / "D-drive.bin"
    volume.write_bytes(fat16_volume({"a.txt": b"a"}))
    rotated = tmp_path / "u_ex210303.log.001"
    rotated.write_bytes(b"#Fields: date time\r\n" * 300)
    signed = tmp_path / "dump.bin"  # 55 AA at byte 510 alone is no partition table
    signed.write_bytes(bytes(range(256)) + bytes(range(190)) + bytes([0x12, 0, 0, 0, 7]) + bytes(59) + b"\x55\xaa")
    assert ImageSource.detect(volume) and not ImageSource.detect(rotated) and not ImageSource.detect(signed)
    (tmp_path / "u_ex210303.log.002").write_bytes(b"x")
    assert ImageSource.detect(rotated)  # a .001 with its .002 is a split image


def test_drive_letters_from_the_os_plugin_then_the_next_free_ones() -> None:
    def fs(kind: str) -> SimpleNamespace:
        return SimpleNamespace(__type__=kind)

    system, data, logs, spare = fs("ntfs"), fs("ntfs"), fs("ntfs"), fs("fat")
    target = SimpleNamespace(fs=SimpleNamespace(mounts={"sysvol": system, "c:": system, "e:": logs}),
                             filesystems=[system, data, logs, spare, data])
    assert [(v.drive, v.fs) for v in volumes(target)] == [("C", system), ("D", data), ("E", logs), ("F", spare)]


def test_dissect_log_is_captured_and_its_routine_notes_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("dissect.target.target")
    before = logger.level, logging.getLogger("dissect.target").propagate
    with dissect_log() as records:
        logger.warning("<Target x>: Failed to find OS plugin, falling back to default")
        logger.error("<Target x>: Failed to load child plugin: y (z)")
        logging.getLogger("dissect.target.filesystem").info("Failed to import %s", "FatFilesystem")
    assert notable(records) == ["Failed to load child plugin: y (z)"]
    many = [(logging.WARNING, f"Failed to open hive {n}") for n in range(12)]
    assert notable(many)[-2:] == ["Failed to open hive 9", "and 2 more warnings from dissect.target"]
    assert (logger.level, logging.getLogger("dissect.target").propagate) == before
    assert capsys.readouterr().err == ""


def _point_folders_at(volume: bytes, folders: list[str], target: str) -> bytes:
    """A hostile FAT volume: the directory entries of ``folders`` start at ``target``'s cluster."""
    import io
    import struct

    from dissect.fat.fat import FATFS

    fs = FATFS(io.BytesIO(volume))
    image, goal = bytearray(volume), fs.get(target).cluster
    for folder in folders:
        cluster = fs.get(folder).cluster
        for offset in range(0, len(image), 32):  # its entry in the parent; not its own "." entry
            entry = image[offset:offset + 32]
            if entry[11] == 0x10 and entry[0] != ord(".") and struct.unpack_from("<H", entry, 26)[0] == cluster:
                struct.pack_into("<H", image, offset + 26, goal)
                break
    return bytes(image)


def test_a_folder_loop_in_a_hostile_image_is_walked_once_and_named(tmp_path: Path) -> None:
    """Two entries of inetpub pointing back at inetpub made the walk 2**64 paths deep and wide."""
    from itertools import islice

    log = "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    volume = fat16_volume({"inetpub/a/x.txt": b"x", "inetpub/b/y.txt": b"y", log: b"#Fields: date time\r\n"})
    image = tmp_path / "loop.img"
    image.write_bytes(_point_folders_at(volume, ["inetpub/a", "inetpub/b"], "inetpub"))
    warnings: list[tuple[str, str]] = []
    files = list(islice(open_evidence(image).files(lambda rel, msg: warnings.append((rel, msg))), 20))
    assert [f.rel for f in files] == [f"D/{log}"]
    warnings = [(rel, msg) for rel, msg in warnings if FAT_LOCAL_TIMES not in msg]
    loop = "folder already walked under another name (a loop in the file system): not descended"
    assert warnings == [("D/inetpub/a", loop), ("D/inetpub/b", loop)]


def test_a_partition_table_of_thousands_of_unreadable_volumes_is_one_short_warning(tmp_path: Path) -> None:
    """A 3 MB hostile GPT with 4,000 entries made one 450 KB warning (one reason per entry)."""
    image = tmp_path / "many.img"
    image.write_bytes(gpt_repeated_partition(os.urandom(1_000_000), 300))
    (message,) = _warnings_of(image)
    assert message.count("filesystem not identified") == 10 and message.endswith("and 290 more volumes not read")


def test_partition_entries_repeating_one_extent_are_read_once(tmp_path: Path) -> None:
    """40 GPT entries pointing at one volume listed (and would have parsed and reported) its files 40 times."""
    log = "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    image = tmp_path / "repeated.img"
    image.write_bytes(gpt_repeated_partition(fat16_volume({log: b"#Fields: date time\r\n"}), 40))
    files, warnings = _listing(image)
    assert [rel for rel, _, _ in files] == [f"D/{log}"]
    assert warnings == [("repeated.img", "image repeated.img: 39 partition table entries repeat another "
                                         "partition's extent: each read once")]


def test_relocated_log_folders_and_collections_are_walked_and_other_top_folders_named(tmp_path: Path) -> None:
    """An image walks only where evidence is kept. IIS logs moved to C:\\LogFiles and a responder's
    C:\\IR\\<host> collection were skipped without a word, and a compromised host came out clean; a
    top-level folder still left out is named in a warning."""
    image = tmp_path / "exch01-d.img"
    image.write_bytes(fat16_volume({
        "LogFiles/W3SVC1/u_ex210303.log": b"#Fields: date time c-ip\r\n",
        "IR/EXCH01/inboxrules.xml": b"<Objs/>",
        "Program Files/Microsoft/Exchange Server/V15/Bin/ExSetup.exe": b"MZ",
        "Tools/scanner.exe": b"MZ",
        "$Extend/x": b"",
    }, label="DATA"))
    listing, warnings = _listing(image)
    paths = {p for p, _, _ in listing}
    assert {"D/LogFiles/W3SVC1/u_ex210303.log", "D/IR/EXCH01/inboxrules.xml"} <= paths
    assert not any(p.startswith(("D/Tools", "D/$Extend")) for p in paths)
    (message,) = [m for _, m in warnings if "not walked" in m]
    assert message.endswith("top-level folders not walked (not where Exchange, IIS or Windows keep their "
                            "logs): Tools; scan a copy of them to read them")


CUT_FORMS = ("vhdx", "vmdk-sparse", "qcow2", "vdi")


@pytest.mark.parametrize("form", CUT_FORMS)
def test_a_container_cut_short_is_named_and_its_host_is_not_called_clean(tmp_path: Path, form: str) -> None:
    """dissect reads the blocks a cut VHDX, VMDK, qcow2 or VDI places past its end as zeros: folders
    listed as empty and files went missing with no warning, and a host came out clean."""
    gen = tmp_path / "gen"
    generate(gen, DemoSpec(per_day=300, attack=False))
    drive = gen / "C"
    files = {p.relative_to(drive).as_posix(): (p.read_bytes(), p.stat().st_mtime)
             for p in sorted(drive.rglob("*")) if p.is_file()}
    (tmp_path / form).mkdir()
    whole = CONTAINERS[form](mbr_disk(fat16_volume(files)), tmp_path / form)
    listed, warnings = _listing(whole)
    assert warnings == [] and len(listed) == len(files)
    doc = scan([whole], ScanOptions(out=tmp_path / "whole-case", host="EXCH01", jobs=1, quiet=True,
                                    html_report=False)).document
    assert doc.hosts[0].verdict == "clean"
    cut = tmp_path / f"cut-{whole.name}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    warned: list[tuple[str, str]] = []
    listed_cut = list(open_evidence(cut).files(lambda rel, message: warned.append((rel, message))))
    assert len(listed_cut) < len(files)  # what dissect still lists
    assert any("cut short" in message and cut.name in message for _, message in warned)
    doc = scan([cut], ScanOptions(out=tmp_path / "cut-case", host="EXCH01", jobs=1, quiet=True,
                                  html_report=False)).document
    (host,) = doc.hosts
    assert host.verdict == "inconclusive" and host.coverage.unread >= 1


@pytest.mark.parametrize("layout", ["mbr-disk", "bare-fat", "bare-ntfs"])
def test_a_raw_image_cut_short_is_named(tmp_path: Path, demo_drive: tuple[Path, Files], layout: str) -> None:
    """A raw image copied in part: the volume the partition table or boot sector sizes runs past the
    file's end. dissect lists what it can and reads the rest as nothing, without an error."""
    _, files = demo_drive
    volume = _volume("ntfs" if layout == "bare-ntfs" else "fat16", files, tmp_path)
    image = mbr_disk(volume) if layout == "mbr-disk" else volume
    whole, cut = tmp_path / "whole.img", tmp_path / "cut.img"
    whole.write_bytes(image)
    start = len(image) - len(volume) if layout != "mbr-disk" else image.index(volume[:512])
    cut.write_bytes(image[: start + len(volume) * 9 // 10])  # the last tenth of the volume missing
    for path, expected in ((whole, False), (cut, True)):
        warned: list[tuple[str, str]] = []
        list(open_evidence(path).files(lambda rel, message, w=warned: w.append((rel, message))))
        assert any("cut short" in message for _, message in warned) is expected, (path.name, warned)


def test_an_ntfs_folder_whose_index_blocks_are_zeroed_is_named_and_its_host_is_not_called_clean(
        tmp_path: Path) -> None:
    """dissect.ntfs skips an index block without its INDX signature: a folder of 190 IIS logs whose
    index run was zeroed listed none of them, with no warning, and the host was called clean."""
    from dissect.ntfs import NTFS

    logs = {f"inetpub/logs/LogFiles/W3SVC1/u_ex2103{d:02d}{h:02d}.log": b"#Fields: date time\r\n"
            for d in range(1, 20) for h in range(10)}
    readable = {"inetpub/logs/LogFiles/W3SVC2/u_ex210301.log": (
        b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
        b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
        b"sc-status sc-substatus sc-win32-status time-taken\r\n"
        b"2021-03-01 08:00:00 10.0.0.5 GET /owa/ - 443 - 10.0.0.20 Mozilla/5.0 200 0 0 15\r\n")}
    volume = bytearray(_volume("ntfs", logs | readable, tmp_path))
    whole, zeroed = tmp_path / "exch01-d.img", tmp_path / "zeroed" / "exch01-d.img"
    whole.write_bytes(volume)
    with whole.open("rb") as fh:
        ntfs = NTFS(fh)
        record = ntfs.mft.get("inetpub/logs/LogFiles/W3SVC1")
        runs = [run for attribute in record.attributes[0xA0] for run in attribute.dataruns()]
        size = ntfs.cluster_size
    for start, count in runs:  # the folder's index blocks, wiped
        volume[start * size:(start + count) * size] = bytes(count * size)
    zeroed.parent.mkdir()
    zeroed.write_bytes(volume)
    listed, warnings = _listing(whole)
    assert len(listed) == len(logs) + 1 and warnings == []
    warned: list[tuple[str, str]] = []
    assert len(list(open_evidence(zeroed).files(lambda rel, message: warned.append((rel, message))))) < len(logs)
    assert [rel for rel, message in warned if "folder index damaged" in message] == ["D/inetpub/logs/LogFiles/W3SVC1"]
    doc = scan([zeroed], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=1, quiet=True,
                                     html_report=False)).document
    assert doc.hosts[0].verdict == "inconclusive"


def test_a_fat_volume_says_its_times_are_local(tmp_path: Path) -> None:
    """FAT keeps times in the writing machine's local time with no zone; they were shown as UTC."""
    log = "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
    image = tmp_path / "usb.img"
    image.write_bytes(fat16_volume({log: (b"#Fields: date time\r\n", 1614737416.0)}))
    warnings: list[tuple[str, str]] = []
    files = list(open_evidence(image).files(lambda rel, msg: warnings.append((rel, msg))))
    assert [f.rel for f in files] == [f"D/{log}"]
    assert warnings == [("D", f"image usb.img: D: (fat, label 'EXCHDATA'): {FAT_LOCAL_TIMES}")]

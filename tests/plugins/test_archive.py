"""Archive safety (zips as uploaded: paths, links, bombs, sizes, types) and
loading a plugin from disk: pure logic, no database."""

import io
import json
import stat
import zipfile

import pytest

from plugins.archive import (
    MAX_FILES,
    build_archive,
    files_from_module,
    files_from_zip,
    load_plugin_source,
    sha256_hex,
)
from plugins.manifest import validate_plugin
from tests.plugins.weather import (
    MANIFEST,
    SOURCE,
    errors_of,
    files,
    make_zip,
    valid_zip,
    write_plugin,
)

# --- archives ---------------------------------------------------------------


def test_build_archive_is_deterministic_and_round_trips():
    plugin_files = files(**{"README.md": "# Weather\n", "lib/util.py": "X = 1\n"})
    archive = build_archive(plugin_files)
    assert build_archive(dict(reversed(list(plugin_files.items())))) == archive
    assert sha256_hex(archive) == sha256_hex(build_archive(plugin_files))
    assert files_from_zip(archive) == plugin_files
    infos = zipfile.ZipFile(io.BytesIO(archive)).infolist()
    assert [info.filename for info in infos] == sorted(plugin_files)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_build_archive_enforces_the_rules_too():
    assert "archive" in errors_of(build_archive, files(**{"../escape.py": "x = 1\n"}))
    assert "archive" in errors_of(build_archive, {"plugin.py": SOURCE})


def test_a_valid_zip_is_read():
    assert files_from_zip(valid_zip(("docs/", ""), ("notes.txt", "hello"))) == files(**{"notes.txt": "hello"})


def test_a_byte_order_mark_is_dropped():
    archive = make_zip([("plugin.json", "\ufeff" + json.dumps(MANIFEST)), ("plugin.py", SOURCE)])
    assert json.loads(files_from_zip(archive)["plugin.json"]) == MANIFEST


@pytest.mark.parametrize(
    "name,complaint",
    [
        ("../x.py", "'..'"),
        ("lib/../../x.py", "'..'"),
        ("/etc/x.py", "absolute"),
        ("C:/x.py", "absolute"),
        ("lib\\x.py", "separator"),
        ("lib//x.py", "empty"),
        ("./x.py", "'.'"),
    ],
)
def test_paths_that_could_escape_are_refused(name, complaint):
    errors = errors_of(files_from_zip, valid_zip((name, "x = 1\n")))
    assert complaint in errors["archive"]


def test_symlink_entries_are_refused():
    link = zipfile.ZipInfo("link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    errors = errors_of(files_from_zip, valid_zip((link, "/etc/passwd")))
    assert "symbolic link" in errors["archive"]


def test_device_entries_are_refused():
    device = zipfile.ZipInfo("device.txt")
    device.external_attr = (stat.S_IFCHR | 0o644) << 16
    assert "not a regular file" in errors_of(files_from_zip, valid_zip((device, "")))["archive"]


def test_a_highly_compressible_file_is_refused_as_a_zip_bomb():
    errors = errors_of(files_from_zip, valid_zip(("data.txt", "a" * (900 * 1024))))
    assert "zip bomb" in errors["archive"]


def test_a_file_over_the_size_cap_is_refused_before_it_is_read():
    errors = errors_of(files_from_zip, valid_zip(("data.txt", b"\0" * (20 * 1024 * 1024))))
    assert "at most 1048576" in errors["archive"]


def test_too_much_content_in_all_is_refused():
    chunk = "".join(f"{i:08d} {i * 7919 % 100003:06d}\n" for i in range(60_000))  # ~960 KiB, compresses poorly
    entries = [(f"part{i}.txt", chunk) for i in range(6)]
    errors = errors_of(files_from_zip, valid_zip(*entries))
    assert "in all" in errors["archive"]


def test_sizes_that_lie_are_caught_when_reading():
    archive = bytearray(valid_zip(("data.txt", "".join(f"{i}\n" for i in range(50_000)))))
    # Declare a tiny uncompressed size in both the local and the central header.
    local = archive.rfind(b"PK\x03\x04")
    central = archive.rfind(b"PK\x01\x02")
    archive[local + 22 : local + 26] = (10).to_bytes(4, "little")
    archive[central + 24 : central + 28] = (10).to_bytes(4, "little")
    errors = errors_of(files_from_zip, bytes(archive))
    assert "not a readable zip file" in errors["archive"]


def test_too_many_files_are_refused():
    entries = [(f"m{i}.py", "") for i in range(MAX_FILES)]
    assert "at most 200" in errors_of(files_from_zip, valid_zip(*entries))["archive"]


def test_non_utf8_files_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("notes.txt", "café".encode("latin-1"))))
    assert "notes.txt: not UTF-8 text" == errors["archive"]


def test_binary_text_files_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("notes.txt", b"abc\x00def")))
    assert "NUL" in errors["archive"]


@pytest.mark.parametrize("name", ["module.pyc", "lib.so", "LICENSE", "run.sh", "image.png"])
def test_only_text_file_types_are_allowed(name):
    assert "only .py, .js, .cjs, .json, .txt, .md" in errors_of(files_from_zip, valid_zip((name, "x")))["archive"]


def test_duplicate_names_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("plugin.py", "x = 2\n")))
    assert "more than once" in errors["archive"]


def test_plugin_json_must_be_at_the_root():
    archive = make_zip([("weather/plugin.json", json.dumps(MANIFEST)), ("weather/plugin.py", SOURCE)])
    message = errors_of(files_from_zip, archive)["archive"]
    assert "plugin.json is missing" in message and "weather/plugin.json" in message


def test_garbage_is_not_a_zip():
    assert "not a readable zip file" in errors_of(files_from_zip, b"this is not a zip")["archive"]


def test_unsupported_compression_is_refused():
    archive = make_zip([("plugin.json", json.dumps(MANIFEST)), ("plugin.py", SOURCE)], zipfile.ZIP_BZIP2)
    assert "stored or deflated" in errors_of(files_from_zip, archive)["archive"]


# --- loading from disk ------------------------------------------------------


def test_load_a_folder_leaving_out_caches_and_dotfiles(tmp_path):
    folder = write_plugin(tmp_path / "weather", **{"lib/util.py": "X = 1\n"})
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\x00binary")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / ".DS_Store").write_bytes(b"\x00")
    loaded_manifest, loaded_files = load_plugin_source(folder)
    assert loaded_manifest == MANIFEST
    assert sorted(loaded_files) == ["lib/util.py", "plugin.json", "plugin.py"]


def test_load_a_folder_refuses_symlinks(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "secrets.txt").symlink_to("/etc/passwd")
    assert "symbolic link" in errors_of(load_plugin_source, folder)["archive"]


def test_load_a_folder_refuses_other_file_types(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "helper.so").write_bytes(b"ELF")
    assert "only .py" in errors_of(load_plugin_source, folder)["archive"]


def test_load_a_zip_file(tmp_path):
    path = tmp_path / "weather.zip"
    path.write_bytes(valid_zip())
    assert load_plugin_source(path) == (MANIFEST, files())


def test_load_a_single_module_with_the_manifest_beside_it(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    assert load_plugin_source(folder / "plugin.py") == (MANIFEST, files())


def test_load_a_single_module_with_an_explicit_manifest(tmp_path):
    (tmp_path / "forecast.py").write_text(SOURCE)
    (tmp_path / "weather.json").write_text(json.dumps(MANIFEST))
    loaded_manifest, loaded_files = load_plugin_source(tmp_path / "forecast.py", tmp_path / "weather.json")
    # The module is stored as the entrypoint the manifest names.
    assert loaded_files == files()
    assert validate_plugin(loaded_manifest, loaded_files)["name"] == "weather"


def test_load_a_single_module_without_a_manifest(tmp_path):
    (tmp_path / "forecast.py").write_text(SOURCE)
    assert "cannot read" in errors_of(load_plugin_source, tmp_path / "forecast.py")["archive"]


def test_load_reports_invalid_json(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "plugin.json").write_text("{'name': 'weather'}")
    assert "not valid JSON" in errors_of(load_plugin_source, folder)["plugin.json"]


def test_files_from_module_defaults_to_the_given_name():
    module_files = files_from_module(SOURCE, json.dumps({"name": "x"}), filename="x.py")
    assert sorted(module_files) == ["plugin.json", "x.py"]


def test_load_a_missing_path(tmp_path):
    assert "cannot read" in errors_of(load_plugin_source, tmp_path / "nope.zip")["archive"]

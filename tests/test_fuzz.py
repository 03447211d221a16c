"""The ``.lig`` decoder under fuzzing (``bench/fuzz.py``), CI-sized: every forged bomb and a few
hundred deterministic mutants of real files, each decoded like a viewer does (open, read at scale 1,
at 1/4, a level-0 preview, ``info -v --check``) in a worker process, so that a crash fails the test
instead of killing pytest.

The requirement (the long run is ``python bench/fuzz.py --mutants 100000``): any file of at most
1 MB decodes or is refused with a ``LigError``, with no crash, no other exception, no warning,
within 10 s, 1 GB of RSS and 2 s per output megapixel (at least 1 s an operation).

Seeds are encoded once into ``$LIGCODEC_FUZZ_DIR`` (default /tmp/ligcodec-fuzz) and reused;
failures are saved under pytest's tmp dir, named in the assertion message, for
``python bench/fuzz.py --replay PATH``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench import fuzz

N_MUTANTS = 300
MUTANT_SEED = 0
#: Mutations whose output keeps every CRC valid (the others damage CRCs or the layout on purpose).
CRC_KEEPING = {"h_value", "h_regrid", "h_levels", "h_channels", "h_delete", "h_extra", "h_bytes", "i_count",
               "i_share", "i_shuffle", "i_reserved", "c_table", "c_bytes", "c_resize", "c_words", "c_const",
               "c_foreign", "g_edit", "a_chunk", "a_header"}


@pytest.fixture(scope="module")
def seeds():
    return fuzz.load_seeds(fuzz.DEFAULT_WORKDIR, log=lambda *a: None)


@pytest.fixture(scope="module")
def bombs(seeds, tmp_path_factory):
    return fuzz.write_bombs(tmp_path_factory.mktemp("bombs"), seeds)


@pytest.fixture(scope="module")
def harness(seeds, tmp_path_factory):
    h = fuzz.Harness(tmp_path_factory.mktemp("fuzz"), workers=1, keep=3)
    yield h
    h.close()


def _describe(rec) -> str:
    res = rec["result"]
    ops = "; ".join(f"{r['op']} {r['outcome']} {r['seconds']:.2f} s {r.get('type', '')} {r.get('msg', '')[:120]}"
                    for r in res.get("ops", []))
    return (f"{rec['kind']}: {rec['class']}\n  ops: {ops}\n  peak RSS {res.get('peak_rss', 0) / 2**20:.0f} MiB"
            f"\n  saved: {rec['saved']}")


def test_seed_corpus_decodes(seeds, harness):
    """SCENARIO: the unmutated seed files (8- and 16-bit; grey, grey+alpha, RGB, RGBA; 1 and 2 levels,
    progressive; tiles of 16 to 256 px) go through the viewer's operations in the worker.
    EXPECTED RESULT: every one decodes ("ok": no refusal, no warning, within the limits), so that
    any other outcome of their mutants is the mutation's doing."""
    d = fuzz.DEFAULT_WORKDIR / f"seeds-v{fuzz.CORPUS_VERSION}"
    bad = []
    for name, _ in seeds:
        rec = harness.run_one(harness.workers[0], None, {"name": name}, path=d / f"{name}.lig")
        if rec["kind"] != "ok":
            bad.append(f"{name}: {_describe(rec)}")
    assert not bad, "\n".join(bad)


def test_bomb_names_match(bombs):
    """SCENARIO: the bombs are forged from the seeds. EXPECTED RESULT: their names are
    ``fuzz.BOMB_NAMES`` (which the bomb test is parametrised over), each is at most 1 MB, and every
    CRC in them holds, so each reaches the decoder's deeper checks instead of stopping at a CRC
    mismatch."""
    assert tuple(bombs) == fuzz.BOMB_NAMES
    for name, (path, _) in bombs.items():
        data = path.read_bytes()
        assert len(data) <= fuzz.MAX_FILE, name
        assert fuzz.check_crcs(data) == [], name


@pytest.mark.parametrize("name", fuzz.BOMB_NAMES)
def test_forged_bomb(name, bombs, harness):
    """SCENARIO: a file forged from the spec to make the decoder allocate, compute or draw far more
    than its bytes justify, or to hand the renderer Gaussians whose dequantised Cholesky factor
    overflows, underflows or is NaN, or a CRC-valid real file with one hostile header value
    (see ``fuzz.forge_bombs`` for each); all CRCs valid, at most 1 MB.
    EXPECTED RESULT: it decodes or is refused with a LigError: no crash, timeout (10 s), memory
    over 1 GB, other exception, warning or read slower than 2 s per output megapixel."""
    path, what = bombs[name]
    rec = harness.run_one(harness.workers[0], None, {"name": name, "what": what}, path=path)
    assert rec["kind"] in ("ok", "refused"), f"{name} ({what}): {_describe(rec)}"


def test_mutants(seeds, harness):
    """SCENARIO: mutants 0..299 of run seed 0 (deterministic): CRC-fixed structured edits of the header,
    index, stream tables and Gaussian symbols, and raw bit flips, boundary values, truncations and
    splices, each decoded like a viewer does.
    EXPECTED RESULT: every mutant decodes or is refused with a LigError within the limits; the
    failures (if any) are listed by class with a saved reproducer."""
    records = []
    for data, meta in fuzz.mutants(seeds, MUTANT_SEED, range(N_MUTANTS)):
        records.append(harness.run_one(harness.workers[0], data, meta))
    bad = [r for r in records if r["kind"] not in ("ok", "refused")]
    by_class = {}
    for r in bad:
        by_class.setdefault((r["kind"], r["class"]), []).append(r)
    lines = [f"{len(rs)} x {k}: {c}\n    e.g. mutant {rs[0]['index']} ({'; '.join(rs[0]['ops'])[:150]})"
             f"\n    saved: {rs[0]['saved']}" for (k, c), rs in by_class.items()]
    assert not bad, f"{len(bad)} of {N_MUTANTS} mutants failed:\n" + "\n".join(lines)
    # The corpus is doing its job: a good share gets past every CRC into the decoder proper.
    deep = sum(r["kind"] == "ok" or "CRC" not in r["class"] for r in records)
    assert deep > N_MUTANTS // 2


def test_mutants_deterministic(seeds):
    """SCENARIO: the same mutant index of the same run seed is made twice, out of order.
    EXPECTED RESULT: identical bytes and descriptions (a failure index reproduces the file)."""
    a = [fuzz.make_mutant(seeds, 7, i) for i in (3, 50, 11)]
    b = [fuzz.make_mutant(seeds, 7, i) for i in (11, 3, 50)]
    assert a == [b[1], b[2], b[0]]
    assert fuzz.make_mutant(seeds, 7, 3) != fuzz.make_mutant(seeds, 8, 3)


def test_crc_fixing_mutations_keep_crcs(seeds):
    """SCENARIO: 400 mutants; those made only by CRC-fixing mutations (header values re-packed,
    index counts, shared chunks, stream tables, chunk bytes, re-encoded Gaussians).
    EXPECTED RESULT: every header, index and chunk CRC in them holds, so they reach the decoder's
    logic past the integrity checks."""
    n = 0
    for i in range(400):
        data, meta = fuzz.make_mutant(seeds, 1, i)
        ops = {op.split()[0] for op in meta["ops"]}
        if ops and ops <= CRC_KEEPING:
            n += 1
            assert fuzz.check_crcs(data) == [], (i, meta)
    assert n > 100


def test_parts_round_trip(seeds):
    """SCENARIO: each seed taken apart (prefix, msgpack header, index, chunks) and packed again, and
    each stream table parsed and re-written.
    EXPECTED RESULT: the same bytes (the structured mutations start from an exact copy), and the
    fuzzer reads each table as the decoder does (its first part's grid and stream entries): its
    table edits then change the values they name."""
    from ligcodec.codec.tile import LAYOUT_GAPS, chunk_parts, stream_table

    for name, data in seeds:
        parts = fuzz.LigParts.parse(data)
        assert parts.pack() == data, name
        counts = {e.ref: e.count for e in parts.entries}
        for i, blob in enumerate(parts.blobs):
            if not blob:
                continue
            prefix, streams, end = fuzz.read_table(blob, parts.header["channels"])
            assert fuzz.write_table(streams, prefix) == blob[:end], name
            part, m = chunk_parts(blob, counts[i], name)[0]
            grid = np.zeros(3, np.int64)
            params, pos = stream_table(part, m, parts.header["channels"], name, LAYOUT_GAPS, grid)
            assert streams[0] == [grid[0], grid[1] - 1, grid[2], params[0][3]], name
            assert [list(p[1:]) for p in params[1:]] == streams[1:] and end == len(prefix) + pos, name


@pytest.mark.parametrize("what, kind", [("segv", "crash"), ("sleep", "timeout"), ("alloc", "over-memory"),
                                        ("raise", "exception"), ("warn", "warning")])
def test_harness_catches(what, kind, tmp_path):
    """SCENARIO: the worker is told to misbehave: dereference NULL, hang, allocate 4 GiB, raise a
    RuntimeError, emit a RuntimeWarning (limits: 300 MiB; 2 s, or 6 s for the allocation: page
    faults on a busy machine can be slow).
    EXPECTED RESULT: the harness survives and classifies each: crash (SIGSEGV), timeout,
    over-memory, exception, warning; the next request gets a working worker."""
    limits = fuzz.Limits(time_limit=6.0 if what == "alloc" else 2.0, mem_limit=300 << 20)
    w = fuzz.Worker(tmp_path, "selftest", limits=limits)
    try:
        res = w.run({"selftest": what})
        got, cls = fuzz.classify(res, limits)
        assert got == kind, (cls, res)
        if what == "segv":
            assert "SIGSEGV" in cls
        after = w.run({"selftest": "none"})
        assert fuzz.classify(after, limits)[0] == "ok"
    finally:
        w.stop()


def test_replay_cli(seeds, tmp_path):
    """SCENARIO: ``bench/fuzz.py --replay`` on a seed file and on a directory holding a refused file.
    EXPECTED RESULT: exit code 0 (ok and refused are both fine), and the outcome printed."""
    d = tmp_path / "cases"
    d.mkdir()
    (d / "seed.lig").write_bytes(seeds[0][1])
    (d / "junk.lig").write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(100)))
    assert fuzz.main(["--replay", str(d), "--workdir", str(tmp_path / "w")]) == 0

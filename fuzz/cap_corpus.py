#!/usr/bin/env python3
"""Shrinks fuzz/corpus/<target>/ to at most N files (default 200).

Run after `cargo fuzz cmin <target>` (and after the target was built with
`RUSTC_BOOTSTRAP=1 cargo fuzz build <target>`):

    python3 cap_corpus.py <target> [N]

libFuzzer's merge keeps every file that adds a feature, which for targets with
much serde code is many hundreds of tiny files. This script measures the edge
coverage of every corpus file (a libFuzzer merge with -use_counters=0 and a
control file), keeps the generated seeds (`seed-*`), then greedily adds the
file that covers the most edges not yet covered, until N files are kept or
nothing new is covered, and prints how much of the corpus's edge coverage the
kept files retain.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.join(HERE, "target", "x86_64-unknown-linux-gnu", "release")


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    target = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) == 3 else 200
    corpus = os.path.join(HERE, "corpus", target)
    binary = os.path.join(BIN_DIR, target)
    with tempfile.TemporaryDirectory() as tmp:
        control = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run(
            [binary, "-merge=1", "-use_counters=0",
             f"-merge_control_file={control}", out, corpus],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lines = open(control).read().split("\n")
        n = int(lines[0])
        files = lines[2:2 + n]
        feats = {i: set() for i in range(n)}
        for line in lines[2 + n:]:
            if line.startswith("FT "):
                parts = line.split()
                feats[int(parts[1])] = set(map(int, parts[2:]))
        everything = set().union(*feats.values())
        size = {i: os.path.getsize(files[i]) for i in range(n)}
        chosen = [i for i in range(n)
                  if os.path.basename(files[i]).startswith("seed-")]
        covered = set().union(*(feats[i] for i in chosen))
        while len(chosen) < limit:
            rest = [i for i in range(n) if i not in chosen]
            if not rest:
                break
            best = max(rest, key=lambda i: (len(feats[i] - covered), -size[i]))
            if not feats[best] - covered:
                break
            chosen.append(best)
            covered |= feats[best]
        keep = os.path.join(tmp, "keep")
        os.mkdir(keep)
        for i in chosen:
            shutil.copy(files[i], keep)
        shutil.rmtree(corpus)
        shutil.copytree(keep, corpus)
    pct = 100 * len(covered) / max(len(everything), 1)
    print(f"{target}: kept {len(chosen)} of {n} files, "
          f"{len(covered)}/{len(everything)} edges ({pct:.1f}%)")


if __name__ == "__main__":
    main()

"""Which source crates gained fuzzing coverage between two corpora.

    B=fuzz/target/x86_64-unknown-linux-gnu/release/model_file
    $B -runs=0 -print_coverage=1 OLD_CORPUS 2> old.txt
    $B -runs=0 -print_coverage=1 NEW_CORPUS 2> new.txt
    python3 tools/fuzz_covdiff.py old.txt new.txt [ours]

Prints the edges gained per crate ("ours" = this repository); with a third
argument, also the functions of this repository that gained edges. Used to
tell whether a target still finds paths in convnet's code or only inside a
dependency's parser.
"""
import re, sys, collections
def load(p):
    d = {}
    for line in open(p, errors="replace"):
        m = re.match(r"\s*(UN)?COVERED_FUNC: hits: (\d+) edges: (\d+)/(\d+) (.*) (\S+):(\d+)$", line.strip())
        if m:
            d[(m.group(5), m.group(6))] = int(m.group(3))
    return d
old, new = load(sys.argv[1]), load(sys.argv[2])
by = collections.Counter()
for k, e in new.items():
    gain = e - old.get(k, 0)
    if gain > 0:
        f = k[1]
        crate = "ours" if "/work/main/" in f else re.sub(r".*/(index\.crates\.io-[^/]+/)?([^/]+)/src/.*", r"\2", f)
        by[crate] += gain
print("edges gained by source:", dict(by.most_common()))
if len(sys.argv) > 3:
    for k, e in sorted(new.items(), key=lambda kv: -(kv[1] - old.get(kv[0], 0))):
        gain = e - old.get(k, 0)
        if gain > 0 and "/work/main/" in k[1]:
            print(gain, k[0][:110], k[1].replace("/work/main/", ""))

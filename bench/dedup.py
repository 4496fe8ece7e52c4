"""Cross-source problem dedup (`distill prompts`): rows/s, peak memory, and how the cost grows with the pool.

    .venv/bin/python bench/dedup.py                       # 10k, 30k, 100k rows, 2 repeats each (a few minutes)
    .venv/bin/python bench/dedup.py --max-rows 1000000    # adds 300k and 1M (once each)
    .venv/bin/python bench/dedup.py --calibrate           # how word and character shingles separate duplicates
    .venv/bin/python bench/dedup.py --traces RUN_DIR      # curation's per-prompt near-dedup of traces: removed, cost

The pools are the four training pools of ../shared/data/train (DeepScaleR MATH train, AIME 1983-2023, LeetCode,
LiveCodeBench pre-2408: 10,918 problems). Larger inputs are the real problems followed by seeded perturbed
copies of them, in equal parts: reworded copies (synonyms, two words swapped, numbers reformatted: near
duplicates that should go), renumbered copies (one to three numbers changed: other problems, that should
mostly stay) and retypeset copies (spacing, \\dfrac, \\left: exact duplicates after normalisation). So beyond
10k the inputs are synthetic, built from real problems. Each point runs in a fresh process: its peak RSS
(ru_maxrss) is its own, and the RSS after loading the rows is printed beside it. On a machine shared with other
work, rows per CPU second (the dedup's own process time) is the steadier figure; the work is one process.

Measured on this 2-core machine shared with other work (char 5-shingles, 0.7, 128 permutations; 10k and 30k: the
table, 2 runs each; 100k, 300k, 1M: `--one N`, once each):

    rows    CPU s  rows/CPU s  peak RSS  exact    near     kept     CPU ms per MinHash'd row
    10k       6.2       1,621   144 MiB     357      98    9,545    0.64
    30k      19.2       1,566   198 MiB   6,916   5,007   18,077    0.83
    100k     45.6       2,193   359 MiB  32,510  23,670   43,820    0.68
    300k    105.6       2,841   766 MiB 111,936  79,213  108,851    0.56
    1M      336.9       2,968  1973 MiB 422,522 275,096  302,382    0.58

Cost grows linearly: per row that gets a MinHash (not an exact duplicate) it stays near 0.6 ms; rows/CPU s rises
with N only because the share of exact duplicates (retypeset copies, no MinHash) does. Memory: 566 MiB of the 1M
point's peak is the input rows; the rest is the LSH index and the kept rows' signatures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRAIN = ROOT.parent / "shared" / "data" / "train"
POOLS = {  # name -> (file, answer field or None)
    "deepscaler-math": ("math_train_deepscaler.json", "answer"),
    "aime": ("aime_1983_2023_deepscaler.json", "answer"),
    "leetcode": ("leetcode_train_rllm.json", None),
    "livecodebench": ("livecodebench_pre2408_train_public_tests.json", None),
}
SYNONYMS = {
    "find": "determine", "determine": "find", "compute": "calculate", "calculate": "compute", "what": "which",
    "suppose": "assume", "let": "suppose", "such": "so", "equals": "is equal to", "number": "amount",
    "integers": "whole numbers", "given": "provided", "return": "output", "each": "every", "all": "every",
}
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def real_rows() -> list[tuple[str, str, str | None]]:
    """(source, problem, answer) of every problem of the four pools, in priority order."""
    rows = []
    for name, (file, answer) in POOLS.items():
        for item in json.loads((TRAIN / file).read_text(encoding="utf-8")):
            rows.append((name, item["problem"], str(item[answer]) if answer else None))
    return rows


def reword(text: str, rng: random.Random, edits: int = 2) -> str:
    """A near copy: `edits` words swapped for synonyms, two adjacent words swapped, numbers reformatted."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
    for i in rng.sample(spots, min(edits, len(spots))):
        replacement = SYNONYMS[words[i].lower()]
        words[i] = replacement.capitalize() if words[i][0].isupper() else replacement
    plain = [i for i in range(len(words) - 1) if words[i].isalpha() and words[i + 1].isalpha()]
    if plain:
        i = rng.choice(plain)
        words[i], words[i + 1] = words[i + 1], words[i]
    text = " ".join(words)
    return NUMBER.sub(lambda m: f"{int(m.group()):,}" if len(m.group()) > 3 else m.group(), text).replace("?", " ?")


def renumber(text: str, rng: random.Random) -> str:
    """Another problem of the same template: one to three of its numbers changed."""
    spots = list(NUMBER.finditer(text))
    if not spots:
        return text + f" Answer for n = {rng.randint(2, 99)}."
    changed = {m.start() for m in rng.sample(spots, min(rng.randint(1, 3), len(spots)))}
    return NUMBER.sub(lambda m: str(int(m.group()) + rng.randint(1, 9)) if m.start() in changed else m.group(), text)


def retypeset(text: str, rng: random.Random) -> str:
    """The same problem typed differently: exact duplicate after normalisation."""
    text = text.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)")
    return "  " + text.replace(" ", rng.choice(["  ", " \n", "\t"])) + " "


def pool_of(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(source, problem) x n: the real rows, then seeded perturbed copies of them."""
    rows = [(source, problem) for source, problem, _ in real_rows()]
    rng = random.Random(seed)
    out = rows[:n]
    makers = (reword, renumber, retypeset)
    while len(out) < n:
        source, problem = rng.choice(rows)
        out.append((source, makers[len(out) % 3](problem, rng)))
    return out


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_point(n: int, shingle: str, ngram: int, threshold: float, num_perm: int) -> dict:
    from distill.teacher.pool_dedup import ProblemDeduper, boilerplate_shingles

    rows = pool_of(n)
    loaded = rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    boilerplate = boilerplate_shingles([problem for _, problem in rows], shingle, ngram, 0.01)  # as `distill prompts`
    deduper = ProblemDeduper(threshold=threshold, shingle=shingle, ngram=ngram, num_perm=num_perm, boilerplate=boilerplate)
    counts = {"exact": 0, "near": 0}
    for _, problem in rows:
        match = deduper.add(problem)
        if match:
            counts[match.kind] += 1
    seconds = time.perf_counter() - started
    return {"rows": n, "seconds": seconds, "rows_per_s": n / seconds, "rss_loaded_mib": loaded, "peak_rss_mib": rss_mib(),
            "cpu_s": time.process_time() - cpu,
            "exact": counts["exact"], "near": counts["near"], "kept": deduper.kept}


def scale(args) -> None:
    sizes = [s for s in (10_000, 30_000, 100_000, 300_000, 1_000_000) if s <= args.max_rows]
    print(f"dedup scaling: {args.shingle} {args.ngram}-shingles, threshold {args.threshold}, {args.num_perm} permutations; "
          f"rows beyond {len(real_rows()):,} are perturbed copies of real problems")
    print(f"{'rows':>9} {'runs':>4} {'rows/s':>16} {'s':>8} {'CPU s':>7} {'rows/CPU s':>10} {'RSS loaded':>10} {'peak RSS':>9} "
          f"{'exact':>8} {'near':>8} {'kept':>9}")
    for n in sizes:
        repeats = args.repeats if n <= 100_000 else 1
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--shingle", args.shingle, "--ngram",
                                  str(args.ngram), "--threshold", str(args.threshold), "--num-perm", str(args.num_perm)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rates = [r["rows_per_s"] for r in runs]
        spread = f"{statistics.mean(rates):,.0f}" + (f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else "")
        r = runs[-1]
        cpu = statistics.mean(x["cpu_s"] for x in runs)
        print(f"{n:>9,} {len(runs):>4} {spread:>16} {statistics.mean(x['seconds'] for x in runs):>8.1f} {cpu:>7.1f} "
              f"{n / cpu:>10,.0f} {r['rss_loaded_mib']:>8.0f}Mi {r['peak_rss_mib']:>7.0f}Mi "
              f"{r['exact']:>8,} {r['near']:>8,} {r['kept']:>9,}", flush=True)


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def same_numbers(a: str, b: str) -> bool:
    from distill.teacher.pool_dedup import normalise, numbers_key

    return numbers_key(normalise(a)) == numbers_key(normalise(b))


def calibrate(args) -> None:
    """True Jaccard similarity, per shingling (boilerplate shingles of 1% of the pool left out), of (a) reworded
    copies of real math problems (should merge),
    (b) renumbered copies (other problems: should not), (c) the most similar real pairs with different answers
    (other problems of the same template: should not). Candidates for (c) come from an LSH at 0.4."""
    from datasketch import MinHash, MinHashLSH

    from distill.teacher.pool_dedup import boilerplate_shingles, normalise, shingles

    rng = random.Random(args.seed)
    math_rows = [r for r in real_rows() if r[2] is not None]
    sample = rng.sample(math_rows, args.sample)
    thresholds = (0.5, 0.6, 0.7, 0.8, 0.9)
    print(f"calibration on {len(math_rows):,} real math problems (MATH train + AIME); {args.sample} sampled for rewording")
    print(f"{'shingles':<8} {'reworded J p10/p50':>19} {'renumbered J p50/p90':>21} "
          + " ".join(f"{'t=' + str(t) + ' rec/FPren/FPreal':>22}" for t in thresholds))
    for kind, n in (("word", 2), ("word", 3), ("word", 5), ("char", 5), ("char", 8)):
        boilerplate = boilerplate_shingles([p for _, p, _ in math_rows], kind, n, 0.01)  # as `distill prompts` does

        def grams(text: str, kind=kind, n=n, boilerplate=boilerplate) -> set:
            all_grams = shingles(normalise(text), kind, n)
            return all_grams - boilerplate or all_grams
        copies = [(p, reword(p, rng)) for _, p, _ in sample]
        reworded = sorted(jaccard(grams(p), grams(c)) for p, c in copies)
        # with the numbers guard (same_numbers): a pair merges only when both hold the same numbers
        reworded_guarded = sorted(jaccard(grams(p), grams(c)) if same_numbers(p, c) else 0.0 for p, c in copies)
        renumbered = sorted(jaccard(grams(p), grams(renumber(p, rng))) for _, p, _ in sample if NUMBER.search(p))
        sets = [grams(p) for _, p, _ in math_rows]
        lsh, hashes = MinHashLSH(threshold=0.4, num_perm=64), []
        for i, s in enumerate(sets):
            m = MinHash(num_perm=64)
            m.update_batch(list(s))
            lsh.insert(i, m)
            hashes.append(m)
        different = []  # best-matching other problem with a different answer, per problem that has one
        for i, m in enumerate(hashes):
            others = [(jaccard(sets[i], sets[j]), same_numbers(math_rows[i][1], math_rows[j][1])) for j in lsh.query(m)
                      if j > i and normalise(math_rows[j][2]) != normalise(math_rows[i][2])]
            different += [max(others)] if others else []
        cells = []
        for t in thresholds:
            recall = sum(j >= t for j in reworded) / len(reworded)
            fp_renumbered = sum(j >= t for j in renumbered) / len(renumbered)
            cells.append(f"{recall:>8.0%}/{fp_renumbered:>5.0%}/{sum(j >= t for j, _ in different):>5}")
        guarded = [f"{sum(j >= t for j in reworded_guarded) / len(reworded):>8.0%}/{0:>5.0%}/"
                   f"{sum(j >= t and same for j, same in different):>5}" for t in thresholds]
        q = statistics.quantiles
        print(f"{kind + str(n):<8} {q(reworded, n=10)[0]:>9.2f}/{statistics.median(reworded):.2f} "
              f"{statistics.median(renumbered):>14.2f}/{q(renumbered, n=10)[-1]:.2f}  " + " ".join(f"{c:>22}" for c in cells),
              flush=True)
        print(f"{'  +same numbers':<40} " + " ".join(f"{c:>22}" for c in guarded), flush=True)
    print("rec: reworded copies merged; FPren: renumbered copies merged; FPreal: real different-answer pairs merged "
          "(an upper bound: some are one problem with its answer written two ways)")


def near_dedup_cost(groups: list[list[str]], shingle: int, num_perm: int, threshold: float) -> tuple[int, int, float]:
    """(traces, removed, CPU seconds) of curation's near-dedup (curate.near_dedup: MinHash of each response, then
    each prompt's samples compared), with the functions curation calls."""
    from distill.curate import filters

    cpu = time.process_time()
    removed = sum(len(filters.near_duplicates_of([filters.minhash(r, shingle, num_perm) for r in group], threshold))
                  for group in groups)
    return sum(map(len, groups)), removed, time.process_time() - cpu


def r1_length_groups(prompts: int, k: int, words: int, near_share: float, seed: int = 0) -> list[list[str]]:
    """Synthetic R1-length responses: k per prompt of `words` words (R1's math traces run to thousands of tokens);
    a `near_share` of the samples after the first are copies of the first with 0.5% of their words changed, the rest
    are drawn afresh. What near-dedup removes here is set by construction; its cost is what this measures."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(5000)] + [str(i) for i in range(200)] + ["=", "+", "so", "wait", "the"]
    groups = []
    for _ in range(prompts):
        first = rng.choices(vocabulary, k=words)
        group = [" ".join(first)]
        for _ in range(k - 1):
            if rng.random() < near_share:
                copy = list(first)
                for i in rng.sample(range(words), words // 200):
                    copy[i] = rng.choice(vocabulary)
                group.append(" ".join(copy))
            else:
                group.append(" ".join(rng.choices(vocabulary, k=words)))
        groups.append(group)
    return groups


def traces(args) -> None:
    import pyarrow.parquet as pq

    from distill.curate.config import NearDedup

    cfg = NearDedup()
    shards = sorted(Path(args.traces, "traces").glob("shard-*.parquet"))
    table = pq.read_table(shards, columns=["prompt_id", "sample_index", "response", "status"])
    by_prompt: dict[str, list[tuple[int, str]]] = {}
    for pid, index, response, status in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        if status == "ok":
            by_prompt.setdefault(pid, []).append((index, response or ""))
    real = [[r for _, r in sorted(group)] for group in by_prompt.values()]
    print(f"curate.near_dedup (shingle {cfg.shingle} words, {cfg.num_perm} permutations, threshold {cfg.threshold})")
    print(f"{'traces':<44} {'traces':>7} {'k':>3} {'chars':>7} {'removed':>8} {'CPU s':>7} {'ms/trace':>9}")
    sets = [(f"{args.traces} (real)", real)]
    for words in (1000, 4000):
        sets.append((f"synthetic, {words} words, 10% near copies", r1_length_groups(args.trace_prompts, 4, words, 0.1)))
    for name, groups in sets:
        n, removed, cpu = near_dedup_cost(groups, cfg.shingle, cfg.num_perm, cfg.threshold)
        chars = statistics.median(len(r) for g in groups for r in g)
        print(f"{name:<44} {n:>7,} {statistics.median(map(len, groups)):>3.0f} {chars:>7,.0f} {removed:>8,} {cpu:>7.1f} "
              f"{1000 * cpu / n:>9.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rows", type=int, default=100_000, help="largest point (1000000 adds 300k and 1M)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per point up to 100k (larger points run once)")
    parser.add_argument("--shingle", choices=("word", "char"), default="char")
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces", help="a generation run directory: measure curation's near-dedup on its traces")
    parser.add_argument("--trace-prompts", type=int, default=500, help="prompts (x4 samples) of each synthetic set")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_point(args.one, args.shingle, args.ngram, args.threshold, args.num_perm)))
    elif args.traces:
        traces(args)
    elif args.calibrate:
        calibrate(args)
    else:
        scale(args)


if __name__ == "__main__":
    main()

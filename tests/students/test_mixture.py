"""Weighted mixtures of SFT sources: shares, seeds, exact sample counts, `distill mix` -> `distill train`, bad input."""

import json
import math
from collections import Counter

import pyarrow.parquet as pq
import pytest
import yaml

from support import ROOT, run_cli, student_yaml
from distill.config import load_config
from distill.errors import UsageError
from distill.students.config import DataSection, StudentConfig
from distill.students.mixture import MixConfig, draw_mixture
from distill.students.training_rows import training_rows


def chat_source(directory, tag: str, rows: int, field: str = "messages"):
    """A JSONL source whose every row says which source and row it is."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{tag}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({field: [{"role": "user", "content": f"{tag} question {i}"},
                                        {"role": "assistant", "content": f"{tag} answer {i}"}]}) + "\n")
    return path


def origin_of(row) -> tuple[str, int]:
    tag, _, number = row["messages"][0]["content"].split()
    return tag, int(number)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Sources of 3000, 2000 and 1000 rows: weights 0.6 / 0.3 / 0.1 take all of the first, 1500 and 500."""
    d = tmp_path_factory.mktemp("sources")
    return {tag: chat_source(d, tag, n) for tag, n in (("math", 3000), ("code", 2000), ("general", 1000))}


def mixture(three, weights=(0.6, 0.3, 0.1), **data):
    sources = [{"source": str(three[tag]), "name": tag, "weight": w} for tag, w in zip(("math", "code", "general"), weights)]
    return draw_mixture(DataSection.model_validate({"sources": sources, **data}))


def test_rows_come_from_their_sources_in_the_weights_shares(three):
    rows = mixture(three)
    tags = [origin_of(r)[0] for r in rows.dataset]
    assert Counter(tags) == {"math": 3000, "code": 1500, "general": 500}  # math, the limiting source, is taken whole
    assert tags == [rows.sources[i]["name"] for i in rows.origin]  # the recorded origin is the row's real source
    assert len({origin_of(r) for r in rows.dataset}) == 5000  # nothing repeated: no up-sampling was asked for
    # A run stopped early by max_steps trains on a prefix: after the uniform shuffle its shares are the weights
    # up to sampling error. 4 binomial standard errors: a fair draw fails this about once in 16,000.
    for n in (200, 1000):
        prefix = Counter(tags[:n])
        for tag, weight in (("math", 0.6), ("code", 0.3), ("general", 0.1)):
            assert abs(prefix[tag] / n - weight) <= 4 * math.sqrt(weight * (1 - weight) / n), (n, tag, prefix)


def test_total_samples_sets_the_size_and_upsamples_in_whole_repeats(three):
    rows = mixture(three, total_samples=10_000)
    seen = Counter(origin_of(r) for r in rows.dataset)
    assert Counter(tag for tag, _ in seen.elements()) == {"math": 6000, "code": 3000, "general": 1000}
    assert {n for (tag, _), n in seen.items() if tag == "math"} == {2}  # 6000 of 3000 rows: each exactly twice
    # shares that do not divide evenly: largest-remainder rounding, the total exact, each within a row of its share
    rows = mixture(three, weights=(1, 1, 1), total_samples=1000)
    assert sorted(rows.rows_per_source()) == [333, 333, 334]


def test_samples_take_exact_counts_up_and_down(tmp_path):
    small, large = chat_source(tmp_path, "small", 50), chat_source(tmp_path, "large", 200)
    data = DataSection.model_validate({"sources": [{"source": str(small), "samples": 120, "name": "small"},
                                                   {"source": str(large), "samples": 30, "name": "large"}]})
    seen = Counter(origin_of(r) for r in draw_mixture(data).dataset)
    small_counts = Counter(n for (tag, _), n in seen.items() if tag == "small")
    assert sum(n for (tag, _), n in seen.items() if tag == "small") == 120
    assert small_counts == {2: 30, 3: 20}  # 120 = 2 whole passes over 50 rows + 20 rows sampled once more
    assert [n for (tag, _), n in seen.items() if tag == "large"] == [1] * 30  # down-sampled: 30 distinct rows


def test_same_seed_same_rows_other_seed_other_rows(three):
    first, again, other = mixture(three), mixture(three), mixture(three, shuffle_seed=1)
    assert first.dataset["messages"] == again.dataset["messages"] and (first.origin == again.origin).all()
    assert first.dataset["messages"] != other.dataset["messages"]
    picked = {seed: {origin_of(r) for r in mixture(three, shuffle_seed=seed).dataset} for seed in (0, 1)}
    assert picked[0] != picked[1]  # another seed draws other code and general rows, not just another order


def test_a_source_draws_the_same_rows_whatever_the_others(three):
    alone = DataSection.model_validate({"sources": [{"source": str(three["code"]), "samples": 100, "name": "code"}]})
    beside = DataSection.model_validate({"sources": [{"source": str(three["math"]), "samples": 70, "name": "math"},
                                                     {"source": str(three["code"]), "samples": 100, "name": "code"}]})
    code_rows = [{origin_of(r) for r in draw_mixture(d).dataset if origin_of(r)[0] == "code"} for d in (alone, beside)]
    assert code_rows[0] == code_rows[1] and len(code_rows[0]) == 100


def test_one_source_is_one_entry_and_unchanged(three):
    data = DataSection.model_validate({"source": str(three["general"]), "max_samples": 10})
    rows = training_rows(data)
    assert rows.dataset.column_names == ["messages"] and len(rows.dataset) == 10
    assert rows.sources == [{"name": str(three["general"]), "source": str(three["general"]), "split": "train"}]
    assert rows.rows_per_source() == [10]


def test_shipped_mixture_and_recipes_are_the_papers_mix(toy_world):
    path = ROOT / "students" / "mixtures" / "r1-distill.yaml"
    cfg = load_config(path, MixConfig, [f"data.sources.{i}.source={toy_world / 'sft'}" for i in range(3)])
    shares = {s.name: s.weight for s in cfg.data.sources}
    assert set(shares) == {"math", "code", "general"}
    # DeepSeek-R1 supplementary Table 5: 626,933 reasoning samples (math, code, STEM, logic), 177,812 general
    assert shares["math"] + shares["code"] == 626_933 and shares["general"] == 177_812
    for name in ("qwen-1.5b", "qwen-7b", "qwen-14b", "qwen-32b", "llama-8b", "llama-70b"):
        recipe = yaml.safe_load((ROOT / "students" / f"r1-distill-{name}.yaml").read_text())["data"]
        assert recipe["sources"] == yaml.safe_load(path.read_text())["data"]["sources"], name
        assert {s["source"] for s in recipe["sources"]} == {f"runs/teacher/{r}/curated" for r in ("math", "code", "general")}


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.slow
def test_mix_writes_a_dataset_a_student_trains_on_with_rows_and_tokens_per_source(tmp_path, toy_world):
    sft = pq.read_table(toy_world / "sft")
    sources = {}
    for tag, (start, stop) in {"math": (0, 1000), "code": (1000, 1600), "general": (1600, 2000)}.items():
        (tmp_path / tag).mkdir()
        pq.write_table(sft.slice(start, stop - start), tmp_path / tag / "train-00000.parquet")
        sources[tag] = str(tmp_path / tag)
    mix_yaml = tmp_path / "mix.yaml"
    mix_yaml.write_text(yaml.safe_dump({"name": "toy-mix", "run_dir": str(tmp_path / "mix"), "data": {"sources": [
        {"name": "math", "source": sources["math"], "weight": 0.6},
        {"name": "code", "source": sources["code"], "weight": 0.3},
        {"name": "general", "source": sources["general"], "weight": 0.1}]}}))
    result = run_cli("mix", mix_yaml)
    assert result.returncode == 0, result.stderr
    mix = tmp_path / "mix"
    written = json.loads((mix / "mixture.json").read_text())
    assert {s["name"]: s["rows"] for s in written["sources"]} == {"math": 1000, "code": 500, "general": 166}
    assert written["config"]["data"]["sources"][0]["weight"] == 0.6 and written["rows"] == 1666
    shards = sorted(mix.glob("train-*.parquet"))
    table = pq.read_table(shards)
    assert table.num_rows == 1666 and Counter(table.column("source").to_pylist())["general"] == 166
    assert not any(p.name.startswith(".mix") for p in tmp_path.iterdir())  # no staging directory or lock left
    # The same config writes the same rows in the same order.
    first = table.column("messages").to_pylist()
    assert run_cli("mix", mix_yaml).returncode == 0
    assert pq.read_table(sorted(mix.glob("train-*.parquet"))).column("messages").to_pylist() == first

    student = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run", max_steps=2, save_steps=2)
    result = run_cli("train", student, f"data.source={mix}")
    assert result.returncode == 0, result.stderr
    assert "data: 1,666 rows from 3 sources: math 1,000 (60.0%), code 500 (30.0%), general 166 (10.0%)" in result.stdout
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    by_name = {s["name"]: s for s in summary["sources"]}
    assert list(by_name) == ["math", "code", "general"] and by_name["math"]["source"] == sources["math"]
    assert [by_name[n]["rows"] for n in by_name] == [1000, 500, 166]
    assert [by_name[n]["share"] for n in by_name] == [round(r / 1666, 4) for r in (1000, 500, 166)]
    assert all(s["tokens"] > 0 and s["split"] == "train" for s in summary["sources"])
    assert sum(s["token_share"] for s in summary["sources"]) == pytest.approx(1, abs=1e-3)
    # Toy problems are alike in length, so token shares follow row shares; a real check that tokens are per source.
    assert by_name["math"]["token_share"] == pytest.approx(0.6, abs=0.05)
    assert by_name["general"]["tokens"] < by_name["code"]["tokens"] < by_name["math"]["tokens"]

    # The recipes' way: data.sources in the student's own YAML draws the same mixture and accounts for it alike.
    from distill.students.train import train

    recipe = yaml.safe_load(student.read_text())
    recipe.update(run_dir=str(tmp_path / "run-sources"), data=yaml.safe_load(mix_yaml.read_text())["data"])
    student.write_text(yaml.safe_dump(recipe))
    train(load_config(student, StudentConfig))
    direct = json.loads((tmp_path / "run-sources" / "train_summary.json").read_text())["sources"]
    assert [(s["name"], s["rows"], s["tokens"]) for s in direct] == [(s["name"], s["rows"], s["tokens"]) for s in summary["sources"]]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, three):
    d = tmp_path_factory.mktemp("bad")
    return {"no_messages": chat_source(d, "other", 5, field="conversation"), **{k: str(v) for k, v in three.items()}}


@pytest.mark.parametrize("case, expected", [
    ("zero weights", "data.sources: the weights are all zero (0, 0): at least one must be above 0"),
    ("negative weight", "data.sources.1.weight: Input should be greater than or equal to 0 (got -0.5)"),
    ("missing source", "data.sources.1.source: path does not exist: ./no/such/curated"),
    ("weight and samples", "data.sources.0: weight and samples are both given: keep one"),
    ("source and sources", "data.sources: data.source is set too: keep one"),
    ("no messages column", "data.sources.1.source: {no_messages} has no column 'messages' (columns: conversation); "
                           "set data.sources.1.messages_field"),
])
def test_bad_mixtures_are_one_line_naming_the_key(tmp_path, toy_world, bad_inputs, case, expected):
    two = [{"source": bad_inputs["math"], "weight": 1, "name": "a"}, {"source": bad_inputs["code"], "weight": 1, "name": "b"}]
    if case == "zero weights":
        two[0]["weight"] = two[1]["weight"] = 0
    elif case == "negative weight":
        two[1]["weight"] = -0.5
    elif case == "missing source":
        two[1]["source"] = "./no/such/curated"
    elif case == "weight and samples":
        two[0]["samples"] = 10
    elif case == "no messages column":
        two[1]["source"] = str(bad_inputs["no_messages"])
    path = student_yaml(tmp_path / "s.yaml", toy_world, tmp_path / "run")
    recipe = yaml.safe_load(path.read_text())
    recipe["data"] = {"sources": two, **({"source": bad_inputs["general"]} if case == "source and sources" else {})}
    path.write_text(yaml.safe_dump(recipe))
    error = one_line_error(run_cli("train", path))
    assert expected.format(**bad_inputs) in error
    if case != "no messages column":  # config errors name the file; a source's content is checked when loaded
        assert error.startswith(f"error: {path}: ")
    if case in ("zero weights", "no messages column"):  # `distill mix` reads the same section: the same line
        mix = tmp_path / "mix.yaml"
        mix.write_text(yaml.safe_dump({"name": "m", "run_dir": str(tmp_path / "mix"), "data": recipe["data"]}))
        assert expected.format(**bad_inputs) in one_line_error(run_cli("mix", mix))
        assert not (tmp_path / "mix").exists()


def test_a_misspelt_source_key_is_named_with_the_right_one(tmp_path, three):
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "m", "data": {"sources": [{"source": str(three["math"]), "wieght": 1}]}}))
    with pytest.raises(UsageError, match=r"mix.yaml: data.sources.0.wieght: unknown key \(did you mean 'weight'\?\)"):
        load_config(mix, MixConfig)


def test_mix_needs_sources_and_total_samples_needs_room(tmp_path, three):
    mix = tmp_path / "mix.yaml"
    mix.write_text(yaml.safe_dump({"name": "m", "data": {"source": str(three["math"])}}))
    with pytest.raises(UsageError, match=r"mix.yaml: data: needs data.sources"):
        load_config(mix, MixConfig)
    fixed = {"sources": [{"source": str(three["math"]), "samples": 10}, {"source": str(three["code"]), "weight": 1}],
             "total_samples": 10}
    with pytest.raises(ValueError, match="total_samples: 10 rows, but the sources' samples add up to 10"):
        DataSection.model_validate(fixed)
    assert sum(mixture(three, total_samples=999).rows_per_source()) == 999


def test_a_mix_written_over_what_it_reads_is_refused_and_its_input_untouched(tmp_path, three):
    sources = [{"name": "math", "source": str(three["math"]), "weight": 0.5},
               {"name": "code", "source": str(three["code"]), "weight": 0.5}]
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump({"name": "first", "run_dir": str(tmp_path / "mix"), "data": {"sources": sources}}))
    assert run_cli("mix", first).returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "mix").iterdir()}
    # A second mix that reads the first and would write it, or into it, or around it.
    for run_dir, how in ((tmp_path / "mix", "is"), (tmp_path / "mix" / "inner", "lies inside"), (tmp_path, "holds")):
        second = tmp_path / "second.yaml"
        second.write_text(yaml.safe_dump({"name": "second", "run_dir": str(run_dir), "data": {"sources": [
            {"name": "first", "source": str(tmp_path / "mix"), "weight": 0.5}, sources[1]]}}))
        error = one_line_error(run_cli("mix", second))
        assert f"run_dir: {run_dir} {how} the input data.sources.0.source" in error, error
    assert {p.name: p.read_bytes() for p in (tmp_path / "mix").iterdir()} == before

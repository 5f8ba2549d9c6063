# Helpers shared by the workflow: config validation, start-up checks, output paths and input functions.
import sys
from pathlib import Path

# The library next to this workflow, also when Snakemake runs from an environment without it installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from meta_ood.config import resolve_config
from meta_ood.errors import InputError
from meta_ood.options import TRAIN_RUNTIME_OPTIONS
from meta_ood.stages.layout import SUBMISSION_FOLDERS, method_scores_folder, smiyc_folder, threshold_tag


def _read_config():
    """The configuration, read strictly and validated against the library's schema before anything else runs.

    Each --configfile in order (none: the demo's config.yaml), then --config on top, re-read with
    `meta_ood.config` (Snakemake's own reading keeps the last of duplicated keys and reads 1e-3 as text).
    Returns (what the files say, with the schema's defaults); exits with one line per problem otherwise.
    """
    files = [str(path) for path in workflow.overwrite_configfiles]
    if not files:
        files = [f"{workflow.basedir}/config.yaml"]
        workflow.configfiles.append(files[0])  # listed in reports, as a `configfile:` directive would
    try:
        return resolve_config(files, overrides=dict(workflow.config_settings.config or {}))
    except InputError as exc:
        raise SystemExit(f"meta-ood: the configuration cannot run (nothing was started):\n{exc}")


USER_CONFIG, _RESOLVED = _read_config()  # what the config file(s) say, before the schema's defaults; with them
config.clear()
config.update(_RESOLVED)  # in place: rules and scripts see Snakemake's `config` object

RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCH = f"benchmarks/{RUN}"
DEMO = config["demo"]
DEMO_MARKER = f"{DEMO['root']}/DEMO_DATA.json"
DATASETS = config["datasets"]
# With the demo on, a dataset root left unset is the demo's own folder for it.
DEMO_FOLDERS = {"cityscapes": "cityscapes", "coco": "coco", "lostandfound": "lostandfound",
                "fishyscapes_static": "fishyscapes", "fishyscapes_lostandfound": "fishyscapes",
                "lostandfound_noknown": "lostandfound_noknown", "smiyc_anomaly": "smiyc", "smiyc_obstacle": "smiyc",
                "road_anomaly": "road_anomaly"}
if DEMO["enabled"]:
    for _name, _folder in DEMO_FOLDERS.items():
        if DATASETS[_name]["root"] is None:
            DATASETS[_name]["root"] = f"{DEMO['root']}/{_folder}"
COCO = DATASETS["coco"]
COCO_ANNOTATIONS = f"{COCO['root']}/annotations/instances_{COCO['split']}.json"
COCO_SELECTED = f"{RESULTS}/coco/selected.csv"
COCO_MASKS = f"{RESULTS}/coco/masks"

MODELS = config["models"]
EVAL = config["evaluation"]
THRESHOLDS = sorted(float(t) for t in EVAL["thresholds"])
TAGS = [threshold_tag(t) for t in THRESHOLDS]
MIOU_DATASET = "cityscapes_val"
EVAL_DATASETS = list(EVAL["ood_datasets"]) + ([MIOU_DATASET] if EVAL["miou"] else [])
SEGMENT_DATASETS = list(EVAL["segment_datasets"])
DUMP_SHARDS = config["inference"]["shards"]
SEGMENT_SHARDS = config["segments"]["shards"]
MAIN_MODEL = config["report"]["main_model"] or next(iter(MODELS))
OOD_DATASETS = ["lostandfound", "fishyscapes_static", "fishyscapes_lostandfound", "lostandfound_noknown", "cityscapes_void",
                "smiyc_anomaly", "smiyc_obstacle", "road_anomaly"]


def _dry_run():
    """Whether this invocation only plans (-n, --dry-run), as plan_only requires; read from the command line
    with Snakemake's own parser (its executor is not set up while this file runs)."""
    try:
        from snakemake.cli import get_argument_parser

        return bool(get_argument_parser().parse_known_args(sys.argv[1:])[0].dryrun)
    except Exception:  # another entry point (the API): taken as a real run
        return False


DRY_RUN = _dry_run()
# plan_only (with -n): the start-up checks report and do not stop; missing user files are left out of the plan
PLAN_ONLY = bool(config["plan_only"])
if PLAN_ONLY and not DRY_RUN and not workflow.remote_exec:
    raise SystemExit("meta-ood: the configuration cannot run:\nplan_only: true only plans a run: add -n (dry run), "
                     "or remove plan_only to run it (nothing was started)")


def user_input(path):
    """A file of the user's (COCO json, checkpoint, score folder) as a job input. With plan_only a missing one is
    left out, so that the plan shows without the data (the start-up checks have listed it)."""
    return [] if PLAN_ONLY and not Path(path).exists() else path


def _stop(exc):
    """End Snakemake with the message alone (exit status 1, no traceback): the user's input is at fault."""
    raise SystemExit(f"meta-ood: the configuration cannot run:\n{exc}")


TRAINING_RULES = {"train_baseline", "ood_finetune"}
INFERENCE_RULES = {"dump_softmax"}


# processes of the data check where Snakemake knows no --cores (jobs go to a cluster; the check runs on the login node)
DATA_CHECK_CLUSTER_WORKERS = 4


def _data_check(planned):
    """The whole-dataset check of every dataset the run reads (not COCO: coco_filter and fine-tuning read its
    selection), in parallel over files, cached in results/<run>/checks/; stops the run listing every bad file."""
    if config["skip_data_check"]:
        print("meta-ood: data check skipped (skip_data_check: true)", file=sys.stderr)
        return
    if workflow.touch:  # --touch marks outputs up to date: nothing reads the data
        return
    if DEMO["enabled"] and "demo_data" in planned:
        print("meta-ood: data check: the demo data is generated by this run; it is checked on the next one",
              file=sys.stderr)
        return
    import os

    from meta_ood.check_data_cache import check_data_cached
    from meta_ood.errors import InputError

    specs = {name: spec for name, spec in check_data_specs().items() if name != "coco"}
    try:
        workers = max(1, min(int(workflow.cores), os.cpu_count() or 1))
    except Exception:  # no --cores given (a cluster run)
        workers = os.cpu_count() or 1
    if not workflow.local_exec:
        workers = min(workers, DATA_CHECK_CLUSTER_WORKERS)
    print(f"meta-ood: data check of {', '.join(specs)} ({workers} processes; results/{RUN}/checks/ remembers "
          "datasets found good)", file=sys.stderr)
    try:
        found, done = check_data_cached(specs, f"{RESULTS}/checks", workers=workers, progress=True)
    except InputError as exc:
        _stop(exc)
    for c in done:
        how = "unchanged since its last check" if c.cached else f"{c.seconds:.1f} s"
        print(f"meta-ood: data check: {c.name}: {c.images} images, {c.labels} label files ({how})", file=sys.stderr)
    if not found.ok:
        lines = "\n".join(f"{p.file}: {p.problem} [{p.dataset}]" for p in found.problems)
        _stop(InputError(
            f"the data check found {len(found.problems)} problem(s) in {found.files_with_problems} file(s); "
            f"no job was started (replace or fix these files, or remove the dataset from the config; "
            f"`snakemake {RESULTS}/check_data.md` writes the same report; --config skip_data_check=true skips "
            f"the check):\n{lines}"))


def _planned_rules():
    """Names of the rules with jobs to run in this invocation (every rule when Snakemake does not say)."""
    try:
        return {job.rule.name for job in workflow.dag.needrun_jobs()}
    except AttributeError:
        return TRAINING_RULES | INFERENCE_RULES


onstart:
    # Jobs that run on this machine with a device asked for by name (cuda, cuda:N) need it here.
    planned = _planned_rules()
    if workflow.local_exec and planned & (TRAINING_RULES | INFERENCE_RULES):
        from meta_ood.errors import InputError
        from meta_ood.preflight import check_device_config

        try:
            check_device_config(config, training=bool(planned & TRAINING_RULES),
                                inference=bool(planned & INFERENCE_RULES))
        except InputError as exc:
            _stop(exc)
    # Every image and label of the datasets the jobs read, before the first of them runs (cached).
    if planned & (TRAINING_RULES | INFERENCE_RULES):
        _data_check(planned)


wildcard_constraints:
    model="|".join(MODELS),
    variant=r"baseline|epoch[0-9]+",
    dataset="|".join(OOD_DATASETS + [MIOU_DATASET]),
    tag=r"t[0-9.]+",
    shard=r"[0-9]+",


def demo_inputs(wildcards=None):
    """The demo data marker when the run generates its data, nothing otherwise."""
    return {"demo": DEMO_MARKER} if DEMO["enabled"] else {}


def coco_inputs(wildcards=None):
    """The COCO annotations of the user's tree, or the demo marker (the demo writes its own COCO tree)."""
    return {"demo": DEMO_MARKER} if DEMO["enabled"] else {"annotations": user_input(COCO_ANNOTATIONS)}


def demo_params():
    """Arguments of the demo generator: the demo block without its switches, plus seed and COCO size filter."""
    params = {k: v for k, v in DEMO.items() if k not in ("enabled", "root")}
    params["seed"] = config["seed"]
    params["coco_min_size"] = config["coco_filter"]["min_size"]
    return params


def n_epochs(model):
    return MODELS[model]["finetune"]["epochs"]


def ood_epoch(model):
    """The fine-tuning epoch reported as 'OoD training' (config evaluation.ood_epoch, else the last)."""
    return min(EVAL["ood_epoch"] or n_epochs(model), n_epochs(model))


def baseline_checkpoint(model):
    """The configured checkpoint, or the one trained here when none is configured; that of ``baseline_from``."""
    if MODELS[model]["baseline_from"] is not None:
        return baseline_checkpoint(MODELS[model]["baseline_from"])
    ckpt = MODELS[model]["checkpoint"]
    return ckpt if ckpt is not None else f"{RESULTS}/models/{model}/baseline.pt"


def model_arch(wildcards):
    return MODELS[wildcards.model]["arch"]


def model_classes(wildcards):
    return MODELS[wildcards.model]["num_classes"]


def dump_shard(wildcards):
    return [int(wildcards.shard), DUMP_SHARDS]


def segment_shard(wildcards):
    return [int(wildcards.shard), SEGMENT_SHARDS]


def uses_coco(model):
    """Whether a model's fine-tuning mixes in COCO proxies (finetune.proxy coco) rather than Cityscapes void pixels."""
    return MODELS[model]["finetune"]["proxy"] == "coco"


def coco_selection(wildcards):
    """The COCO selection a fine-tuning epoch reads; none for void OoD training."""
    return [COCO_SELECTED] if uses_coco(wildcards.model) else []


def baseline_of(wildcards):
    return user_input(baseline_checkpoint(wildcards.model))


def variant_checkpoint(wildcards):
    """Checkpoint of a model variant: baseline, or epoch<N> of OoD fine-tuning."""
    if wildcards.variant == "baseline":
        return user_input(baseline_checkpoint(wildcards.model))
    return f"{RESULTS}/models/{wildcards.model}/ood/{wildcards.variant}.pt"


def previous_checkpoint(wildcards):
    """Fine-tuning epoch N starts from epoch N-1 (epoch 1 from the baseline)."""
    epoch = int(wildcards.epoch)
    if epoch < 1 or epoch > n_epochs(wildcards.model):
        raise ValueError(f"model {wildcards.model} is fine-tuned for {n_epochs(wildcards.model)} epochs, not {epoch}")
    if epoch == 1:
        return user_input(baseline_checkpoint(wildcards.model))
    return f"{RESULTS}/models/{wildcards.model}/ood/epoch{epoch - 1}.pt"


# ---------------------------------------------------------------------------------- training

def training_options(model, kind):
    """All options of a model's fine-tuning (kind 'finetune') or baseline training ('baseline'), runtime ones included.

    The baseline takes device, amp and deterministic from the model's finetune block; fine-tuning reads
    its COCO masks with coco_filter.ood_id.
    """
    m = MODELS[model]
    common = {"model": m["arch"], "num_classes": m["num_classes"], "seed": config["seed"]}
    if kind == "finetune":
        return {**m["finetune"], **common, "ood_id": config["coco_filter"]["ood_id"]}
    ft = m["finetune"]
    shared = {k: ft[k] for k in ("device", "amp", "deterministic")}
    return {**m["baseline_training"], **common, **shared}


def finetune_params(wildcards):
    """Params of ood_finetune: the fine-tuning options that determine the weights (ood_id is its own param)."""
    options = training_options(wildcards.model, "finetune")
    params = {k: v for k, v in options.items() if k not in TRAIN_RUNTIME_OPTIONS and k != "ood_id"}
    if params["proxy"] == "coco":  # the default, left out as in the checkpoints: earlier runs stay up to date
        del params["proxy"]
    return params


def baseline_params(wildcards):
    """Params of train_baseline: the options that determine the weights, plus epochs (the output is the last epoch)."""
    options = training_options(wildcards.model, "baseline")
    return {k: v for k, v in options.items() if k not in TRAIN_RUNTIME_OPTIONS or k == "epochs"}


def check_data_specs():
    """Reader specs of the datasets the run uses; COCO as the filtered selection the fine-tuning reads.

    Every model is fine-tuned, so Cityscapes train is always used (COCO by the models with COCO proxies).
    """
    cityscapes = DATASETS["cityscapes"]
    specs = {"cityscapes_train": {"kind": "cityscapes", "root": cityscapes["root"], "split": cityscapes["train_split"]}}
    if EVAL["miou"]:
        specs["cityscapes_val"] = {"kind": "cityscapes", "root": cityscapes["root"], "split": cityscapes["val_split"]}
    specs["coco"] = {"kind": "coco", "root": COCO["root"], "split": COCO["split"], "masks_dir": COCO_MASKS,
                     "ood_id": config["coco_filter"]["ood_id"]}
    for name in dict.fromkeys(EVAL["ood_datasets"] + EVAL["segment_datasets"] + SMIYC_DATASETS):
        specs[name] = ood_dataset_spec(name)
    return specs


def dataset_spec(wildcards):
    """(reader kind, root, split) of an evaluation dataset name used in output paths."""
    name = wildcards.dataset
    if name == MIOU_DATASET:
        return {"kind": "cityscapes", "root": DATASETS["cityscapes"]["root"], "split": DATASETS["cityscapes"]["val_split"]}
    return ood_dataset_spec(name)


def dump_options(wildcards):
    """Inference options that change a store: the inference block without the runtime options, whether
    the store keeps the probabilities and the score planes (normalized entropy and the pixel evaluation's
    scorer). Probabilities are kept where segments are computed: the segment datasets' stores of the
    reported variants (baseline and OoD epoch) of every model; or everywhere with probabilities: all."""
    from meta_ood.options import INFERENCE_RUNTIME_OPTIONS

    inference = config["inference"]
    options = {k: v for k, v in inference.items() if k not in INFERENCE_RUNTIME_OPTIONS and k != "probabilities"}
    reported = {variant for _, variant in reported_variants(wildcards.model)}
    options["store_probs"] = inference["probabilities"] == "all" or (
        wildcards.dataset in SEGMENT_DATASETS and wildcards.variant in reported)
    options["scorers"] = sorted({"entropy", EVAL["scorer"]})
    return options


def ood_dataset_spec(name):
    """Reader spec of an OoD test set; Fishyscapes LostAndFound takes its images from LostAndFound by default,
    cityscapes_void is Cityscapes val with its void classes as OoD."""
    if name == "cityscapes_void":
        return {"kind": name, "root": DATASETS["cityscapes"]["root"], "split": DATASETS["cityscapes"]["val_split"]}
    spec = {"kind": name, **DATASETS[name]}
    if name == "fishyscapes_lostandfound" and spec["laf_root"] is None:
        spec["laf_root"] = DATASETS["lostandfound"]["root"]
    return spec


def all_variants(model):
    """Every variant of a model, for figure 14: the baseline and each fine-tuning epoch."""
    return ["baseline"] + [f"epoch{e}" for e in range(1, n_epochs(model) + 1)]


def reported_variants(model):
    """(label, variant) pairs of the tables: plain baseline and the reported OoD training epoch."""
    return [("Plain", "baseline"), ("OoD training", f"epoch{ood_epoch(model)}")]


def pixel_eval_options(wildcards):
    """Options of one pixel evaluation: mIoU thresholds for Cityscapes val, scorer and bootstrap for OoD sets.

    Each evaluation gets only what it uses, so e.g. a new mIoU threshold reruns no OoD evaluation.
    """
    if wildcards.dataset == MIOU_DATASET:
        return {"miou_thresholds": EVAL["miou_thresholds"]}
    return {"n_boot": EVAL["n_boot"], "seed": config["seed"], "scorer": EVAL["scorer"]}


def baseline_owner(model):
    """The model whose baseline ``model`` uses: itself, or the end of its ``baseline_from`` chain."""
    while MODELS[model]["baseline_from"] is not None:
        model = MODELS[model]["baseline_from"]
    return model


def sharing_baseline(owner):
    """The models whose baseline is ``owner``'s, ``owner`` first."""
    return [m for m in MODELS if baseline_owner(m) == owner]


def mv(model, variant):
    """``<model>/<variant>`` of a result path. A shared baseline is one method: its dumps and evaluations are
    made once, under its owner's name, and every model that shares it reads those."""
    return f"{baseline_owner(model) if variant == 'baseline' else model}/{variant}"


def store_dir(model, variant, dataset):
    return f"{RESULTS}/softmax/{mv(model, variant)}/{dataset}"


def store_index(model, variant, dataset):
    return f"{store_dir(model, variant, dataset)}/index.json"


def pixel_json(model, variant, dataset):
    return f"{RESULTS}/pixel/{mv(model, variant)}/{dataset}.json"


def pixel_npz(model, variant, dataset):
    return f"{RESULTS}/pixel/{mv(model, variant)}/{dataset}.npz"


def segment_eval_json(model, variant, dataset):
    return f"{RESULTS}/segment_eval/{mv(model, variant)}/{dataset}.json"


def meta_file(model, variant, dataset, tag, ext="json"):
    return f"{RESULTS}/meta/{mv(model, variant)}/{dataset}/{tag}.{ext}"


def meta_json(model, variant, dataset, tag):
    return meta_file(model, variant, dataset, tag)


def table1_entries():
    pixel, miou = [], []
    for model in MODELS:
        for label, variant in reported_variants(model):
            for ds in EVAL["ood_datasets"]:
                pixel.append({"model": model, "label": label, "dataset": ds, "path": pixel_json(model, variant, ds)})
            if EVAL["miou"]:
                miou.append({"model": model, "label": label, "path": pixel_json(model, variant, MIOU_DATASET)})
    return pixel, miou


def one_per_baseline(entries):
    """Entries with a shared baseline once: the "Plain" entries of models that take their baseline from another
    are dropped, and the owner's is labelled with the models that share it (tables 1, figure 5)."""
    out = []
    for e in entries:
        if e["label"] == "Plain":
            owner = baseline_owner(e["model"])
            if owner != e["model"]:
                continue
            sharers = sharing_baseline(owner)[1:]
            if sharers:
                e = {**e, "label": f"Plain (shared with {', '.join(sharers)})"}
        out.append(e)
    return out


def paired_entries():
    """{dataset, model, label, a, b} of table_paired: each model's reported OoD training against its (shared)
    baseline on every OoD dataset, from the pixel evaluations' per-image histograms."""
    out = []
    for ds in EVAL["ood_datasets"]:
        for model in MODELS:
            (_, base), (_, ood) = reported_variants(model)
            out.append({"dataset": ds, "model": model, "label": "OoD training − Plain",
                        "a": pixel_npz(model, ood, ds), "b": pixel_npz(model, base, ds)})
    return out


def paired_error_entries():
    """{dataset, model, label, a, b, a_stage, b_stage} of table_paired's detection-error rows: the main model's OoD
    training + meta classifier against OoD training alone and against baseline + meta classifier (the paper's
    claim), on every dataset of evaluation.segment_datasets, from the segment evaluations' per-image counts."""
    (_, base), (_, ood) = reported_variants(MAIN_MODEL)
    out = []
    for ds in SEGMENT_DATASETS:
        a = segment_eval_json(MAIN_MODEL, ood, ds)
        out.append({"dataset": ds, "model": MAIN_MODEL, "label": "OoD training + meta − OoD training",
                    "a": a, "a_stage": "after", "b": a, "b_stage": "before"})
        out.append({"dataset": ds, "model": MAIN_MODEL, "label": "OoD training + meta − Baseline + meta",
                    "a": a, "a_stage": "after", "b": segment_eval_json(MAIN_MODEL, base, ds), "b_stage": "after"})
    return out


def pixel_entries_of(entries, models, datasets):
    """The table-1 entries of some models on some datasets (the per-figure selections of figures 3/4, 8/9, 11/12)."""
    return [e for e in entries if e["model"] in models and e["dataset"] in datasets]


def table2_entries():
    """{label, model, dataset, path} of the main model's segment_eval JSONs (table 2, component metrics, figure 7,
    summary): the reported variants on every dataset of evaluation.segment_datasets, in the config's order."""
    labels = {"Plain": "Baseline", "OoD training": "OoD training"}
    return [{"label": labels[label], "model": MAIN_MODEL, "dataset": ds,
             "path": segment_eval_json(MAIN_MODEL, variant, ds)}
            for ds in SEGMENT_DATASETS for label, variant in reported_variants(MAIN_MODEL)]


def table3_entries():
    """{label, model, dataset, tag, path} of the main model's meta classification JSONs (table 3): the reported
    variants at every segment threshold on every dataset of evaluation.segment_datasets, in the config's order."""
    labels = {"Plain": "Baseline", "OoD training": "OoD training"}
    return [{"label": labels[label], "model": MAIN_MODEL, "dataset": ds, "tag": tag,
             "path": meta_json(MAIN_MODEL, variant, ds, tag)}
            for ds in SEGMENT_DATASETS for label, variant in reported_variants(MAIN_MODEL) for tag in TAGS]


# ---------------------------------------------------------------------------------- SegmentMeIfYouCan

SMIYC_DATASETS = list(EVAL["smiyc_datasets"])
SMIYC = f"{RESULTS}/smiyc"
SMIYC_THIRD_PARTY = dict(config["smiyc"]["methods"])


def smiyc_labelled(dataset):
    """Whether the configured split has labelled frames: a SMIYC track's test split has none (score files only);
    its 'all' split holds the labelled validation frames, which are evaluated."""
    return not (dataset in ("smiyc_anomaly", "smiyc_obstacle") and DATASETS[dataset]["split"] == "test")


# the SMIYC datasets that are evaluated (all of them get score files; the submission zip: see SMIYC_SUBMITTED)
SMIYC_EVALUATED = [ds for ds in SMIYC_DATASETS if smiyc_labelled(ds)]
# benchmark folder of each SMIYC dataset's score files (anomaly_p/<method>/<folder>/<fid>.hdf5), and back
SMIYC_FOLDER = {ds: smiyc_folder(ds, DATASETS[ds]["split"]) for ds in SMIYC_DATASETS}
SMIYC_FOLDER_DATASET = {folder: ds for ds, folder in SMIYC_FOLDER.items()}


def smiyc_own_methods(dataset):
    """The pipeline's SMIYC methods on a dataset: name -> (model, variant, meta-lowered or not).

    ``<model>-plain`` (one per baseline: models with ``baseline_from`` share their owner's) and ``<model>-ood``
    (the reported variants), and ``<model>-ood-meta`` where the
    dataset has meta classification (``segment_datasets``) and the scorer is the normalized entropy.
    """
    methods = {}
    for model in MODELS:
        (_, base), (_, ood) = reported_variants(model)
        if baseline_owner(model) == model:  # a shared baseline is one method, its owner's
            methods[f"{model}-plain"] = (model, base, False)
        methods[f"{model}-ood"] = (model, ood, False)
        if dataset in SEGMENT_DATASETS and EVAL["scorer"] == "entropy":
            methods[f"{model}-ood-meta"] = (model, ood, True)
    return methods


def smiyc_scores_dir(method, dataset):
    """Folder of a method's ``<fid>.hdf5`` files, named as the benchmark names it: written by the run, or in the
    configured third-party folder (its ``<benchmark folder>/``, else a ``<dataset>/`` folder)."""
    if method in SMIYC_THIRD_PARTY:
        return method_scores_folder(SMIYC_THIRD_PARTY[method], dataset, DATASETS[dataset]["split"])
    return f"{SMIYC}/anomaly_p/{method}/{SMIYC_FOLDER[dataset]}"


def smiyc_method_scores(wildcards):
    """Input of smiyc_eval: the score folder of the method and dataset of the job."""
    return user_input(smiyc_scores_dir(wildcards.method, wildcards.dataset))


def smiyc_label_store(wildcards):
    """Input of smiyc_labels: the main model's baseline store of the dataset (its labels are the same in every store)."""
    return store_index(MAIN_MODEL, "baseline", wildcards.dataset)


def smiyc_scores_inputs(wildcards):
    """Store (and, meta-lowered, the meta classifier and segment tables at report.example_threshold) of one own
    method on the dataset of a benchmark folder."""
    dataset = SMIYC_FOLDER_DATASET[wildcards.folder]
    model, variant, meta = smiyc_own_methods(dataset)[wildcards.method]
    inputs = {"store": store_index(model, variant, dataset)}
    if meta:
        inputs["meta"] = meta_file(model, variant, dataset, EXAMPLE_TAG, "parquet")
        inputs["segments"] = f"{RESULTS}/segments/{mv(model, variant)}/{dataset}/{EXAMPLE_TAG}.parquet"
    return inputs


def smiyc_scores_options(wildcards):
    """Scorer of the score files; for a meta-lowered method the segment and meta thresholds and the meta options
    (the classifier of the unlabelled frames is fit as the meta stage fits its folds)."""
    options = {"scorer": EVAL["scorer"]}
    if smiyc_own_methods(SMIYC_FOLDER_DATASET[wildcards.folder])[wildcards.method][2]:
        options.update(threshold=config["report"]["example_threshold"], meta_threshold=config["meta"]["threshold"],
                       meta_options={k: config["meta"][k] for k in ("features", "C", "penalize_intercept")})
    return options


def smiyc_eval_options(wildcards):
    """Bootstrap of the exact metrics and the component size filters of the dataset (null: its track's)."""
    sizes = config["smiyc"]["size_filters"][wildcards.dataset] or [None, None]
    return {"n_boot": EVAL["n_boot"], "seed": config["seed"], "segsize": sizes[0], "instsize": sizes[1]}


def smiyc_eval_json(method, dataset):
    return f"{SMIYC}/eval/{method}/{dataset}.json"


def smiyc_entries(datasets=None):
    """{method, dataset, path} of every SMIYC evaluation: own methods, then the third-party ones."""
    return [{"method": m, "dataset": ds, "path": smiyc_eval_json(m, ds)}
            for ds in (SMIYC_EVALUATED if datasets is None else datasets)
            for m in [*smiyc_own_methods(ds), *SMIYC_THIRD_PARTY]]


FIG14_DATASET = "lostandfound" if "lostandfound" in EVAL["ood_datasets"] else (EVAL["ood_datasets"] or [None])[0]


def figure14_entries():
    """(epoch, mIoU JSON, pixel JSON) of every variant of the main model, epoch 0 being the baseline."""
    out = []
    for variant in all_variants(MAIN_MODEL):
        epoch = 0 if variant == "baseline" else int(variant[5:])
        out.append({"epoch": epoch, "miou_path": pixel_json(MAIN_MODEL, variant, MIOU_DATASET),
                    "pixel_path": pixel_json(MAIN_MODEL, variant, FIG14_DATASET)})
    return out


EXAMPLE_TAG = threshold_tag(config["report"]["example_threshold"])


def example_args():
    """Arguments of the example heatmap figure (figs 1, 2 and 6 of the paper) for the main model on LostAndFound."""
    (_, base), (_, ood) = reported_variants(MAIN_MODEL)
    entries = {
        "baseline_store": store_dir(MAIN_MODEL, base, "lostandfound"),
        "ood_store": store_dir(MAIN_MODEL, ood, "lostandfound"),
        "baseline_meta": meta_file(MAIN_MODEL, base, "lostandfound", EXAMPLE_TAG, "parquet"),
        "ood_meta": meta_file(MAIN_MODEL, ood, "lostandfound", EXAMPLE_TAG, "parquet"),
    }
    return {"entries": entries, "threshold": config["report"]["example_threshold"], "n_examples": config["report"]["examples"]}


def scene_threshold(t):
    """The entropy threshold of a scene figure: the paper's ``t`` when it is one of the segment thresholds,
    else report.example_threshold (the meta classifier's tables exist at those thresholds only)."""
    return t if any(abs(t - x) < 1e-9 for x in THRESHOLDS) else config["report"]["example_threshold"]


def scene_figures():
    """The image figures of the paper on the main model's LostAndFound stores (figures 1, 2, 6, 13, 15, 16) and
    the void OoD training comparison (figure 10): name -> (named input files, keyword arguments)."""
    (_, base), (_, ood) = reported_variants(MAIN_MODEL)
    pinned = config["report"]["scenes"]
    n = config["report"]["examples"]
    meta_threshold = config["meta"]["threshold"]
    store = store_dir
    meta = lambda variant, t: meta_file(MAIN_MODEL, variant, "lostandfound", threshold_tag(t), "parquet")
    pair = {"baseline_store": store(MAIN_MODEL, base, "lostandfound"), "ood_store": store(MAIN_MODEL, ood, "lostandfound")}
    stores = [f"{p}/index.json" for p in pair.values()]
    t6, t15 = scene_threshold(0.7), scene_threshold(0.5)
    out = {}
    if "lostandfound" in EVAL["ood_datasets"]:
        out["figure1"] = ({"stores": stores}, {"entries": pair, "n_images": 1})
        out["figure2"] = ({"stores": stores}, {"entries": pair, "threshold": t6, "n_images": 1})
        out["figure13"] = ({"stores": stores}, {"entries": pair, "n_images": n})
    if "lostandfound" in SEGMENT_DATASETS:
        out["figure6"] = ({"stores": stores, "meta": [meta(ood, t6)]},
                          {"entries": {"ood_store": pair["ood_store"], "ood_meta": meta(ood, t6)}, "threshold": t6,
                           "meta_threshold": meta_threshold, "n_images": n})
        out["figure15"] = ({"stores": stores, "meta": [meta(base, t15), meta(ood, t15)]},
                           {"entries": {**pair, "baseline_meta": meta(base, t15), "ood_meta": meta(ood, t15)},
                            "threshold": t15, "meta_threshold": meta_threshold})
        out["figure16"] = ({"stores": stores, "meta": [meta(ood, t15)]},
                           {"entries": {"ood_store": pair["ood_store"], "ood_meta": meta(ood, t15)}, "threshold": t15,
                            "meta_threshold": meta_threshold, "n_images": n})
    if VOID_MODELS:
        void = VOID_MODELS[0]
        (_, vbase), (_, vood) = reported_variants(void)
        entries = [{"dataset": ds, "baseline_store": store(void, vbase, ds), "ood_store": store(void, vood, ds)}
                   for ds in ("cityscapes_void", "lostandfound") if ds in EVAL["ood_datasets"]]
        if entries:
            out["figure10"] = ({"stores": [f"{e[k]}/index.json" for e in entries for k in ("baseline_store", "ood_store")]},
                               {"entries": entries})
    for name, (_, args) in out.items():
        if pinned[name]:
            args["images"] = list(pinned[name])
    return out


def entry_paths(entries, keys=("path",)):
    """All file paths named in a list of report entries (the inputs of a report rule)."""
    return sorted({e[k] for e in entries for k in keys})


def report_outputs(name, kind):
    """Output files of a table (csv, md, tex, html) or figure (png, pdf); the html (the table as the Markdown shows
    it) / png are shown by `snakemake --report`."""
    exts = ("csv", "md", "tex", "html") if kind == "table" else ("png", "pdf")
    folder = "tables" if kind == "table" else "figures"
    shown = "html" if kind == "table" else "png"
    out = {}
    for ext in exts:
        path = f"{RESULTS}/{folder}/{name}.{ext}"
        if ext == shown:
            path = report(path, caption=f"../report/{name}.rst", category="Tables" if kind == "table" else "Figures")
        out[ext] = path
    return out


def finished_message(configfiles):
    """The run's last lines on the terminal: where its summary is and how to collect the HTML report."""
    summary = Path(f"{RESULTS}/summary.md")
    if not summary.exists():
        return f"meta-ood: done; results in {RESULTS}/"
    options = "".join(f" --configfile {path}" for path in configfiles)
    return (f"meta-ood: done. Summary: {summary} (tables in {RESULTS}/tables/, figures in {RESULTS}/figures/).\n"
            f"HTML report with captions: snakemake --report {RESULTS}/report.html{options}")


def all_targets():
    """Everything `snakemake` builds by default: the tables, figures and the summary."""
    targets = [f"{RESULTS}/config.yaml"] + ([COCO_SELECTED] if any(uses_coco(m) for m in MODELS) else [])
    targets += [f"{RESULTS}/tables/{name}.{ext}" for name in TABLES for ext in ("csv", "md", "tex")]
    targets += [f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")]
    targets.append(f"{RESULTS}/summary.md")
    if SMIYC_SUBMITTED:
        targets.append(f"{SMIYC}/submission.zip")
    return targets


# tables 2, 3, the component metrics and figure 7 show every segment dataset; the example images are LostAndFound's
TABLES = ["table1", "table_paired", "table_definitions"] + (["table2", "table3", "table_components"] if SEGMENT_DATASETS else [])
# figures 3/4 show the main model, 11/12 the second COCO-trained model (the paper's DualGCNNet), 8/9 the
# void OoD training of appendix C on Cityscapes val (void as OoD) and on LostAndFound
SECOND_MODEL = next((m for m in MODELS if m != MAIN_MODEL and uses_coco(m)), None)
VOID_MODELS = [m for m in MODELS if not uses_coco(m)]
PAPER_OOD_DATASETS = [ds for ds in EVAL["ood_datasets"] if ds != "cityscapes_void"]
FIGURES = (["figure3", "figure4"] if PAPER_OOD_DATASETS else []) + (["figure5"] if EVAL["miou"] else [])
if SECOND_MODEL is not None and PAPER_OOD_DATASETS:
    FIGURES += ["figure11", "figure12"]
if VOID_MODELS and "cityscapes_void" in EVAL["ood_datasets"]:
    FIGURES.append("figure8")
if VOID_MODELS and "lostandfound" in EVAL["ood_datasets"]:
    FIGURES.append("figure9")
if SEGMENT_DATASETS:
    FIGURES.append("figure7")
if "lostandfound" in SEGMENT_DATASETS:
    FIGURES.append("examples")
SCENE_FIGURES = scene_figures()
FIGURES += list(SCENE_FIGURES)
if EVAL["miou"] and EVAL["every_epoch"] and EVAL["ood_datasets"]:
    FIGURES.append("figure14")
if SMIYC_EVALUATED:
    TABLES.append("table_smiyc")
    FIGURES.append("figure_smiyc_curves")
if "smiyc_obstacle" in SMIYC_EVALUATED:
    TABLES.append("table_smiyc_scenes")


def _startup_checks():
    """Stop before any job is scheduled when the run cannot work; every problem in one message.

    Values listed twice, roots, image/label pairings (the first pair of each dataset), ROI masks, the
    COCO annotation file (parsed and its usable images counted while coco_filter's selection is still
    missing, else its category names only), checkpoints against their architectures and class counts,
    third-party SMIYC score files, cross-key consistency, and fine-tuning checkpoints written with other
    weight options (which Snakemake would otherwise delete and retrain). Runs once, in the main
    process: cluster jobs re-read this file and skip it. Devices are checked in `onstart`, where
    Snakemake knows whether the jobs run on this machine.
    """
    try:
        from meta_ood.errors import InputError
        from meta_ood.preflight import preflight
        from meta_ood.training import baseline_config, baseline_work_dir, check_resume
    except ImportError as exc:
        print(f"meta-ood: start-up checks skipped ({exc} in the environment that runs Snakemake; install "
              "requirements.txt there to have data and checkpoints checked before any job)", file=sys.stderr)
        return
    try:
        preflight(config, raw_config=USER_CONFIG, check_devices=False, parse_coco=not Path(COCO_SELECTED).is_file())
        for name in MODELS:
            folders = [(f"{RESULTS}/models/{name}/ood", training_options(name, "finetune"))]
            if MODELS[name]["checkpoint"] is None and MODELS[name]["baseline_from"] is None:
                work = baseline_work_dir(f"{RESULTS}/models/{name}/baseline.pt")
                folders.append((work, baseline_config(training_options(name, "baseline"))))
            for folder, options in folders:
                try:
                    check_resume(folder, options)
                except InputError as exc:
                    raise InputError(f"model {name!r}: {exc}") from None
    except InputError as exc:
        if PLAN_ONLY:
            print(f"meta-ood: plan_only: the plan follows; a run would stop here:\n{exc}", file=sys.stderr)
            return
        _stop(exc)


if not workflow.remote_exec:
    _startup_checks()

"""The library calls behind `experiments.run`, `experiments.compare` and `experiments.recommend`.

Each takes the data set and split plus a list of (family, config) and does one thing:
  run_experiment       train or load the models, measure them beside the baselines, print the
                       table, write the report folder, optionally recommend for one user;
  recommend            one model's top k for a user id, a typed history or one movie.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from movielens import paths
from movielens.config import Config
from movielens.distribute import is_chief
from movielens.families import get_family
from movielens.families.base import Context, Family, is_trained, train_or_load
from movielens.leaderboard import Leaderboard, report_folder, run_leaderboard
from movielens.recommender import Recommendations, Recommender, UserHistory

DEFAULT_BASELINES = ("popularity", "ease")


@dataclasses.dataclass(frozen=True)
class RunOptions(Config):
    """What a run does besides training (none of it changes a trained model, so none of it is in its identity)."""

    command: str = "run"                  # names the report folder: reports/<command>-<data>-<split>-<models>
    baselines: tuple[str, ...] = DEFAULT_BASELINES  # rows measured beside the models (same split, same protocol)
    retrain: bool = False
    no_train: bool = False
    plots: bool = True                    # the HTML report (results.json and leaderboard.md are always written)
    user_id: str = ""                     # also print each model's recommendations for this user
    include_seen: bool = False
    k: int = 10
    verbose: int = 1


def with_baselines(models: Sequence[tuple[Family, Config]], baselines: Sequence[str]) -> list[tuple[Family, Config]]:
    """The baselines' rows first (default configs), then the models; a family listed twice appears once."""
    present = {family.name for family, _ in models}
    rows = [(get_family(name), get_family(name).default_config()) for name in baselines if name not in present]
    return rows + list(models)


def run_experiment(data, split, models: Sequence[tuple[Family, Config]], options: RunOptions,
                   family_options: dict | None = None) -> Leaderboard:
    """family_options: the families' run inputs from their flags (`Family.options_from_args`)."""
    if options.user_id:
        UserHistory(data.ratings).check_user(options.user_id)  # a bad id fails before any training
    board = run_leaderboard(data, split, with_baselines(models, options.baselines), retrain=options.retrain,
                            no_train=options.no_train, verbose=options.verbose, options=family_options)
    print()
    print(board.markdown())
    for row in board.rows:
        headline = {k: row.family_metrics[k] for k in row.trained.family.headline_metrics if k in row.family_metrics}
        if headline:
            labels = row.trained.family.headline_labels
            shown = ", ".join(f"{labels.get(k, k)} {v:.4f}" if isinstance(v, float) else f"{labels.get(k, k)} {v}"
                              for k, v in headline.items())
            print(f"[{row.label}] its own protocol: {shown}")
    if not is_chief():
        print("\nreports are written by the chief worker")
        return board
    folder = report_folder(paths.reports_dir(), options.command, data.variant, split.name,
                           [row.label for row in board.rows])
    written = board.write(folder) if options.plots else {"json": _write_without_html(board, folder)}
    print(f"\nreport: {written.get('html', written['json'])}")
    for row in board.rows:
        extra = row.trained.family.report_extras(row.trained, folder, plots=options.plots)
        for line in extra:
            print(line)
    if options.user_id:
        asked = {family.name for family, _ in models}
        for row in board.rows:
            if row.family not in asked:  # the baselines added for comparison
                continue
            result = Recommender(row.trained).for_user(options.user_id, options.k, not options.include_seen)
            print(f"\n[{row.label}] top {options.k} for user {options.user_id} ({result.excluded}):")
            print(format_recommendations(result))
    return board


def _write_without_html(board: Leaderboard, folder):
    from movielens.io import atomic_write_json, atomic_write_text

    atomic_write_text(folder / "leaderboard.md", board.markdown() + "\n")
    return atomic_write_json(folder / "results.json", board.to_json())


def format_recommendations(result: Recommendations) -> str:
    lines = [f"{rank:3d}. {rec.movie_title}  [{rec.score:.3f}]" for rank, rec in enumerate(result.items, 1)]
    return "\n".join(lines) if lines else "  (nothing left to recommend)"


def recommend(data, split, family: Family, config: Config, *, user_id: str = "", history: Sequence[str] = (),
              similar_to: str = "", k: int = 10, include_seen: bool = False, no_train: bool = False,
              retrain: bool = False, backend: str = "auto", verbose: int = 1,
              options: dict | None = None) -> Recommendations:
    """One model's top k for a user id, a typed history (titles, oldest first) or one movie; prints it.

    The input is checked first (a bad id or title fails before anything trains); a model that is not in
    saved_models/ is named with what will be trained, or refused with `no_train`. `options`: the family's
    run inputs from its flags (`Family.options_from_args`).
    """
    context = Context(data, split, verbose, options=dict(options or {}))
    if user_id:
        UserHistory(data.ratings).check_user(user_id)
    else:
        from movielens.recommender import title_index

        index = title_index(data)
        for title in [*history, *([similar_to] if similar_to else [])]:
            index.lookup(title)
    if not retrain and not no_train and not is_trained(family, config, context):
        changed = {k: v for k, v in config.to_dict().items() if family.default_config().to_dict().get(k) != v}
        print(f"{family.label(config)} is not in saved_models/ with these settings: training it now on "
              f"{data.variant} ({split.name} split{', settings ' + str(changed) if changed else ', defaults'}); "
              f"--no_train makes this an error", flush=True)
    trained = train_or_load(family, config, context, retrain=retrain, no_train=no_train)
    recommender = Recommender(trained, backend)
    if user_id:
        result = recommender.for_user(user_id, k, not include_seen)
        print(f"{family.label(config)}: top {k} for user {user_id} ({result.excluded}):")
    elif similar_to:
        result = recommender.similar_to(similar_to, k)
        print(f"{family.label(config)}: movies for someone who liked {result.history_titles[0]} ({result.excluded}):")
    else:
        result = recommender.for_history(history, k)
        print(f"{family.label(config)}: history {'; '.join(result.history_titles)} ({result.excluded}):")
    for note in result.notes:
        print(f"note: {note}")
    print(format_recommendations(result))
    return result

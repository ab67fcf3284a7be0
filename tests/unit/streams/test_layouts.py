"""workers.layout: which roles a deployment runs and what each role registers."""

from __future__ import annotations

import pytest

from algostream.config import ConfigError, load_settings
from streams.worker import LAYOUTS, RoleError, role_modules, worker_roles


def layout(name: str):  # type: ignore[no-untyped-def]
    return load_settings(env={"ALGOSTREAM__WORKERS__LAYOUT": name})


def test_default_is_colocated_market_and_trading() -> None:
    s = load_settings(env={})
    assert s.workers.layout == "colocated"
    assert worker_roles(s) == ["market", "trading"]
    assert role_modules(s, "market") == [
        "streams.book",
        "streams.bars",
        "streams.features",
        "streams.signals",
    ]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_runs_each_stage_exactly_once(name: str) -> None:
    s = layout(name)
    modules = [m for role in worker_roles(s) for m in role_modules(s, role)]
    stages = ["book", "bars", "features", "signals", "risk", "execution"]
    assert sorted(modules) == sorted(f"streams.{m}" for m in stages)


def test_a_role_of_another_layout_is_refused_with_the_layout_named() -> None:
    with pytest.raises(RoleError, match="'signals' is a role of layout 'split'"):
        role_modules(layout("colocated"), "signals")
    with pytest.raises(RoleError, match=r"no worker role 'market' in workers\.layout 'single'"):
        role_modules(layout("single"), "market")
    with pytest.raises(RoleError, match="unknown worker role 'bogus'"):
        role_modules(layout("split"), "bogus")


def test_an_unknown_layout_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="layout"):
        layout("triple")


@pytest.mark.parametrize("name", ["colocated", "split"])
def test_the_trading_worker_reads_book_top_once_for_the_gate_and_the_paper_broker(
    name: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from streams.worker import build_worker_app

    s = load_settings(
        env={"ALGOSTREAM__WORKERS__LAYOUT": name, "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path)}
    )
    app, edge = build_worker_app(s, "trading", web_port=0)
    top = edge.topic("book.top").get_topic_name()
    readers = [agent.name for agent in app.agents.values() if top in agent.channel.get_topic_name()]
    assert readers == ["trading-book.top"]
    assert len(edge._local["book.top"]) == 2  # the gate's marks and the paper broker

"""workers.layout: which roles a deployment runs and what each role registers."""

from __future__ import annotations

import pytest

from algostream.config import ConfigError, load_settings
from streams.worker import (
    LAYOUTS,
    RoleError,
    agent_modules,
    role_modules,
    role_ports,
    worker_roles,
)


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


def worker_app(name: str, role: str | None, tmp_path):  # type: ignore[no-untyped-def]
    """The app and edge of ``role`` (default: the layout's first) in layout ``name``."""
    from streams.worker import build_worker_app

    s = load_settings(
        env={"ALGOSTREAM__WORKERS__LAYOUT": name, "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path)}
    )
    return build_worker_app(s, role or worker_roles(s)[0], web_port=0)


@pytest.mark.parametrize("name", ["colocated", "split"])
def test_the_trading_worker_reads_book_top_and_trades_with_its_tap_not_faust(
    name: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from streams.reader import readers

    app, edge = worker_app(name, "trading", tmp_path)
    busy = {edge.topic(t).get_topic_name() for t in ("book.top", "md.trades")}
    agents = {agent.channel.get_topic_name() for agent in app.agents.values()}
    assert not busy & agents  # Faust's consumer keeps to the quiet trading topics
    taps = readers(edge)["taps"]
    assert set(taps.handlers) == busy and taps.anchor is None  # every partition
    # one read of each for the gate's marks and the paper broker
    assert edge.wiring["book.top"] == {"tap": ["risk", "execution"]}
    assert edge.wiring["md.trades"] == {"tap": ["execution"]}
    # proposals: a latency-first reader of the worker's loop, on the partition Faust assigns
    proposed = edge.topic("orders.proposed").get_topic_name()
    assert proposed not in agents and readers(edge)["proposals"].anchor == proposed
    # and decides none before the tap has read the tops already on the broker
    assert readers(edge)["proposals"].waits_for == [taps]


def test_a_reader_has_caught_up_once_each_partition_reaches_its_target() -> None:
    from aiokafka import TopicPartition

    from streams.reader import reached

    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    assert reached({a: 3, b: 9}, {a: 3, b: 9})
    assert reached({a: 4, b: 9}, {a: 3, b: 9})
    assert not reached({a: 2, b: 9}, {a: 3, b: 9})
    assert not reached({a: 3, b: 0}, {a: 3, b: 9})
    assert reached({a: 3}, {a: 3, b: 9})  # b moved away: nothing left to read there
    assert reached({}, {})


@pytest.mark.parametrize("name", ["colocated", "single"])
def test_the_market_stages_read_book_and_trades_with_one_reader_faust_assigns(
    name: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from streams.reader import readers

    app, edge = worker_app(name, None, tmp_path)
    book, trades = (edge.topic(t).get_topic_name() for t in ("md.book", "md.trades"))
    agents = {agent.channel.get_topic_name() for agent in app.agents.values()}
    assert not {book, trades} & agents
    reader = readers(edge)["book"]
    assert list(reader.handlers) == [book, trades]  # the book before the trades
    # md.trades is Faust's to assign (its partitions say which instruments are ours), never
    # to fetch: subscribed, held, and out of the offset guard's watch
    assert reader.anchor == trades and trades in edge.held
    assert trades in {t for topic in app.topics for t in topic.topics}
    assert trades not in edge.guard.watched
    if name == "single":  # the paper broker takes the bar stage's trades in-process
        assert edge.wiring["md.trades"] == {"own": ["bars"], "in-process": ["execution"]}


#: (layout, signal.in_process) -> role -> topic -> how its stages take it (ways in order)
WIRING = {
    ("colocated", True): {
        "market": {
            "md.book": {"own": ["book"]},
            "md.trades": {"own": ["bars"]},
            "bars.1s": {"in-process": ["signals", "features"]},  # the strategy's on_bar first
            "book.top": {"in-process": ["features", "signals"]},
            "features": {"in-process": ["signals"]},
            "signals": {"in-process": ["orders"]},
            "positions": {"tap": ["signals"]},
            "orders.events": {"tap": ["signals"]},
            "pnl": {"tap": ["signals"]},
        },
        "trading": {
            "orders.proposed": {"own": ["risk"]},
            "control": {"own": ["risk"]},
            "book.top": {"tap": ["risk", "execution"]},
            "md.trades": {"tap": ["execution"]},
            "orders.events": {"agent": ["risk"]},
            "book.integrity": {"agent": ["risk"]},
            "orders.approved": {"in-process": ["execution"], "agent": ["execution"]},
        },
    },
    ("split", False): {
        "market": {"md.book": {"own": ["book"]}, "md.trades": {"own": ["bars"]}},
        "signals": {
            "bars.1s": {"agent": ["signals", "features"]},
            "book.top": {"agent": ["features", "signals"]},
            "features": {"agent": ["signals"]},
            "signals": {"agent": ["orders"]},
            "positions": {"tap": ["signals"]},
            "orders.events": {"tap": ["signals"]},
            "pnl": {"tap": ["signals"]},
        },
    },
    ("single", True): {
        "all": {
            "md.book": {"own": ["book"]},
            "control": {"own": ["risk"]},
            "md.trades": {"own": ["bars"], "in-process": ["execution"]},
            "orders.proposed": {"own": ["risk"], "in-process": ["risk"]},
            "bars.1s": {"in-process": ["signals", "features"]},
            "book.top": {"in-process": ["features", "signals", "risk", "execution"]},
            "features": {"in-process": ["signals"]},
            "signals": {"in-process": ["orders"]},
            "positions": {"in-process": ["signals"]},
            "pnl": {"in-process": ["signals"]},
            # fills and integrity events always from the broker (at least once)
            "orders.events": {"tap": ["signals"], "agent": ["risk"]},
            "book.integrity": {"agent": ["risk"]},
            "orders.approved": {"in-process": ["execution"], "agent": ["execution"]},
        },
    },
}


@pytest.mark.parametrize(("name", "in_process"), sorted(WIRING))
def test_the_layout_decides_which_inputs_arrive_in_process(
    name: str, in_process: bool, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from streams.worker import build_worker_app

    for role, want in WIRING[(name, in_process)].items():
        s = load_settings(
            env={
                "ALGOSTREAM__WORKERS__LAYOUT": name,
                "ALGOSTREAM__SIGNAL__IN_PROCESS": str(in_process).lower(),
                "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path / role),
            }
        )
        _, edge = build_worker_app(s, role, web_port=0)
        assert edge.wiring == want, role


def test_live_approvals_never_arrive_in_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from streams.worker import build_worker_app

    for paper, in_process in ((False, True), (True, False)):
        s = load_settings(
            env={
                "ALGOSTREAM__EXECUTION__PAPER_TRADING": str(paper).lower(),
                "ALGOSTREAM__EXECUTION__IN_PROCESS": str(in_process).lower(),
                "ALGOSTREAM_API_KEY": "k",
                "ALGOSTREAM_API_SECRET": "s",
                "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path / str(paper)),
            }
        )
        _, edge = build_worker_app(s, "trading", web_port=0)
        assert edge.wiring["orders.approved"] == {"agent": ["execution"]}


def test_no_stage_module_forks_on_the_layout() -> None:
    """The layout is the worker's: a stage declares its inputs, it does not ask where it
    runs (no ``workers.layout`` or ``in_process`` read, no hand-made in-process wiring)."""
    import ast
    from pathlib import Path

    import streams

    root = Path(streams.__file__).parent
    for path in sorted(root.glob("*.py")):
        if path.name in {"worker.py", "stage.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"layout", "in_process", "listen"}, (
                    f"{path.name}:{node.lineno} uses .{node.attr}"
                )


def test_held_partitions_stay_paused_when_faust_resumes_the_others(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from faust.types import TP

    app, edge = worker_app("colocated", "market", tmp_path)
    consumer = app.consumer
    trades, control = (edge.topic(t).get_topic_name() for t in ("md.trades", "md.book"))
    tps = {TP(trades, 0), TP(trades, 1), TP(control, 0)}
    consumer.pause_partitions(tps)
    consumer.resume_partitions(tps)  # what recovery does once the tables are recovered
    assert consumer._paused_partitions == {TP(trades, 0), TP(trades, 1)}


def agents(value: str):  # type: ignore[no-untyped-def]
    return load_settings(env={"ALGOSTREAM__WORKERS__AGENTS": value})


def test_your_own_agents_get_a_role_or_join_one() -> None:
    s = agents('{"alerts": ["streams.volume_spikes"], "market": ["streams.volume_spikes"]}')
    assert worker_roles(s) == ["market", "trading", "alerts"]
    assert role_modules(s, "alerts") == ["streams.volume_spikes"]
    assert role_modules(s, "market")[-1] == "streams.volume_spikes"
    assert [m.__name__ for m in agent_modules(s, "alerts")] == ["streams.volume_spikes"]
    assert role_ports(s, "alerts") == (6070, 9410)


def test_a_bad_agent_module_is_an_error_naming_the_key_at_start() -> None:
    with pytest.raises(RoleError, match=r"workers\.agents\.alerts: cannot import 'streams\.nope'"):
        agent_modules(agents('{"alerts": ["streams.nope"]}'), "alerts")
    with pytest.raises(
        RoleError, match=r"workers\.agents\.alerts: module 'algostream\.config' has no register"
    ):
        agent_modules(agents('{"alerts": ["algostream.config"]}'), "alerts")
    with pytest.raises(ConfigError, match=r"workers\.agents: role 'Alerts!'"):
        agents('{"Alerts!": ["streams.volume_spikes"]}')
    with pytest.raises(ConfigError, match=r"workers\.agents\.alerts: 'a b' is not a module name"):
        agents('{"alerts": ["a b"]}')

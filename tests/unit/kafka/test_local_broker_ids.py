"""The local broker's KRaft cluster ids are accepted by Kafka's storage tool."""

from __future__ import annotations

import base64

from algostream.kafka.local_broker import new_cluster_id


def test_cluster_ids_never_start_with_a_dash() -> None:
    # the storage tool's parser takes "-..." for an option: a clean-clone CI run failed
    # with "argument --cluster-id/-t: expected one argument" (1 id in 64 started with "-")
    ids = [new_cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)  # a 128-bit UUID

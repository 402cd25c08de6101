"""Dataset fingerprints: independent of walk order, sensitive to any path, size, time or content change."""

from torc_hpc.core.datasets import content_digest, manifest_digest


def test_manifest_is_order_independent_and_sensitive():
    a = [("x/1.txt", 3, 100), ("2.txt", 5, 200)]
    assert manifest_digest(a) == manifest_digest(list(reversed(a)))
    for changed in ([("x/1.txt", 4, 100), ("2.txt", 5, 200)], [("x/1.txt", 3, 101), ("2.txt", 5, 200)],
                    [("y/1.txt", 3, 100), ("2.txt", 5, 200)], a[:1]):
        assert manifest_digest(changed) != manifest_digest(a)


def test_content_is_order_independent_and_sensitive():
    a = [("a", "00" * 32), ("b", "11" * 32)]
    assert content_digest(a) == content_digest(a[::-1])
    assert content_digest([("a", "00" * 32), ("b", "12" + "11" * 31)]) != content_digest(a)

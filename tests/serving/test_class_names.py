"""sagan_tf.serving.class_names: what a request by name may cost, and the closest names against a NumPy edit distance.
"""

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.serving import class_names
from sagan_tf.errors import ConfigError

#: 1,000 class names, as many as imagenet128 has, of 16 bytes each.
_MANY = tuple(f"{index:06d}".ljust(16, "c") for index in range(1000))


def _levenshtein(a, b):
    """The edit distance of two sequences (insertions, deletions, substitutions of one item each), by its table."""
    row = np.arange(len(b) + 1)
    for i, item in enumerate(a, 1):
        previous, row = row, np.empty_like(row)
        row[0] = i
        for j, other in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (item != other))
    return int(row[-1])


def _refusal(function, names):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        function(tf.constant(names))
    return next(line for line in error.value.message.splitlines() if "assertion failed" in line)


@pytest.fixture
def counted_suggestions(monkeypatch):
    """A list that gets one entry each time the graph computes the closest names (not each time it traces them)."""
    calls, closest_names = [], class_names.closest_names

    def counting(name, names, *args, **kwargs):
        name = tf.py_function(lambda value: calls.append(value.numpy()) or value, [name], tf.string)
        return closest_names(tf.reshape(name, []), names, *args, **kwargs)

    monkeypatch.setattr(class_names, "closest_names", counting)
    return calls


def test_a_name_longer_than_every_class_name_is_refused_before_any_suggestion(counted_suggestions):
    # Without the bound, one name of L characters was copied once per class before the edit distances: 1,000
    # classes and L = 8,000 took 420 MiB, and a 1 MB name about 60 GB (benchmarks/serving_memory.py).
    module = class_names.ClassNameLookup(_MANY)
    lookup = tf.function(module, input_signature=[tf.TensorSpec([None], tf.string)])
    message = ("assertion failed: [Class name too long: the name at position 1 of the request has 17 bytes, and the "
               "longest class name of this export has 16 (its max_class_name_length, which the limits signature "
               "reports), so it names no class. The class_names signature lists them all.]")
    assert _refusal(lookup, [_MANY[3], "x" * 17]) == message
    assert counted_suggestions == []
    # Bytes, not characters: 9 two-byte characters are 18 bytes.
    assert "has 18 bytes" in _refusal(lookup, ["é" * 9])
    assert "position 2 of the request has 1000000 bytes" in _refusal(lookup, [_MANY[0], _MANY[1], "x" * 10**6])
    assert counted_suggestions == []
    # At the bound, an unknown name gets its suggestions, computed once; known names are looked up.
    assert "[Unknown class name:] [xxxxxxxxxxxxxxxx]" in _refusal(lookup, ["x" * 16])
    assert len(counted_suggestions) == 1
    np.testing.assert_array_equal(lookup(tf.constant([_MANY[999], _MANY[0]])).numpy(), [999, 0])
    assert module.max_name_bytes == 16


def test_an_unknown_name_of_invalid_utf8_is_named_in_a_readable_error():
    lookup = tf.function(class_names.ClassNameLookup(("bar", "mirror", "ring", "stripes")),
                         input_signature=[tf.TensorSpec([None], tf.string)])
    assert _refusal(lookup, [b"rin\xff"]) == ("assertion failed: [Unknown class name:] [rin\ufffd] [closest valid "
                                              "names:] [ring bar mirror] [(the class_names signature lists them all)]")


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_the_closest_names_are_those_of_a_numpy_edit_distance(chunk):
    # 130 names: chunks of 7 and of the default 64 end inside the table, so the last one is padded.
    rng = np.random.default_rng(chunk or 0)
    chunked = {} if chunk is None else {"chunk": chunk}
    alphabet = list("abcdeé")
    names = []
    while len(names) < 130:
        name = "".join(rng.choice(alphabet, rng.integers(1, 9)))
        if name not in names:
            names.append(name)
    closest = tf.function(lambda query: class_names.closest_names(query, tf.constant(names), count=5, **chunked))
    for query in ["", "abc", "éé", *("".join(rng.choice(alphabet, rng.integers(1, 9))) for _ in range(6))]:
        got = closest(tf.constant(query)).numpy()
        distances = [_levenshtein(query, name) for name in names]
        expected = [names[index] for index in np.argsort(distances, kind="stable")[:5]]  # ties in class order
        assert [name.decode() for name in got] == expected, query


def test_class_names_are_at_most_max_class_name_length():
    longest = "é" * 127 + "x"  # 255 bytes
    assert class_names.check_class_names([longest, "cat"], 2) == (longest, "cat")
    with pytest.raises(ConfigError, match=r"at most 255 bytes long .* the first of 256 bytes starting 'éééé"):
        class_names.check_class_names(["cat", "é" * 128], 2)  # 128 characters, 256 bytes
    assert class_names.MAX_CLASS_NAME_BYTES == 255

"""Classes by name inside an exported model: names -> class ids, with an error that suggests the closest names.

    lookup = class_names.ClassNameLookup(("bar", "mirror", "ring", "stripes"))
    lookup(tf.constant(["ring", "bar"]))     # -> [2, 0]
    lookup(tf.constant(["rnig"]))            # InvalidArgumentError: ... Unknown class name ... [rnig] ...
                                             #   closest valid names: [ring bar ...]

It runs inside the SavedModel (TensorFlow ops only, a `tf.lookup.StaticHashTable`), so TensorFlow Serving's REST
and gRPC APIs return the same error text to any client. Closeness is the Levenshtein edit distance
(`tf.edit_distance`, unnormalized), ties in class order.

What a request costs is bounded by the export, whatever the names it sends: a name longer than the longest class
name (`max_name_bytes`, in UTF-8 bytes) cannot be a class, and is refused before any suggestion is computed
(`assertion failed: [Class name too long: ...]`); an edit distance then compares at most `max_name_bytes`
characters with each class name, `SUGGESTION_CHUNK` classes at a time, so the suggestion costs a few MiB at most
(4 MiB and 0.4 s for 1,000 class names of `MAX_CLASS_NAME_BYTES`, the longest an export takes;
benchmarks/serving_memory.py --unknown_name_lengths). Without the bound, one name of L characters was copied once
per class: 1,000 classes and L = 8,000 took 5 s and 420 MiB, and a 1 MB name would have asked for about 60 GB.
"""

import tensorflow as tf

from sagan_tf.errors import ConfigError

#: How many closest names an unknown-name error lists.
NUM_SUGGESTIONS = 3
#: The longest class name an export takes, in UTF-8 bytes: the longest file name of Linux filesystems (ext4, XFS,
#: Btrfs), so a class named after its image folder always fits.
MAX_CLASS_NAME_BYTES = 255
#: How many class names one step of the closest-name search compares at once (the suggestion's memory is about
#: this many copies of the unknown name and class names, as int32 code points with int64 indices).
SUGGESTION_CHUNK = 64


def _utf8_length(name):
    """The length of `name` (a str) in UTF-8 bytes: what `tf.strings.length` counts in the serving graph."""
    return len(name.encode("utf-8"))


def check_class_names(class_names, num_classes):
    """`class_names` as a tuple of str after checking there is one distinct, non-empty name per class.

    Raises:
      ConfigError: the wrong number of names, an empty name, a name over `MAX_CLASS_NAME_BYTES`, or two classes
        sharing a name.
    """
    names = tuple(str(name) for name in class_names)
    if len(names) != num_classes:
        raise ConfigError(f"Expected one class name per class ({num_classes}). Received: {len(names)} names")
    if not all(names):
        raise ConfigError(f"Class names must not be empty. Received: {list(names)}")
    too_long = [name for name in names if _utf8_length(name) > MAX_CLASS_NAME_BYTES]
    if too_long:
        raise ConfigError(f"Class names must be at most {MAX_CLASS_NAME_BYTES} bytes long (UTF-8; the longest file "
                          "name of Linux filesystems), so that what a request by name costs the server stays bounded. "
                          f"Received: {len(too_long)} longer, the first of {_utf8_length(too_long[0])} bytes starting "
                          f"{too_long[0][:40]!r}. Rename those classes (the run's class_names.json).")
    seen, duplicates = set(), []
    for name in names:
        if name in seen:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise ConfigError(f"Two classes share a name, so a name would not say which class to draw. Received: "
                          f"duplicates {sorted(set(duplicates))}")
    return names


def closest_names(name, class_names, count=NUM_SUGGESTIONS, chunk=SUGGESTION_CHUNK):
    """The `count` class names closest to `name` by edit distance (a string tensor), in TensorFlow ops.

    The distances are computed `chunk` class names at a time, one chunk after the other, so the memory they take
    grows with `chunk` times the names' lengths, not with the number of classes. Characters are Unicode code
    points (invalid UTF-8 decodes to U+FFFD).

    Args:
      name: a scalar string tensor.
      class_names: a string tensor [num_classes].
      count: how many names to return (at most num_classes).
      chunk: how many class names each step compares.

    Returns:
      A string tensor [min(count, num_classes)], closest first.
    """
    num_classes = int(class_names.shape[0])
    query = tf.strings.unicode_decode(name, "UTF-8")

    def distances(start):
        candidates = tf.strings.unicode_decode(class_names[start:start + chunk], "UTF-8")
        size = candidates.nrows()
        queries = tf.RaggedTensor.from_uniform_row_length(tf.tile(query, [size]), tf.size(query, out_type=tf.int64),
                                                          nrows=size)
        distance = tf.edit_distance(queries.to_sparse(), candidates.to_sparse(), normalize=False)
        return tf.pad(distance, [[0, chunk - size]], constant_values=float("inf"))  # the last chunk's padding

    per_chunk = tf.map_fn(distances, tf.range(0, num_classes, chunk), parallel_iterations=1,
                          fn_output_signature=tf.TensorSpec([chunk], tf.float32))
    distance = tf.reshape(per_chunk, [-1])[:num_classes]
    count = min(count, num_classes)
    # top_k of the negated distances: the smallest distances, the earlier class first among equals.
    _, indices = tf.math.top_k(-distance, k=count, sorted=True)
    return tf.gather(class_names, indices)


class ClassNameLookup(tf.Module):
    """Class names -> int32 class ids, failing with the unknown name and its closest valid names.

    Args:
      class_names: one distinct name per class, in label order (see `check_class_names`).
      name: the module's name.

    Attributes:
      max_name_bytes: the longest class name in UTF-8 bytes; a longer name is refused before any other work.
    """

    def __init__(self, class_names, name=None):
        super().__init__(name=name)
        self.class_names = tuple(class_names)
        self.max_name_bytes = max(_utf8_length(name) for name in self.class_names)
        self._names = tf.constant(self.class_names, tf.string)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self._names, tf.range(len(self.class_names), dtype=tf.int32)),
            default_value=-1)

    def __call__(self, names):
        """The class ids of a string tensor of names (any shape); an unknown name fails the call.

        Raises:
          tf.errors.InvalidArgumentError: naming the first name longer than `max_name_bytes` and the bound, or
            the first unknown name and the closest valid names.
        """
        ids = self.table.lookup(self._within_length(names))

        # The closest names are computed only for a request that has an unknown one (tf.debugging.Assert would
        # evaluate its message on every request).
        def refuse():
            # Invalid UTF-8 is shown as U+FFFD: the error text must decode (TensorFlow's and clients' messages are str).
            first = tf.strings.unicode_transcode(tf.boolean_mask(names, ids < 0)[0], "UTF-8", "UTF-8")
            check = tf.debugging.Assert(
                tf.constant(False),
                ["Unknown class name:", first, "closest valid names:", closest_names(first, self._names),
                 "(the class_names signature lists them all)"],
                summarize=NUM_SUGGESTIONS)
            with tf.control_dependencies([check]):
                return tf.identity(ids)

        return tf.cond(tf.reduce_all(ids >= 0), lambda: tf.identity(ids), refuse)

    def _within_length(self, names):
        """`names`, released only once none is longer than `max_name_bytes` (no such name is a class)."""
        lengths = tf.reshape(tf.strings.length(names, unit="BYTE"), [-1])
        bound = tf.constant(self.max_name_bytes, tf.int32)

        def refuse():
            position = tf.argmax(tf.cast(lengths > bound, tf.int32), output_type=tf.int32)  # the first too long
            message = tf.strings.format(
                "Class name too long: the name at position {} of the request has {} bytes, and the longest class "
                "name of this export has {} (its max_class_name_length, which the limits signature reports), so it "
                "names no class. The class_names signature lists them all.", (position, lengths[position], bound))
            check = tf.debugging.Assert(tf.constant(False), [message])
            with tf.control_dependencies([check]):
                return tf.identity(names)

        return tf.cond(tf.reduce_all(lengths <= bound), lambda: tf.identity(names), refuse)


__all__ = ["ClassNameLookup", "check_class_names", "closest_names", "NUM_SUGGESTIONS", "MAX_CLASS_NAME_BYTES",
           "SUGGESTION_CHUNK"]

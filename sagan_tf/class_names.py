"""Classes by name inside an exported model: names -> class ids, with an error that suggests the closest names.

    lookup = class_names.ClassNameLookup(("bar", "mirror", "ring", "stripes"))
    lookup(tf.constant(["ring", "bar"]))     # -> [2, 0]
    lookup(tf.constant(["rnig"]))            # InvalidArgumentError: ... Unknown class name ... [rnig] ...
                                             #   closest valid names: [ring bar ...]

It runs inside the SavedModel (TensorFlow ops only, a `tf.lookup.StaticHashTable`), so TensorFlow Serving's REST
and gRPC APIs return the same error text to any client. Closeness is the Levenshtein edit distance
(`tf.edit_distance`, unnormalized), ties in class order.
"""

import tensorflow as tf

from sagan_tf.errors import ConfigError

#: How many closest names an unknown-name error lists.
NUM_SUGGESTIONS = 3


def check_class_names(class_names, num_classes):
    """`class_names` as a tuple of str after checking there is one distinct, non-empty name per class.

    Raises:
      ConfigError: the wrong number of names, an empty name, or two classes sharing a name.
    """
    names = tuple(str(name) for name in class_names)
    if len(names) != num_classes:
        raise ConfigError(f"Expected one class name per class ({num_classes}). Received: {len(names)} names")
    if not all(names):
        raise ConfigError(f"Class names must not be empty. Received: {list(names)}")
    seen, duplicates = set(), []
    for name in names:
        if name in seen:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise ConfigError(f"Two classes share a name, so a name would not say which class to draw. Received: "
                          f"duplicates {sorted(set(duplicates))}")
    return names


def closest_names(name, class_names, count=NUM_SUGGESTIONS):
    """The `count` class names closest to `name` by edit distance (a string tensor), in TensorFlow ops.

    Args:
      name: a scalar string tensor.
      class_names: a string tensor [num_classes].
      count: how many names to return (at most num_classes).

    Returns:
      A string tensor [min(count, num_classes)], closest first.
    """
    query = tf.strings.unicode_split(tf.fill(tf.shape(class_names), name), "UTF-8")
    candidates = tf.strings.unicode_split(class_names, "UTF-8")
    distance = tf.edit_distance(query.to_sparse(), candidates.to_sparse(), normalize=False)
    count = min(count, int(class_names.shape[0]))
    # top_k of the negated distances: the smallest distances, the earlier class first among equals.
    _, indices = tf.math.top_k(-distance, k=count, sorted=True)
    return tf.gather(class_names, indices)


class ClassNameLookup(tf.Module):
    """Class names -> int32 class ids, failing with the unknown name and its closest valid names.

    Args:
      class_names: one distinct name per class, in label order (see `check_class_names`).
      name: the module's name.
    """

    def __init__(self, class_names, name=None):
        super().__init__(name=name)
        self.class_names = tuple(class_names)
        self._names = tf.constant(self.class_names, tf.string)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self._names, tf.range(len(self.class_names), dtype=tf.int32)),
            default_value=-1)

    def __call__(self, names):
        """The class ids of a string tensor of names (any shape); an unknown name fails the call.

        Raises:
          tf.errors.InvalidArgumentError: naming the first unknown name and the closest valid names.
        """
        ids = self.table.lookup(names)

        # The closest names are computed only for a request that has an unknown one (tf.debugging.Assert would
        # evaluate its message on every request).
        def refuse():
            first = tf.boolean_mask(names, ids < 0)[0]
            check = tf.debugging.Assert(
                tf.constant(False),
                ["Unknown class name:", first, "closest valid names:", closest_names(first, self._names),
                 "(the class_names signature lists them all)"],
                summarize=NUM_SUGGESTIONS)
            with tf.control_dependencies([check]):
                return tf.identity(ids)

        return tf.cond(tf.reduce_all(ids >= 0), lambda: tf.identity(ids), refuse)


__all__ = ["ClassNameLookup", "check_class_names", "closest_names", "NUM_SUGGESTIONS"]

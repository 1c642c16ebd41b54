r"""Asks an exported SAGAN generator for images and writes them to PNG files.

Three ways to reach the model, with the same request:

    # TensorFlow Serving, REST (port 8501): a JSON predict request in the columnar ("inputs") format.
    python -m export.client --server=localhost:8501 --model_name=sagan --labels=0,1,2,3 --seed=7 --output_dir=out
    # TensorFlow Serving, gRPC (port 8500): needs `pip install tensorflow-serving-api` (sagan_tf's `serving` extra).
    python -m export.client --server=localhost:8500 --grpc --model_name=sagan --labels=0,1,2,3 --output_dir=out
    # No server: the same request run on the SavedModel in this process.
    python -m export.client --saved_model_dir=exports/synthetic32/2000 --labels=0,1,2,3 --output_dir=out
    # Classes by name (the `generate_by_name` signature), and the names an export knows.
    python -m export.client --server=localhost:8501 --model_name=sagan --classes=ring_centre,bar_markers
    python -m export.client --server=localhost:8501 --model_name=sagan --list_classes

By default it calls the `generate` signature (labels, or --batch_size for an unconditional model, a seed and a
truncation; the model draws the latents and returns PNGs); with --classes, `generate_by_name` (class names instead
of ids; an unknown name is refused by the model with the closest valid names). `--signature=serving_default`
sends latents z drawn here instead, `sagan_tf.sampling.latents.truncated_latents(batch, latent_dim, seed, truncation)`
(--latent_dim is needed with a server), and encodes the returned float images itself.

Latents are untruncated by default (--truncation=none), as in sample grids, evaluation and the latents
`serving_default` callers usually draw; --truncation=t draws them from the normal truncated at |z| <= t (BigGAN's
truncation trick: smaller t, less varied and cleaner images). A seed names an image: (--seed, --truncation,
--labels or --batch_size) determine the images, and both signatures give the same ones, because
`truncated_latents` are the latents `generate` draws inside the model. That holds on any machine with the same
export, except that float rounding in CPU and GPU kernels may differ in the last bits of the float images (rarely
one step in a pixel).

One request may ask for at most the export's `max_batch_size` images (`python -m export.run` chose it from a
memory budget). Before sending a request for more than one image, the client reads the cap from the `limits`
signature and refuses a larger request itself, in one line, without sending it: it never splits a request, because
images drawn for one seed in one request are not those of several smaller ones. An export made before the cap
existed has no `limits` signature (nor does a TensorFlow Serving started with --enable_batching answer it); the
request is then sent as it is and the model's own answer stands. A server whose batching queue is full answers
UNAVAILABLE (HTTP 503): the client says the server is busy and to retry later. Every refusal ends the command with
one "Error: ..." line and exit status 2.

Class names (--classes) are bounded too: no class name of an export is longer than its `max_class_name_length`
(in UTF-8 bytes, answered by the `limits` signature), and the model refuses a longer name before it looks for the
closest valid names. The client reads the limits before any request by name and refuses such a name itself, without
sending it. An export made before that bound answers `limits` with the cap alone: the names are then sent as they
are.

Dependencies: a `generate` request over REST needs only numpy (absl-py for the command line) and
`sagan_tf.errors`, which is pure Python. TensorFlow is needed for `--signature=serving_default` (the latents, and
Pillow to encode the images), for --saved_model_dir (in-process) and for --grpc (with tensorflow-serving-api).
The input and output names below must match sagan_tf/serving/signatures.py (tests/export/test_client.py checks that they
do).
"""

import base64
import json
import os
import urllib.error
import urllib.request

import numpy as np
from absl import flags

from sagan_tf import cli
from sagan_tf.errors import ServingError

SERVING_SIGNATURE = "serving_default"
GENERATE_SIGNATURE = "generate"
GENERATE_BY_NAME_SIGNATURE = "generate_by_name"
CLASS_NAMES_SIGNATURE = "class_names"
LIMITS_SIGNATURE = "limits"
Z_INPUT = "z"
LABELS_INPUT = "labels"
CLASSES_INPUT = "classes"
BATCH_SIZE_INPUT = "batch_size"
SEED_INPUT = "seed"
TRUNCATION_INPUT = "truncation"
IMAGES_OUTPUT = "images"
PNG_OUTPUT = "png_bytes"
CLASS_NAMES_OUTPUT = "class_names"
MAX_BATCH_SIZE_OUTPUT = "max_batch_size"
MAX_CLASS_NAME_LENGTH_OUTPUT = "max_class_name_length"
#: The truncation sent for --truncation=none: the largest float32. `generate` takes a finite float32 (JSON has no
#: infinity), and no latent comes near this bound, so it draws exactly the untruncated normal that `math.inf` would.
UNTRUNCATED = float(np.finfo(np.float32).max)

_GRPC_MISSING = ("--grpc needs the tensorflow-serving-api package, which is not installed. Install it with "
                 "`pip install tensorflow-serving-api` (or sagan_tf's `serving` extra), or use the REST API "
                 "(drop --grpc and pass the REST port, 8501 by default).")


class RefusedError(ServingError):
    """The server (or the in-process model) answered and refused the request.

    Attributes:
      status: the HTTP status (REST), the gRPC status code name (gRPC) or "INVALID_ARGUMENT" (in-process).
    """

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _busy_hint(status):
    if status in (503, "UNAVAILABLE"):
        return (". The server is busy: its batching queue is full (TensorFlow Serving's max_enqueued_batches) or it is "
                "not ready. Retry later, or ask for fewer images per request.")
    return ""


def make_inputs(signature, labels=None, batch_size=None, seed=0, truncation=UNTRUNCATED, latent_dim=None,
                classes=None):
    """The named input arrays of a request.

    Args:
      signature: "generate", "generate_by_name" or "serving_default".
      labels: class ids (conditional models), or None for an unconditional model.
      batch_size: number of images for an unconditional model (ignored when `labels` is given).
      seed: the seed of the latents: sent to `generate`, which draws them in the model, or used here to draw the
        same latents (`sagan_tf.sampling.latents.truncated_latents`) for `serving_default`.
      truncation: latents are drawn from a normal truncated at this value (> 0); `UNTRUNCATED`: not truncated.
      latent_dim: size of z; needed for `serving_default`.
      classes: class names, for `generate_by_name` (and only for it).

    Returns:
      A dict of input name -> numpy array (int32 labels and batch_size, int64 seed, float32 truncation and z,
      str classes).

    Raises:
      ServingError: no images asked for, an unknown signature, or latents that cannot be drawn.
    """
    if (signature == GENERATE_BY_NAME_SIGNATURE) != (classes is not None):
        raise ServingError("Class names (--classes) go with the generate_by_name signature, and it takes them "
                           f"instead of --labels or --batch_size. Received: signature={signature!r}, "
                           f"classes={classes!r}")
    if classes is not None:
        names = np.asarray(list(classes), dtype=object).reshape(-1)
        if names.size == 0:
            raise ServingError("--classes is empty; pass at least one class name.")
        if labels is not None:
            raise ServingError("Pass either --classes (names) or --labels (class ids), not both.")
        return {CLASSES_INPUT: names, SEED_INPUT: np.int64(seed), TRUNCATION_INPUT: np.float32(truncation)}
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        count = labels.size
    elif batch_size is not None and batch_size >= 1:
        count = int(batch_size)
    else:
        raise ServingError("Pass --labels (a class-conditional model) or --batch_size >= 1 (an unconditional one).")
    if count == 0:
        raise ServingError("--labels is empty; pass at least one class id.")
    if signature == GENERATE_SIGNATURE:
        inputs = {LABELS_INPUT: labels} if labels is not None else {BATCH_SIZE_INPUT: np.int32(count)}
        inputs.update({SEED_INPUT: np.int64(seed), TRUNCATION_INPUT: np.float32(truncation)})
        return inputs
    if signature == SERVING_SIGNATURE:
        if not latent_dim:
            raise ServingError("--signature=serving_default sends latents z: pass --latent_dim (the model's latent "
                               "size, shown by `saved_model_cli show --all`), or use --signature=generate.")
        cli.import_tensorflow()  # only serving_default requests need it
        from sagan_tf.sampling import latents

        try:
            z = latents.truncated_latents(count, latent_dim, seed, truncation).numpy()
        except ValueError as error:
            raise ServingError(f"Cannot draw the latents z: {error}") from None
        inputs = {Z_INPUT: z}
        if labels is not None:
            inputs[LABELS_INPUT] = labels
        return inputs
    raise ServingError(f"Unknown signature {signature!r}: use {GENERATE_SIGNATURE}, {GENERATE_BY_NAME_SIGNATURE} or "
                       f"{SERVING_SIGNATURE}.")


def rest_url(server, model_name, version=None):
    """The REST predict URL of a model (`host:port` or a full http(s) URL as `server`)."""
    base = server if server.startswith(("http://", "https://")) else f"http://{server}"
    versioned = f"/versions/{version}" if version is not None else ""
    return f"{base.rstrip('/')}/v1/models/{model_name}{versioned}:predict"


def rest_body(signature, inputs):
    """The JSON predict request: columnar format ("inputs"), which allows the scalar seed and truncation."""
    return {"signature_name": signature,
            "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}


def _from_json(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


def parse_rest_response(payload, lone_output=IMAGES_OUTPUT):
    """The outputs of a columnar REST predict response as numpy arrays (`{"b64": ...}` strings become bytes).

    TensorFlow Serving answers `{"outputs": {name: value, ...}}`, or `{"outputs": value}` when the signature has
    a single output, which is then named `lone_output` (`serving_default`: the images; `class_names`: the names;
    `limits` of an export made before the class-name bound: the cap).
    """
    if "error" in payload:
        raise ServingError(f"The server refused the request: {_assertion_text(str(payload['error']))}")
    if "outputs" not in payload:
        raise ServingError(f"Not a predict response (no 'outputs'): {str(payload)[:200]}")
    outputs = payload["outputs"]
    if not isinstance(outputs, dict):
        outputs = {lone_output: outputs}
    parsed = {}
    for name, value in outputs.items():
        value = _from_json(value)
        if name == PNG_OUTPUT:
            parsed[name] = np.array(value, dtype=object)
        elif name == IMAGES_OUTPUT:
            array = np.asarray(value)
            parsed[name] = array.astype(np.uint8 if np.issubdtype(array.dtype, np.integer) else np.float32)
        else:
            parsed[name] = np.asarray(value)
    return parsed


def rest_predict(server, model_name, signature, inputs, version=None, timeout=120):
    """Sends a REST predict request to TensorFlow Serving; returns the parsed outputs."""
    data = json.dumps(rest_body(signature, inputs)).encode("utf-8")
    request = urllib.request.Request(rest_url(server, model_name, version), data=data,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text
        raise RefusedError(f"The server refused the request (HTTP {error.code}): {_assertion_text(str(message))}"
                           f"{_busy_hint(error.code)}", error.code) from None
    except (urllib.error.URLError, OSError) as error:
        raise ServingError(f"Cannot reach TensorFlow Serving at {server}: {error}. Is tensorflow_model_server "
                           "running with --rest_api_port on that port?") from None
    lone_output = {CLASS_NAMES_SIGNATURE: CLASS_NAMES_OUTPUT, LIMITS_SIGNATURE: MAX_BATCH_SIZE_OUTPUT}
    return parse_rest_response(payload, lone_output.get(signature, IMAGES_OUTPUT))


def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        raise ServingError(_GRPC_MISSING) from None
    return predict_pb2, prediction_service_pb2_grpc


def predict_request(model_name, signature, inputs, version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` with the inputs as TensorProtos."""
    tf = cli.import_tensorflow()
    predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def grpc_predict(server, model_name, signature, inputs, version=None, timeout=120):
    """Sends a gRPC Predict request to TensorFlow Serving; returns the outputs as numpy arrays."""
    import grpc

    tf = cli.import_tensorflow()
    _, prediction_service_pb2_grpc = _serving_apis()
    request = predict_request(model_name, signature, inputs, version)
    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code().name
            if code == "UNAVAILABLE" and "queue" not in str(error.details()):
                raise ServingError(f"gRPC Predict to {server} failed (UNAVAILABLE): {error.details()}. Is "
                                   "tensorflow_model_server running with --port on that port?") from None
            raise RefusedError(f"gRPC Predict to {server} failed ({code}): {_assertion_text(str(error.details()))}"
                               f"{_busy_hint(code)}", code) from None
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def load_saved_model(saved_model_dir):
    """Loads an exported SavedModel version directory in this process.

    Raises:
      ServingError: the directory holds no SavedModel.
    """
    tf = cli.import_tensorflow()
    if not tf.io.gfile.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        raise ServingError(f"{saved_model_dir} is not a SavedModel (no saved_model.pb); pass a version directory "
                           "written by `python -m export.run`, e.g. exports/synthetic32/2000.")
    return tf.saved_model.load(saved_model_dir)


def saved_model_predict(loaded, signature, inputs):
    """Runs the request on a loaded SavedModel (`load_saved_model`); returns the outputs as numpy arrays."""
    tf = cli.import_tensorflow()
    function = loaded.signatures.get(signature)
    if function is None:
        hint = ""
        if signature in (GENERATE_BY_NAME_SIGNATURE, CLASS_NAMES_SIGNATURE) and CLASS_NAMES_SIGNATURE not in (
                loaded.signatures):
            hint = (" It was exported before exports carried class names: export the run again with "
                    "`python -m export.run` (or use --labels).")
        elif signature == GENERATE_BY_NAME_SIGNATURE:
            hint = " The model is unconditional: it has no classes to name (pass --batch_size)."
        raise ServingError(f"The SavedModel has no signature {signature!r}; it has {sorted(loaded.signatures)}."
                           f"{hint}")
    expected = function.structured_input_signature[1]
    if set(inputs) != set(expected):
        kind = "unconditional: pass --batch_size" if LABELS_INPUT not in expected else "conditional: pass --labels"
        raise ServingError(f"The {signature} signature takes {sorted(expected)}, not {sorted(inputs)} (the model is "
                           f"{kind}).")
    try:
        outputs = function(**{name: tf.constant(value.tolist() if expected[name].dtype == tf.string else value,
                                                dtype=expected[name].dtype)
                              for name, value in inputs.items()})
    except tf.errors.InvalidArgumentError as error:
        raise RefusedError(f"The model refused the request: {_assertion_text(error.message)}",
                           "INVALID_ARGUMENT") from None
    return {name: value.numpy() for name, value in outputs.items()}


def _assertion_text(message):
    # TensorFlow's message starts with "Graph execution error:" and a node trace; keep the assertion itself.
    for line in message.splitlines():
        if "assertion failed" in line:
            return line.strip()[:500]
    return " ".join(message.split())[:500]


def saved_model_latent_dim(loaded):
    """The latent size z of a loaded export, read from its `serving_default` signature."""
    return int(loaded.signatures[SERVING_SIGNATURE].structured_input_signature[1][Z_INPUT].shape[-1])


def _png_from_pixels(image):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def write_pngs(outputs, output_dir, prefix="image"):
    """Writes the returned images to `output_dir/<prefix>_<i>.png`; returns the paths.

    The `generate` signature's PNGs are written as they came; float images in [-1, 1] (`serving_default`) are
    mapped to pixels round((x + 1) * 127.5) as the model does for `generate`.
    """
    os.makedirs(output_dir, exist_ok=True)
    if PNG_OUTPUT in outputs:
        encoded = [bytes(item) for item in outputs[PNG_OUTPUT]]
    else:
        images = np.asarray(outputs[IMAGES_OUTPUT])
        if images.dtype != np.uint8:
            images = np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
        encoded = [_png_from_pixels(image) for image in images]
    paths = []
    for index, data in enumerate(encoded):
        path = os.path.join(output_dir, f"{prefix}_{index}.png")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


def _parse_classes(text):
    if text is None:
        return None
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names:
        raise ServingError(f"--classes must be comma-separated class names. Received: classes={text!r}")
    return names


def _request(values, loaded, signature, inputs):
    if loaded is not None:
        return saved_model_predict(loaded, signature, inputs)
    if values.grpc:
        return grpc_predict(values.server, values.model_name, signature, inputs, values.model_version)
    return rest_predict(values.server, values.model_name, signature, inputs, values.model_version)


def limits_of(values, loaded):
    """The export's limits read from its `limits` signature: {output name: int}, empty where there is none to read.

    Empty: an export made before the cap existed (no `limits` signature), or a server that refuses the call (e.g.
    TensorFlow Serving with --enable_batching, whose batching session takes no signature without inputs). An export
    made before the class-name bound answers `max_batch_size` alone.

    Raises:
      ServingError: the server cannot be reached, or is busy.
    """
    if loaded is not None and LIMITS_SIGNATURE not in loaded.signatures:
        return {}
    try:
        outputs = _request(values, loaded, LIMITS_SIGNATURE, {})
    except RefusedError as error:
        if error.status in (503, "UNAVAILABLE"):
            raise
        return {}
    return {name: int(np.asarray(value).reshape(-1)[0]) for name, value in outputs.items()
            if name in (MAX_BATCH_SIZE_OUTPUT, MAX_CLASS_NAME_LENGTH_OUTPUT)}


def check_within_cap(count, cap):
    """Refuses a request for `count` images when the export's cap (None: unknown) is smaller.

    Raises:
      ServingError: one line naming the request's size and the cap.
    """
    if cap is not None and count > cap:
        raise ServingError(f"This request asks for {count} images and the model takes at most {cap} per request (its "
                           "max_batch_size, read from its limits signature); nothing was sent. Ask for at most "
                           f"{cap} images per call (a seed names the images of one request, so run several calls "
                           "with their own seeds), or export the model with a larger --max_batch_size.")


def check_class_name_lengths(classes, max_class_name_length):
    """Refuses class names longer than the export's longest (`max_class_name_length`; None: unknown).

    Raises:
      ServingError: one line naming the first such name's position and length, and the bound.
    """
    if max_class_name_length is None:
        return
    for position, name in enumerate(classes):
        length = len(name.encode("utf-8"))
        if length > max_class_name_length:
            shown = name if len(name) <= 40 else f"{name[:40]}..."
            raise ServingError(f"Class name {position} of --classes ({shown!r}) has {length} bytes, and the longest "
                               f"class name of the model has {max_class_name_length} (its max_class_name_length, "
                               "read from its limits signature), so it names no class; nothing was sent. "
                               "`--list_classes` prints the names the model knows.")


def class_names_of(outputs):
    """The class names in a `class_names` response, as str."""
    names = outputs.get(CLASS_NAMES_OUTPUT, [])
    return [name.decode("utf-8") if isinstance(name, bytes) else str(name) for name in np.asarray(names).tolist()]


def parse_truncation(text):
    """The truncation a --truncation value asks for: `UNTRUNCATED` for "none", else a finite number > 0.

    Raises:
      ServingError: anything else.
    """
    if isinstance(text, str) and text.strip().lower() == "none":
        return UNTRUNCATED
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and np.float32(value) > 0):
        raise ServingError(f"--truncation takes 'none' (untruncated) or a finite number > 0. Received: {text!r}")
    return value


def _parse_labels(text):
    if not text:
        return None
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ServingError(f"--labels must be comma-separated class ids. Received: labels={text!r}") from None


def run(values):
    """Does what the flags ask; returns the written paths (or, with --list_classes, the class names)."""
    if bool(values.server) == bool(values.saved_model_dir):
        raise ServingError("Pass exactly one of --server=host:port (TensorFlow Serving) and --saved_model_dir.")
    classes = _parse_classes(values.classes)
    loaded = load_saved_model(values.saved_model_dir) if values.saved_model_dir else None
    if values.list_classes:
        return class_names_of(_request(values, loaded, CLASS_NAMES_SIGNATURE, {}))
    signature = values.signature
    if classes is not None:
        if signature == SERVING_SIGNATURE:
            raise ServingError("--classes asks for images by class name through the generate_by_name signature; "
                               "drop --signature=serving_default, or pass class ids with --labels.")
        signature = GENERATE_BY_NAME_SIGNATURE
    latent_dim = values.latent_dim
    if signature == SERVING_SIGNATURE and not latent_dim and loaded is not None:
        latent_dim = saved_model_latent_dim(loaded)
    labels = _parse_labels(values.labels)
    truncation = parse_truncation(values.truncation)
    count = len(classes) if classes is not None else len(labels) if labels is not None else values.batch_size or 0
    # One image is always within the cap (>= 1); the limits are checked before any latent is drawn here.
    if count > 1 or classes is not None:
        limits = limits_of(values, loaded)
        check_within_cap(count, limits.get(MAX_BATCH_SIZE_OUTPUT))
        if classes is not None:
            check_class_name_lengths(classes, limits.get(MAX_CLASS_NAME_LENGTH_OUTPUT))
    inputs = make_inputs(signature, labels, values.batch_size, values.seed, truncation, latent_dim, classes=classes)
    return write_pngs(_request(values, loaded, signature, inputs), values.output_dir)


def define_flags(flag_values=flags.FLAGS):
    """Defines the command's flags on `flag_values` (called only when this module runs as a program)."""
    flags.DEFINE_string("server", None, "TensorFlow Serving host:port (REST port, or gRPC port with --grpc).",
                        flag_values=flag_values)
    flags.DEFINE_bool("grpc", False, "Use gRPC PredictRequest (needs tensorflow-serving-api) instead of REST.",
                      flag_values=flag_values)
    flags.DEFINE_string("saved_model_dir", None, "Run the request in-process on this SavedModel version directory.",
                        flag_values=flag_values)
    flags.DEFINE_string("model_name", "sagan", "Model name on the server (tensorflow_model_server --model_name).",
                        flag_values=flag_values)
    flags.DEFINE_integer("model_version", None, "Model version on the server. Default: the latest.",
                         flag_values=flag_values)
    flags.DEFINE_enum("signature", GENERATE_SIGNATURE, [GENERATE_SIGNATURE, SERVING_SIGNATURE], "Signature to call.",
                      flag_values=flag_values)
    flags.DEFINE_string("labels", None, "Comma-separated class ids, one image each (class-conditional models).",
                        flag_values=flag_values)
    flags.DEFINE_string("classes", None, "Comma-separated class names, one image each (class-conditional models; "
                        "the generate_by_name signature).", flag_values=flag_values)
    flags.DEFINE_bool("list_classes", False, "Print the class names the export knows, one per line, and exit.",
                      flag_values=flag_values)
    flags.DEFINE_integer("batch_size", None, "Number of images (unconditional models).", flag_values=flag_values)
    flags.DEFINE_integer("seed", 0, "Seed of the latents.", flag_values=flag_values)
    flags.DEFINE_string("truncation", "none", "'none': latents from the standard normal, untruncated (as sample "
                        "grids and evaluation draw them); a number t > 0: from the normal truncated at |z| <= t.",
                        flag_values=flag_values)
    flags.DEFINE_integer("latent_dim", None, "Size of z, for --signature=serving_default with --server.",
                         flag_values=flag_values)
    flags.DEFINE_string("output_dir", "samples", "Directory for the PNG files.", flag_values=flag_values)


@cli.main_wrapper
def main(argv, values=None):
    values = flags.FLAGS if values is None else values
    result = run(values)
    if values.list_classes:
        print("\n".join(result))
    else:
        print(f"Wrote {len(result)} images to {values.output_dir}")
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags, tensorflow=False)  # a REST request needs no TensorFlow
